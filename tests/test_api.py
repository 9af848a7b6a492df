"""The HTTP API on a real uvicorn server on loopback: status codes and envelopes for every error path,
isolation between tenants, ingest and tasks, cursors over HTTP, and ``nexus serve`` itself."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from pydantic import ValidationError

from nexus_query.api.cognition import AssembleRequest
from nexus_query.api.models import QueryRequest, TextItem
from nexus_query.config import load_config
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
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


def test_healthz_and_the_openapi_document_need_no_key(api):
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert {"/nexus/spaces/{space_id}/query", "/nexus/spaces/{space_id}/ingest", "/nexus/tasks/{task_id}",
            "/healthz"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_a_query_answers_hits_and_a_cursor_like_the_contract(api):
    client, _, _ = api
    response = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                           json={"q": "return a tent", "top_k": 3, "filters": {"tenant_doc": {"$ne": "acme-0"}}})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"hits", "next_cursor"} and len(body["hits"]) == 3
    assert {"doc_id", "score", "content", "metadata"} <= set(body["hits"][0])
    assert all(h["space"] == "tenant" and h["metadata"]["tenant_doc"] != "acme-0" for h in body["hits"])
    seen = [h["doc_id"] for h in body["hits"]]
    for _ in range(5):
        if body["next_cursor"] is None:
            break
        body = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                           json={"q": "return a tent", "top_k": 3, "filters": {"tenant_doc": {"$ne": "acme-0"}},
                                 "cursor": body["next_cursor"]}).json()
        seen += [h["doc_id"] for h in body["hits"]]
    assert len(seen) == len(set(seen)) == len(ACME_DOCS) - 1


def test_include_global_over_http_labels_global_hits(api):
    client, _, _ = api
    body = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                       json={"q": "what is p95 latency", "include_global": True, "top_k": 2, "mode": "vector"}).json()
    assert body["hits"][0]["space"] == "global" and body["hits"][0]["source"] == "glossary-p95"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "acme-demo-key"}, {"Authorization": "Basic YWNtZQ=="},
                                     {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong-key"}])
@pytest.mark.parametrize("method,path", [("POST", "/nexus/spaces/main/query"), ("POST", "/nexus/spaces/main/ingest"),
                                         ("GET", "/nexus/tasks/abc"), ("GET", "/nexus/no-such-route")])
def test_every_nexus_route_is_401_without_a_valid_key_even_with_a_bad_body(api, headers, method, path):
    client, _, _ = api
    response = client.request(method, path, headers=headers, content=b"{not json")
    assert_envelope(response, 401, "nexus.unauthorized")


@pytest.mark.parametrize("method,path,kwargs,status,code", [
    ("GET", "/nexus/nowhere", {}, 404, "nexus.not_found"),
    ("GET", "/nowhere", {}, 404, "nexus.not_found"),
    ("GET", "/nexus/spaces/main/query", {}, 405, "nexus.method_not_allowed"),
    ("DELETE", "/healthz", {}, 405, "nexus.method_not_allowed"),
    ("POST", "/nexus/spaces/main/query", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "nexus.invalid_json"),
    ("POST", "/nexus/spaces/main/query", {"json": {}}, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "x", "top_k": 0}}, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "x", "unknown": 1}}, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "x", "filters": {"a": {"$regex": "."}}}},
     400, "nexus.invalid_filter"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "x", "filters": {"a": [1, 2]}}}, 400, "nexus.invalid_filter"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "   "}}, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/Bad..Space/query", {"json": {"q": "x"}}, 400, "nexus.invalid_id"),
    ("POST", "/nexus/spaces/nothing-here/query", {"json": {"q": "x"}}, 404, "nexus.space_not_found"),
    ("POST", "/nexus/spaces/main/query", {"json": {"q": "x", "cursor": "nx1.bad.cursor"}}, 410, "nexus.cursor_invalid"),
    ("POST", "/nexus/spaces/global/ingest", {"json": {"items": [{"type": "text", "content": "x"}]}},
     403, "nexus.global_space_read_only"),
    ("POST", "/nexus/spaces/main/ingest", {"json": {"items": []}}, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/main/ingest", {"json": {"items": [{"type": "text", "content": " "}]}},
     422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/main/ingest",
     {"json": {"items": [{"type": "image", "blob_path": "media/../../etc/passwd"}]}},
     403, "nexus.forbidden"),
    ("GET", "/nexus/tasks/not-a-task", {}, 404, "nexus.not_found"),
    ("GET", "/nexus/tasks/..%2F..%2Fsecrets", {}, 404, "nexus.not_found"),
    ("POST", "/nexus/spaces/broken/query", {"json": {"q": "x"}}, 500, "nexus.internal"),
])
def test_error_paths_answer_the_contract_envelope(api, method, path, kwargs, status, code):
    client, _, _ = api
    headers = {**auth(ACME_KEY), **kwargs.pop("headers", {})}
    assert_envelope(client.request(method, path, headers=headers, **kwargs), status, code)


def test_a_tenant_without_a_store_route_gets_503_missing_route(api):
    client, _, _ = api
    error = assert_envelope(client.post("/nexus/spaces/main/query", headers=auth(INITECH_KEY), json={"q": "x"}),
                            503, "nexus_store.missing_route")
    assert error["resource_kind"] == "nexus_store"


def test_tenants_only_ever_see_their_own_space_cursors_and_tasks(api):
    client, _, _ = api
    globex_hits = client.post("/nexus/spaces/main/query", headers=auth(GLOBEX_KEY),
                              json={"q": "return a tent", "top_k": 50}).json()["hits"]
    assert [h["source"] for h in globex_hits] == ["globex-customs"]
    acme_cursor = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                              json={"q": "return a tent", "top_k": 1}).json()["next_cursor"]
    assert_envelope(client.post("/nexus/spaces/main/query", headers=auth(GLOBEX_KEY),
                                json={"q": "return a tent", "top_k": 1, "cursor": acme_cursor}),
                    410, "nexus.cursor_invalid")
    task_id = client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY),
                          json={"items": [{"type": "text", "content": "new acme doc"}]}).json()["task_id"]
    assert_envelope(client.get(f"/nexus/tasks/{task_id}", headers=auth(GLOBEX_KEY)), 404, "nexus.not_found")
    assert client.get(f"/nexus/tasks/{task_id}", headers=auth(ACME_KEY)).status_code == 200


def test_ingest_lands_the_batch_durably_and_answers_202_with_a_task(api):
    client, registry, _ = api
    items = [{"type": "text", "content": "Tents can be returned within 60 days.", "metadata": {"source": "returns"}},
             {"type": "text", "content": "Stoves ship in two days.", "id": "stove-shipping"}]
    response = client.post("/nexus/spaces/main/ingest", headers=auth(ACME_KEY), json={"items": items})
    assert response.status_code == 202 and set(response.json()) == {"task_id"}
    task_id = response.json()["task_id"]
    zone = landing_zone(RequestContext("acme"), registry)
    batch = zone.read_batch("main", task_id)
    assert [i["content"] for i in batch["items"]] == [i["content"] for i in items]
    assert batch["items"][1]["id"] == "stove-shipping"
    task = client.get(f"/nexus/tasks/{task_id}", headers=auth(ACME_KEY)).json()
    assert task["status"] == "queued" and task["space_id"] == "main" and task["counts"] == {"items": 2}
    assert task["attempts"] == 1
    zone.update_task(task_id, "succeeded", counts={"rows": 2})
    assert client.get(f"/nexus/tasks/{task_id}", headers=auth(ACME_KEY)).json()["status"] == "succeeded"


def test_one_bad_item_rejects_the_whole_batch(api):
    client, registry, _ = api
    zone = landing_zone(RequestContext("globex"), registry)
    before = zone.batch_ids("main")
    error = assert_envelope(client.post("/nexus/spaces/main/ingest", headers=auth(GLOBEX_KEY), json={"items": [
        {"type": "text", "content": "fine"}, {"type": "text", "content": "fine", "id": "Not Valid!"}]}),
        422, "nexus.validation_failed")
    assert error["errors"][0]["loc"][:3] == ["body", "items", "1"] and zone.batch_ids("main") == before


@pytest.mark.slow
def test_nexus_serve_runs_the_api_on_loopback(tmp_path, provider):
    env = {**os.environ, "NEXUS_HOME": str(tmp_path / "home")}
    env.pop("NEXUS_CONFIG", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXUS_HOME", env["NEXUS_HOME"])
        mp.delenv("NEXUS_CONFIG", raising=False)
        load(SpaceStore(RoutingRegistry(load_config())), provider, RequestContext("acme"), ACME_DOCS)
    proc, port = start_nexus_serve(env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            hits = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                               json={"q": "tent returns", "top_k": 2}).json()["hits"]
            assert len(hits) == 2 and all(h["source"].startswith("acme-") for h in hits)
    finally:
        stop(proc)


# White space to Python (what handlers strip), to Rust regex (pydantic, the server) or to ECMA regex (the
# schema's readers: clients, schemathesis), plus one character of text inside white space.
BLANK_TO_SOMEONE = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["\ufeff"]


@pytest.mark.parametrize("model, field", [(QueryRequest, "q"), (AssembleRequest, "topic"), (TextItem, "content")])
def test_text_blank_to_any_reader_is_refused_by_the_schema_and_text_with_words_is_not(model, field):
    base = {"type": "text"} if model is TextItem else {}
    for blank in BLANK_TO_SOMEONE:
        with pytest.raises(ValidationError):
            model(**base, **{field: f"{blank} {blank}"})
    assert getattr(model(**base, **{field: "\u3000tent\ufeff"}), field).strip("\u3000\ufeff") == "tent"
