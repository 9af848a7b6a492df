"""Provable erasure, end to end on real stores: a canary document ingested through the real pipeline,
mapped by HAZE, quoted in a cognition artifact, then erased; afterwards no byte of it is anywhere."""

from __future__ import annotations

import json

import dagster as dg
import lancedb
import pytest

from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.definitions import defs
from nexus_pipelines.erasure.assets import erasure_run_config, remap_space
from nexus_query.cognition import ArtifactStore
from nexus_query.cognition.assembly import assemble_topic
from nexus_query.cognition.bricks import import_export
from nexus_query.context import RequestContext
from nexus_query.erasure import STEPS, request_erasure, run_erasure, tenant_target
from nexus_query.erasure.plan import read_request
from nexus_query.errors import CursorInvalid, NothingToErase
from nexus_query.haze import HazeStore
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.store import SpaceStore
from nexus_query.store.lance_indexes import ensure_indexes
from tests.helpers import CANARY, NOTE, OTHER, PARTITION, files_with, lance_versions_with

ACME = RequestContext("acme")
CONVERSATION_SOURCE = "conversations/canonical/canary-chat.json"

def chat_export() -> bytes:
    canary_chat = {"conversation_id": "canary-chat", "title": "Dock door code", "messages": [
        {"message_id": "m1", "role": "user", "created_at": None,
         "blocks": [{"index": 0, "text": "What is the loading dock door code for the night shift?"}]},
        {"message_id": "m2", "role": "assistant", "created_at": None,
         "blocks": [{"index": 0, "text": f"The loading dock door code for the night shift is {CANARY}."}]}]}
    other_chat = {"conversation_id": "tent-chat", "title": "Tent returns", "messages": [
        {"message_id": "t1", "role": "user", "created_at": None,
         "blocks": [{"index": 0, "text": "How long do customers have to return a tent?"}]},
        {"message_id": "t2", "role": "assistant", "created_at": None, "blocks": [{"index": 0, "text": OTHER}]}]}
    return json.dumps([canary_chat, other_chat]).encode()


@pytest.fixture
def instance(nexus_home, dagster_home):
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        yield instance


def ingest(instance) -> None:
    result = defs.resolve_job_def("ingest_space").execute_in_process(partition_key=PARTITION, instance=instance)
    assert result.success


def land_canary(instance) -> None:
    files = landing_zone(ACME).files
    files.write_bytes_atomic(NOTE.encode(), "landing", "main", "files", "canary-note.md")
    files.write_bytes_atomic(OTHER.encode(), "landing", "main", "files", "tents.md")
    import_export(files, "main", "chats.json", chat_export())
    ingest(instance)


def map_space(instance) -> dict:
    result = defs.resolve_job_def("haze_space").execute_in_process(partition_key=PARTITION, instance=instance)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def erase(instance, names, scope="sources", **kwargs) -> dict:
    task = request_erasure(ACME, "main", scope, names, **kwargs)
    result = defs.resolve_job_def("erase_space").execute_in_process(
        partition_key=PARTITION, instance=instance, run_config=erasure_run_config(task.task_id),
        tags={TASK_TAG: task.task_id})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    receipt = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    assert landing_zone(ACME).read_task(task.task_id).status == "succeeded"
    return receipt


def test_a_canary_ingested_mapped_and_quoted_leaves_no_byte_anywhere_after_erasure(instance, nexus_home, dagster_home):
    land_canary(instance)
    assert ensure_indexes(SpaceStore().open(ACME, "main")).fts_index  # the full-text index holds the token too
    haze_metadata = json.dumps(map_space(instance), default=str)
    keywords = {w for c in HazeStore.for_context(ACME).snapshot_info("main").clusters for w in c.keywords}
    assert keywords and not any(f" {w}" in haze_metadata or f"{w}," in haze_metadata for w in keywords)
    artifact = assemble_topic(ACME, "main", "loading dock door code for the night shift")
    assert artifact["payload"]["coverage_status"] == "ASSEMBLED" and CANARY in json.dumps(artifact)
    first = query(ACME, "main", f"door code {CANARY}", top_k=1)
    assert first.next_cursor and CANARY in first.hits[0].content
    assert files_with(nexus_home, CANARY.encode()) and lance_versions_with(nexus_home, CANARY)

    receipt = erase(instance, ["canary-note.md", CONVERSATION_SOURCE])

    assert receipt["verified"] is True and receipt["documents"] == 3  # the note and two blocks of the chat
    assert receipt["rows_deleted"] == 3 and receipt["versions_removed"] >= 1 and receipt["indexes_rebuilt"] >= 1
    assert receipt["landing_files_removed"] == 1 and receipt["landing_files_rewritten"] == 1  # note; export
    assert receipt["blobs_removed"] == 1 and receipt["exports_rewritten"] == 1  # source file; archived export
    assert receipt["intermediate_rows_removed"] > 0 and receipt["haze_snapshots_removed"] == 1
    assert receipt["haze_remapped"] == 1 and receipt["artifacts_tombstoned"] == 1
    assert files_with(nexus_home, CANARY.encode()) == []
    assert files_with(dagster_home, CANARY.encode()) == []
    assert lance_versions_with(nexus_home, CANARY) == []
    assert all(CANARY not in h.content for h in query(ACME, "main", CANARY, top_k=50).hits)
    assert all(CANARY not in h.content for h in query(ACME, "main", CANARY, top_k=50, mode="vector").hits)
    stone = ArtifactStore.for_context(ACME).get(artifact["artifact_id"])
    assert stone["coverage_status"] == "ERASED" and set(stone) == {"artifact_id", "coverage_status", "erased_at",
                                                                    "reason"}
    with pytest.raises(CursorInvalid):
        query(ACME, "main", f"door code {CANARY}", top_k=1, cursor=first.next_cursor)
    # What was not erased is all still there, and mapped again.
    assert {h.source for h in query(ACME, "main", "return a tent", top_k=50).hits} >= {
        "tents.md", "conversations/canonical/tent-chat.json#t2#0"}
    points = HazeStore.for_context(ACME).open("main").to_pandas()
    assert len(points) == SpaceStore().open(ACME, "main").count() and not points.text.str.contains(CANARY).any()


def test_erasing_again_or_what_is_not_there_is_nothing_to_erase_unless_the_request_allows_none(instance):
    land_canary(instance)
    assert erase(instance, ["canary-note.md"])["rows_deleted"] == 1
    for names in (["canary-note.md"], ["never-landed.md"]):
        with pytest.raises(NothingToErase):
            request_erasure(ACME, "main", "sources", names)
        receipt = erase(instance, names, allow_none=True)
        counts = {k: v for k, v in receipt.items()
                  if isinstance(v, int) and not isinstance(v, bool) and k not in ("name_count", "fingerprints")}
        assert receipt["name_count"] == 1 and receipt["verified"] is True and set(counts.values()) == {0}, counts


def test_ingest_after_erasure_works_as_before(instance):
    land_canary(instance)
    erase(instance, ["canary-note.md", CONVERSATION_SOURCE])
    assert all(CANARY not in h.content for h in query(ACME, "main", "dock door code", top_k=50).hits)
    landing_zone(ACME).files.write_bytes_atomic(NOTE.encode(), "landing", "main", "files", "canary-note.md")
    ingest(instance)
    assert CANARY in query(ACME, "main", f"door code {CANARY}", top_k=1).hits[0].content


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
def test_an_erasure_killed_after_any_step_finishes_when_run_again(instance, nexus_home, step):
    land_canary(instance)
    if step == "haze":  # drawing a map is slow: only where the crash falls between dropping and redrawing it
        map_space(instance)
    assemble_topic(ACME, "main", "loading dock door code for the night shift")
    task = request_erasure(ACME, "main", "sources", ["canary-note.md", CONVERSATION_SOURCE])
    target = tenant_target(ACME, "main")
    request = read_request(target, "main", task.task_id)

    def crash(done: str) -> None:
        if done == step:
            raise Crash(done)

    remap = remap_space(lambda message: None)
    with pytest.raises(Crash):
        run_erasure(target, request, after_step=crash, remap=remap)
    receipt = run_erasure(target, request, needles=[CANARY.encode()], remap=remap)
    assert receipt.verified and receipt.rows_deleted == 3 and receipt.artifacts_tombstoned == 1
    assert receipt.haze_remapped == (1 if step == "haze" else 0)
    assert files_with(nexus_home, CANARY.encode()) == [] and lance_versions_with(nexus_home, CANARY) == []


# --- the same on S3 (moto_server): every object listed and read -----------------------------------

def s3_objects_with(endpoint: str, bucket: str, needle: bytes) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(item["Key"] for item in page.get("Contents", [])
                     if needle in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return found


def s3_lance_versions_with(endpoint: str, bucket: str, needle: str) -> list[str]:
    """Every version of every Lance dataset in the bucket, read through Lance, whose text holds ``needle``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    datasets = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if ".lance/" in item["Key"]:
                datasets.add(item["Key"].split(".lance/")[0])
    options = {"endpoint": endpoint, "allow_http": "true", "region": "us-east-1",
               "access_key_id": "testing", "secret_access_key": "testing"}
    found = []
    for prefix in sorted(datasets):
        folder, _, name = prefix.rpartition("/")
        table = lancedb.connect(f"s3://{bucket}/{folder}", storage_options=options).open_table(name)
        for version in table.list_versions():
            table.checkout(version["version"])
            if any(needle in t for t in table.to_arrow().column("text").to_pylist()):
                found.append(f"{prefix}@{version['version']}")
    return sorted(found) if datasets else ["no Lance dataset found"]


def test_on_s3_the_canary_is_in_no_object_and_no_lance_version_after_erasure(nexus_home, dagster_home, s3_config,
                                                                            moto_endpoint):
    import yaml

    bucket = yaml.safe_load(s3_config.read_text())["environments"]["dev"]["defaults"]["nexus_blob_store"]["bucket"]
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        land_canary(instance)
        assert ensure_indexes(SpaceStore().open(ACME, "main")).fts_index
        map_space(instance)
        artifact = assemble_topic(ACME, "main", "loading dock door code for the night shift")
        first = query(ACME, "main", f"door code {CANARY}", top_k=1)
        assert s3_objects_with(moto_endpoint, bucket, CANARY.encode())
        assert s3_lance_versions_with(moto_endpoint, bucket, CANARY)

        receipt = erase(instance, ["canary-note.md", CONVERSATION_SOURCE])

    assert receipt["verified"] is True and receipt["rows_deleted"] == 3 and receipt["artifacts_tombstoned"] == 1
    assert s3_objects_with(moto_endpoint, bucket, CANARY.encode()) == []
    assert s3_lance_versions_with(moto_endpoint, bucket, CANARY) == []
    assert files_with(nexus_home, CANARY.encode()) == [] and files_with(dagster_home, CANARY.encode()) == []
    assert ArtifactStore.for_context(ACME).get(artifact["artifact_id"])["coverage_status"] == "ERASED"
    with pytest.raises(CursorInvalid):
        query(ACME, "main", f"door code {CANARY}", top_k=1, cursor=first.next_cursor)
    assert all(CANARY not in h.content for h in query(ACME, "main", CANARY, top_k=50).hits)


def test_the_global_space_is_erased_by_a_system_run_naming_documents_in_its_config(instance, provider):
    from nexus_query.store import Record, build_rows

    texts = {"glossary-p95": f"p95 latency {CANARY}: 95 of 100 requests are faster.",
             "glossary-sla": "An SLA is a promise about service levels."}
    space = SpaceStore().open_global_for_system("dev", provider.info)
    records = [Record(text=t, source=s) for s, t in texts.items()]
    space.upsert(build_rows(None, records, provider.embed(list(texts.values())), provider.info), provider.info)
    instance.add_dynamic_partitions("tenant_spaces", ["global"])
    result = defs.resolve_job_def("erase_space").execute_in_process(
        partition_key="global", instance=instance,
        run_config={"ops": {"space_erasure": {"config": {"doc_ids": ["glossary-p95"]}}}})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.event_specific_data.materialization.metadata["rows_deleted"].value == 1
    left = SpaceStore().open_global("dev").table.to_arrow().column("source").to_pylist()
    assert left == ["glossary-sla"]


def test_a_tombstone_keeps_the_id_resolving_lists_without_the_query_and_yields_to_the_same_artifact_again(nexus_home):
    from nexus_query.cognition.assembly import build_payload, make_artifact

    store = ArtifactStore.for_context(ACME)
    payload, _, _ = build_payload("night shift door code", [], landing_zone(ACME).files)
    artifact, created = store.put(make_artifact("night shift door code", payload), "main")
    assert created
    stone = store.tombstone(artifact["artifact_id"], reason="customer request", erased_at="2026-12-02T10:00:00.000Z")
    assert store.get(artifact["artifact_id"]) == stone == {
        "artifact_id": artifact["artifact_id"], "coverage_status": "ERASED",
        "erased_at": "2026-12-02T10:00:00.000Z", "reason": "customer request"}
    [entry] = store.list("main")
    assert entry["coverage_status"] == "ERASED" and entry["query"] is None
    assert entry["created_at"] == artifact["created_at"]
    again, created = store.put(make_artifact("night shift door code", payload), "main")
    assert created and store.get(artifact["artifact_id"]) == again
    assert store.list("main")[0]["coverage_status"] == payload["coverage_status"]


def test_an_agent_reading_a_tombstone_is_told_it_was_erased_not_given_content(nexus_home):
    from nexus_query.cognition import render_for_agent
    from nexus_query.cognition.assembly import build_payload, make_artifact

    store = ArtifactStore.for_context(ACME)
    payload, _, _ = build_payload("night shift door code", [], landing_zone(ACME).files)
    artifact, _ = store.put(make_artifact("night shift door code", payload), "main")
    stone = store.tombstone(artifact["artifact_id"], reason="customer request", erased_at="2026-12-02T10:00:00.000Z")
    rendered = render_for_agent(stone)
    assert '"coverage_status": "ERASED"' in rendered and "customer request" in rendered
    assert "EXCERPT" not in rendered and "night shift door code" not in rendered


def test_erasing_a_tenant_erases_every_space_and_leaves_no_file_of_it_and_others_untouched(instance, nexus_home):
    from nexus_query.erasure import erase_tenant

    land_canary(instance)
    globex = RequestContext("globex")
    landing_zone(globex).files.write_bytes_atomic(OTHER.encode(), "landing", "main", "files", "tents.md")
    landing_zone(ACME).files.write_bytes_atomic(NOTE.encode(), "landing", "drafts", "files", "canary-note.md")
    receipt = erase_tenant("acme")
    assert sorted(r.space_id for r in receipt.spaces) == ["drafts", "main"]
    assert sum(r.rows_deleted for r in receipt.spaces) == 6 and receipt.table_folders_removed == 1
    assert files_with(nexus_home, CANARY.encode()) == [] and lance_versions_with(nexus_home, CANARY) == []
    assert not any("acme" in p.parts for p in nexus_home.rglob("*"))
    assert landing_zone(globex).files.exists("landing", "main", "files", "tents.md")


def test_the_erase_tenant_system_job_erases_the_tenant_and_reports_counts(instance, nexus_home):
    landing_zone(ACME).files.write_bytes_atomic(NOTE.encode(), "landing", "main", "files", "canary-note.md")
    landing_zone(ACME).land_batch("drafts", [{"type": "text", "id": "draft-1", "content": NOTE}])
    result = defs.resolve_job_def("erase_tenant_job").execute_in_process(
        instance=instance, run_config={"ops": {"erase_tenant_op": {"config": {"tenant_id": "acme"}}}})
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata["spaces"] == 2 and metadata["landing_files_removed"] == 2 and metadata["verified"] is True
    assert files_with(nexus_home, CANARY.encode()) == []


def test_an_altered_artifact_quoting_the_erased_conversation_is_tombstoned_too(instance):
    land_canary(instance)
    artifact = assemble_topic(ACME, "main", "loading dock door code for the night shift")
    files = landing_zone(ACME).files
    altered = {**artifact, "created_at": "tampered"}
    altered["payload"] = {**artifact["payload"], "topic": "changed after it was written"}
    files.write_bytes_atomic(json.dumps(altered).encode(), "artifacts", artifact["artifact_id"][7:] + ".json")
    receipt = erase(instance, [CONVERSATION_SOURCE])
    assert receipt["artifacts_tombstoned"] == 1
    assert ArtifactStore.for_context(ACME).get(artifact["artifact_id"])["coverage_status"] == "ERASED"
