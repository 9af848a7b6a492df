"""The write-once artifact store (local files and S3 on moto_server), reading artifacts back, and
the agent prompt rendering."""

import json
import threading

import pytest

from nexus_query.cognition.artifacts import ArtifactCorrupt, ArtifactStore, agent_rules, render_for_agent
from nexus_query.cognition.assembly import build_payload, make_artifact
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidId, NotFound
from nexus_query.landing import landing_zone

ACME = RequestContext("acme")

SEED_RULES = """**SYSTEM RULES (NEXUS COGNITION):**

You are operating on a Nexus cognition artifact.
This artifact is lossless, canonical, and immutable.

Rules:
- Do NOT perform vector search or recall.
- Do NOT summarize unless explicitly asked.
- Do NOT invent information.
- All reasoning must reference artifact content.
- When stating facts, cite source_file + message_id + block_index.
- If information is missing, state "NOT PRESENT IN ARTIFACT".

You must treat the artifact as the sole source of truth.
"""


def empty_artifact(topic: str, created_at: str) -> dict:
    payload, _, _ = build_payload(topic, [], landing_zone(ACME).files)
    return make_artifact(topic, payload, created_at)


def test_the_same_payload_made_at_two_times_has_one_id_and_the_first_write_stands(nexus_home):
    store = ArtifactStore.for_context(ACME)
    first = empty_artifact("pack sizes", "2025-01-01T00:00:00.000Z")
    later = empty_artifact("pack sizes", "2025-06-01T12:00:00.000Z")
    assert first["artifact_id"] == later["artifact_id"]
    assert store.put(first, "main") == (first, True)
    stored, created = store.put(later, "main")
    assert (created, stored["created_at"]) == (False, "2025-01-01T00:00:00.000Z")
    assert store.get(first["artifact_id"]) == first


def test_concurrent_writers_of_one_artifact_create_it_exactly_once(nexus_home):
    store = ArtifactStore.for_context(ACME)
    artifacts = [empty_artifact("stove fuel", f"2025-01-01T00:00:0{i}.000Z") for i in range(8)]
    results: list[bool] = []
    threads = [threading.Thread(target=lambda a=a: results.append(store.put(a, "main")[1])) for a in artifacts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.get(artifacts[0]["artifact_id"])["created_at"] in {a["created_at"] for a in artifacts}


def test_an_artifact_whose_id_is_not_the_hash_of_its_payload_is_refused(nexus_home):
    forged = empty_artifact("tents", "2025-01-01T00:00:00.000Z")
    forged["payload"]["topic"] = "something else"
    with pytest.raises(ArtifactCorrupt):
        ArtifactStore.for_context(ACME).put(forged, "main")
    assert not landing_zone(ACME).files.exists("artifacts")


def test_a_stored_artifact_altered_on_disk_is_detected_when_read(nexus_home):
    store = ArtifactStore.for_context(ACME)
    artifact = empty_artifact("tents", "2025-01-01T00:00:00.000Z")
    store.put(artifact, "main")
    path = f"artifacts/{artifact['artifact_id'][7:]}.json"
    tampered = json.loads(store.files.read_bytes(path))
    tampered["payload"]["coverage_status"] = "ASSEMBLED"
    store.files.write_bytes_atomic(json.dumps(tampered).encode(), path)
    with pytest.raises(ArtifactCorrupt):
        store.get(artifact["artifact_id"])


@pytest.mark.parametrize("bad", ["sha256:xyz", "../artifacts/x", "sha256:" + "g" * 64, "", None])
def test_malformed_artifact_ids_are_rejected_before_they_touch_a_path(nexus_home, bad):
    with pytest.raises(InvalidId):
        ArtifactStore.for_context(ACME).get(bad)


def test_an_unknown_artifact_is_not_found(nexus_home):
    with pytest.raises(NotFound):
        ArtifactStore.for_context(ACME).get("sha256:" + "0" * 64)


def test_a_space_lists_its_own_artifacts_oldest_first(nexus_home):
    store = ArtifactStore.for_context(ACME)
    newer, older = empty_artifact("b", "2025-02-01T00:00:00.000Z"), empty_artifact("a", "2025-01-01T00:00:00.000Z")
    store.put(newer, "main")
    store.put(older, "main")
    store.put(empty_artifact("c", "2025-03-01T00:00:00.000Z"), "other")
    listed = store.list("main")
    assert [e["artifact_id"] for e in listed] == [older["artifact_id"], newer["artifact_id"]]
    assert listed[0] == {"artifact_id": older["artifact_id"], "query": "a", "created_at": older["created_at"],
                         "coverage_status": "NO_RECALL_MATCHES", "space_id": "main"}
    assert store.list("empty") == []


def test_the_agent_rules_ship_verbatim_and_the_prompt_carries_rules_then_the_whole_artifact(nexus_home):
    assert agent_rules() == SEED_RULES
    artifact = empty_artifact("tents", "2025-01-01T00:00:00.000Z")
    prompt = render_for_agent(artifact)
    assert prompt.startswith(SEED_RULES.rstrip())
    body = prompt.split(f"NEXUS COGNITION ARTIFACT {artifact['artifact_id']}:\n", 1)[1]
    assert json.loads(body) == artifact


def test_on_s3_artifacts_are_written_once_with_a_conditional_put(s3_config):
    store = ArtifactStore.for_context(ACME)
    assert store.files.route.protocol == "s3"
    first = empty_artifact("tents", "2025-01-01T00:00:00.000Z")
    assert store.put(first, "main")[1] is True
    assert store.put(empty_artifact("tents", "2025-09-09T00:00:00.000Z"), "main") == (first, False)
    assert store.files.write_bytes_once(b"other bytes", f"artifacts/{first['artifact_id'][7:]}.json") is False
    assert store.get(first["artifact_id"]) == first
    assert [e["artifact_id"] for e in store.list("main")] == [first["artifact_id"]]
