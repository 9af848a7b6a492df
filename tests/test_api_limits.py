"""Bounded, strict requests over real HTTP on loopback: the ingest door refuses what can never run, bodies
are counted while read (413), bad bytes and deep JSON are 400 ``nexus.invalid_json``, nothing is coerced
(422), the OpenAPI document declares the rules, keys are rate limited and spaces row-limited (429 with
Retry-After), and a server killed mid-upload leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import httpx
import pytest
import yaml

from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.config import DEFAULT_CONFIG_PATH, NexusConfig
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry, hash_api_key
from nexus_query.store import SpaceStore
from tests.helpers import (
    ACME_DOCS,
    ACME_KEY,
    GLOBEX_KEY,
    INITECH_KEY,
    assert_envelope,
    auth,
    load,
    start_nexus_serve,
    stop,
)

LIMITED_KEY = "acme-limited-key"
SMALL_BODY = 64 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory, provider):
    """A server with small limits: 64 KiB bodies on every route, 5 items a batch, 12 rows a space, and a key allowed
    three requests a minute."""
    home = tmp_path_factory.mktemp("limits-home")
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(home)
    raw["api"] = {"max_body_bytes": SMALL_BODY, "max_json_body_bytes": SMALL_BODY, "max_items_per_batch": 5,
                  "max_rows_per_space": 12,
                  "requests_per_minute": None}
    raw["api_keys"].append({"sha256": hash_api_key(LIMITED_KEY), "tenant_id": "acme", "requests_per_minute": 3})
    registry = RoutingRegistry(NexusConfig.from_dict(raw))
    load(SpaceStore(registry), provider, RequestContext("acme"), ACME_DOCS)  # 8 rows
    with background_server(create_app(registry)) as base_url:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            yield client, registry


def test_ingest_for_a_tenant_without_a_store_is_503_and_lands_nothing(api):  # noqa: F811
    client, registry, _ = api
    response = client.post("/nexus/spaces/main/ingest", headers=auth(INITECH_KEY),
                           json={"items": [{"type": "text", "content": "never runs"}]})
    assert assert_envelope(response, 503, "nexus_store.missing_route")["resource_kind"] == "nexus_store"
    zone = landing_zone(RequestContext("initech"), registry)
    assert zone.files.list("landing") == [] and zone.files.list("tasks") == []


@pytest.mark.parametrize("body", [{"q": "x", "top_k": "5"}, {"q": "x", "top_k": True}, {"q": "x", "top_k": 5.5},
                                  {"q": "x", "include_global": "yes"}, {"q": "x", "include_global": 1},
                                  {"q": 5}, {"q": "x", "mode": "VECTOR"}])
def test_query_fields_are_never_coerced(api, body):  # noqa: F811
    client, _, _ = api
    assert_envelope(client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json=body),
                    422, "nexus.validation_failed")


def test_a_whole_float_is_an_integer_as_json_schema_says(api):  # noqa: F811
    client, _, _ = api
    response = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json={"q": "tent", "top_k": 2.0})
    assert response.status_code == 200 and len(response.json()["hits"]) == 2


def test_ingest_fields_are_never_coerced(api):  # noqa: F811
    client, _, _ = api
    for item in [{"type": "text", "content": 5}, {"type": "text", "content": "x", "metadata": "m"},
                 {"type": "text", "content": "x", "blob_path": "a.png"}, {"type": "image"}]:
        assert_envelope(client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY), json={"items": [item]}),
                        422, "nexus.validation_failed")


@pytest.mark.parametrize("content", [
    b'{"q": "caf\xe9"}',                    # Latin-1, not UTF-8
    b"\xff\xfe{\x00}\x00",                   # UTF-16
    b"[" * 5000 + b"]" * 5000,              # deeper than the parser's recursion
    b'{"q": "x", "filters": {"a": ' + b"[" * 70 + b"1" + b"]" * 70 + b"}}",  # deeper than the API allows
    b'{"q": "x", "filters": {"a": NaN}}',
    b'{"q": "x", "top_k": Infinity}',
    b"{not json",
])
def test_bodies_that_are_not_json_we_read_are_400_invalid_json(api, content):  # noqa: F811
    client, _, _ = api
    headers = {**auth(ACME_KEY), "content-type": "application/json"}
    for path in ("/nexus/spaces/main/query", "/nexus/spaces/main/ingest"):
        error = assert_envelope(client.post(path, headers=headers, content=content), 400, "nexus.invalid_json")
        assert error["code"] != "nexus.internal"


def test_the_openapi_document_declares_ids_bounds_and_limits(api):  # noqa: F811
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    query = spec["paths"]["/nexus/spaces/{space_id}/query"]["post"]
    (space_id,) = [p for p in query["parameters"] if p["name"] == "space_id"]
    assert space_id["schema"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,62}$"
    assert {"413", "422", "429", "503"} <= set(query["responses"])
    task = spec["paths"]["/nexus/tasks/{task_id}"]["get"]["parameters"][0]
    assert task["schema"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,62}$"
    schemas = spec["components"]["schemas"]
    top_k = schemas["QueryRequest"]["properties"]["top_k"]
    assert (top_k["type"], top_k["minimum"], top_k["maximum"]) == ("integer", 1, 1000)
    assert schemas["QueryRequest"]["properties"]["q"]["pattern"] == r"[^\s\x1c-\x1f\u0085\ufeff]"
    assert schemas["IngestRequest"]["properties"]["items"]["maxItems"] == 1000
    assert schemas["TextItem"]["properties"]["id"]["anyOf"][0]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,62}$"
    filters = schemas["QueryRequest"]["properties"]["filters"]["anyOf"][0]
    assert filters["additionalProperties"] is False and filters["propertyNames"]["pattern"] == "^[^$]"


def test_a_40_mb_body_is_413_under_the_default_limit_and_the_server_goes_on(api):  # noqa: F811
    client, registry, _ = api
    zone = landing_zone(RequestContext("acme"), registry)
    before = zone.files.list("tasks")
    body = b'{"items": [{"type": "text", "content": "' + b"x" * (40 * 2**20) + b'"}]}'
    response = client.post("/nexus/spaces/main/ingest", headers={**auth(ACME_KEY), "content-type": "application/json"},
                           content=body)
    error = assert_envelope(response, 413, "nexus.payload_too_large")
    assert error["max_body_bytes"] == 32 * 2**20
    assert zone.files.list("tasks") == before
    assert client.get("/healthz").status_code == 200


def test_a_large_body_is_landed_off_the_serving_process_with_the_same_answers(api):  # noqa: F811
    client, registry, _ = api
    headers = {**auth(ACME_KEY), "content-type": "application/json"}
    big = "Tents can be returned within 60 days. " * 20_000  # 5 items of 0.8 MB: landed by a worker process
    response = client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY),
                           json={"items": [{"type": "text", "content": big, "id": f"big-{i}"} for i in range(5)]})
    assert response.status_code == 202, response.text
    batch = landing_zone(RequestContext("acme"), registry).read_batch("main", response.json()["task_id"])
    assert [i["id"] for i in batch["items"]] == [f"big-{i}" for i in range(5)]
    assert batch["items"][4]["content"] == big
    padding = b" " * (2 * 2**20)
    bad_bytes = client.post("/nexus/spaces/main/ingest", headers=headers, content=b'{"items": "caf\xe9"}' + padding)
    assert_envelope(bad_bytes, 400, "nexus.invalid_json")
    wrong = client.post("/nexus/spaces/main/ingest", headers=headers,
                        content=b'{"items": [{"type": "text", "content": 5}]}' + padding)
    assert assert_envelope(wrong, 422, "nexus.validation_failed")["errors"][0]["loc"][:2] == ["body", "items"]
    global_space = client.post("/nexus/spaces/global/ingest", headers=headers,
                               content=b'{"items": [{"type": "text", "content": "x"}]}' + padding)
    assert_envelope(global_space, 403, "nexus.global_space_read_only")


def test_a_body_over_the_configured_limit_is_413_while_read_even_without_a_length(limited):
    client, _ = limited
    headers = {**auth(ACME_KEY), "content-type": "application/json"}
    declared = client.post("/nexus/spaces/main/query", headers=headers, content=b" " * (SMALL_BODY + 1))
    assert_envelope(declared, 413, "nexus.payload_too_large")

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        yield b'{"q": "'
        for _ in range(8):
            yield b"y" * (SMALL_BODY // 4)
        yield b'"}'

    streamed = client.post("/nexus/spaces/main/query", headers=headers, content=chunks())
    assert_envelope(streamed, 413, "nexus.payload_too_large")
    assert client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json={"q": "tent"}).status_code == 200


def test_a_batch_over_the_configured_item_limit_is_refused(limited):
    client, registry = limited
    items = [{"type": "text", "content": f"note {i}"} for i in range(6)]
    error = assert_envelope(client.post("/nexus/spaces/other/ingest", headers=auth(ACME_KEY), json={"items": items}),
                            400, "nexus.invalid_request")
    assert error["max_items"] == 5
    assert landing_zone(RequestContext("acme"), registry).batch_ids("other") == []


def test_a_key_over_its_request_rate_gets_429_with_retry_after_and_others_do_not(limited):
    client, _ = limited
    answers = [client.post("/nexus/spaces/main/query", headers=auth(LIMITED_KEY), json={"q": "tent"})
               for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    error = assert_envelope(answers[3], 429, "nexus.rate_limited")
    assert int(answers[3].headers["Retry-After"]) == error["retry_after"] >= 1
    assert client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json={"q": "tent"}).status_code == 200


def test_a_space_at_its_row_quota_gets_429_quota_exceeded(limited):
    client, registry = limited
    ok = client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY),
                     json={"items": [{"type": "text", "content": f"extra {i}"} for i in range(4)]})
    assert ok.status_code == 202  # 8 rows + 4 = the quota of 12
    over = client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY),
                       json={"items": [{"type": "text", "content": f"more {i}"} for i in range(5)]})
    error = assert_envelope(over, 429, "nexus.quota_exceeded")
    assert error["max_rows_per_space"] == 12 and int(over.headers["Retry-After"]) > 0


def test_tasks_are_listed_by_state_with_paging_and_a_failed_one_can_be_retried(limited):
    client, registry = limited
    zone = landing_zone(RequestContext("acme"), registry)
    ids = [client.post("/nexus/spaces/paged/ingest", headers=auth(ACME_KEY),
                       json={"items": [{"type": "text", "content": f"paged {i}"}]}).json()["task_id"] for i in range(3)]
    zone.fail_task(ids[0], "run-1", "boom: the root cause")
    first = client.get("/nexus/tasks", headers=auth(ACME_KEY), params={"state": "queued", "limit": 1}).json()
    assert len(first["tasks"]) == 1 and first["next_offset"] == 1
    queued = [first["tasks"][0]["task_id"]]
    offset = first["next_offset"]
    while offset is not None:
        page = client.get("/nexus/tasks", headers=auth(ACME_KEY),
                          params={"state": "queued", "limit": 1, "offset": offset}).json()
        queued += [t["task_id"] for t in page["tasks"]]
        offset = page["next_offset"]
    assert set(ids[1:]) <= set(queued) and ids[0] not in queued
    failed = client.get("/nexus/tasks", headers=auth(ACME_KEY), params={"state": "failed"}).json()["tasks"]
    assert [t["task_id"] for t in failed] == [ids[0]] and failed[0]["error"] == "boom: the root cause"
    assert client.get("/nexus/tasks", headers=auth(GLOBEX_KEY)).json()["tasks"] == []

    retried = client.post(f"/nexus/tasks/{ids[0]}/retry", headers=auth(ACME_KEY))
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued" and retried.json()["attempts"] == 2 and retried.json()["error"] is None
    assert_envelope(client.post(f"/nexus/tasks/{ids[0]}/retry", headers=auth(ACME_KEY)), 409,
                    "nexus.task_not_retryable")
    assert_envelope(client.post(f"/nexus/tasks/{ids[0]}/retry", headers=auth(GLOBEX_KEY)), 404, "nexus.not_found")
    assert_envelope(client.get("/nexus/tasks", headers=auth(ACME_KEY), params={"state": "done"}), 422,
                    "nexus.validation_failed")


@pytest.mark.slow
def test_a_server_killed_mid_upload_leaves_no_task_and_no_batch(tmp_path):
    spool = tmp_path / "tmp"  # the server's temporary files: the body it was spooling
    spool.mkdir()
    env = {**os.environ, "NEXUS_HOME": str(tmp_path / "home"), "TMPDIR": str(spool)}
    env.pop("NEXUS_CONFIG", None)
    proc, port = start_nexus_serve(env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        total = 20 * 2**20
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"POST /nexus/spaces/main/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME_KEY}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n".encode())
            sock.sendall(b'{"items": [{"type": "text", "content": "' + b"z" * (total // 2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXUS_HOME", env["NEXUS_HOME"])
        mp.delenv("NEXUS_CONFIG", raising=False)
        zone = landing_zone(RequestContext("acme"), RoutingRegistry(NexusConfig.from_dict(
            yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()))))
    assert zone.files.list("tasks") == [] and zone.files.list("landing") == []
    proc, _ = start_nexus_serve(env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop(proc)
    assert [p.name for p in spool.glob("nexus-body-*")] == []  # the next server swept the killed one's file
