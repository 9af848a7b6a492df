"""The cognition endpoints on a real uvicorn server on loopback."""

import hashlib
import json
import threading

import httpx
import pytest
import uvicorn

from nexus_query.api import create_app
from nexus_query.context import RequestContext
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore
from tests.helpers import copy_home, free_port, ingest_fixture, nexus_home_at, wait_for_port

ACME = RequestContext("acme")
ACME_KEY, GLOBEX_KEY = {"Authorization": "Bearer acme-demo-key"}, {"Authorization": "Bearer globex-demo-key"}
TOPIC = {"topic": "what to do with an Embercore stove from batch EC-2312", "k": 5}


@pytest.fixture(scope="module")
def ingested_home(tmp_path_factory, provider):
    """claude_conversations.json ingested once per module (embedding it is the slow part)."""
    with nexus_home_at(tmp_path_factory.mktemp("cognition-api") / "nexus-home") as home:
        ingest_fixture(SpaceStore(), provider, ACME, "claude_conversations.json")
    return home


@pytest.fixture
def client(ingested_home, nexus_home):
    """The API on loopback over a copy of the ingested home, one server per test."""
    copy_home(ingested_home, nexus_home)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(RoutingRegistry.default()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_assemble_returns_the_seed_artifact_whose_id_hashes_its_payload(client):
    response = client.post("/nexus/spaces/main/cognition/assemble", json=TOPIC, headers=ACME_KEY)
    assert response.status_code == 200
    artifact = response.json()
    assert list(artifact) == ["artifact_id", "created_at", "query", "derived_from", "payload"]
    canonical = json.dumps(artifact["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert artifact["artifact_id"] == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert artifact["payload"]["coverage_status"] == "ASSEMBLED" and len(artifact["derived_from"]) == 5
    for excerpt in artifact["payload"]["raw_excerpts"]:  # the tree goes out too: current leaf, parent ids
        assert excerpt["current_message_id"] and all("parent_id" in m for m in excerpt["conversation"])
        assert {"title", "created_at"} <= set(excerpt)  # and what the conversation is and when it took place
    again = client.post("/nexus/spaces/main/cognition/assemble", json=TOPIC, headers=ACME_KEY).json()
    assert again == artifact  # write-once: the stored artifact, first created_at included


def test_an_artifact_is_read_back_by_its_owner_only(client):
    artifact = client.post("/nexus/spaces/main/cognition/assemble", json=TOPIC, headers=ACME_KEY).json()
    path = f"/nexus/artifacts/{artifact['artifact_id']}"
    assert client.get(path, headers=ACME_KEY).json() == artifact
    other = client.get(path, headers=GLOBEX_KEY)
    assert other.status_code == 404 and other.json()["error"]["code"] == "nexus.not_found"


@pytest.mark.parametrize("method, path, body, headers, status, code", [
    ("GET", "/nexus/artifacts/sha256:nothex", None, ACME_KEY, 400, "nexus.invalid_id"),
    ("GET", "/nexus/artifacts/sha256:" + "0" * 64, None, ACME_KEY, 404, "nexus.not_found"),
    ("POST", "/nexus/spaces/main/cognition/assemble", TOPIC, {}, 401, "nexus.unauthorized"),
    ("POST", "/nexus/spaces/main/cognition/assemble", {"topic": "x", "k": 0}, ACME_KEY, 422, "nexus.validation_failed"),
    ("POST", "/nexus/spaces/nowhere/cognition/assemble", TOPIC, ACME_KEY, 404, "nexus.space_not_found"),
    ("POST", "/nexus/spaces/Bad..Id/cognition/assemble", TOPIC, ACME_KEY, 400, "nexus.invalid_id"),
])
def test_cognition_errors_come_back_as_envelopes(client, method, path, body, headers, status, code):
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
