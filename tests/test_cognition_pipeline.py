"""Conversation exports through the real ingest job, then the cognition_artifacts asset, in process."""

import dagster as dg
import pytest

from nexus_pipelines.cognition.assets import CITATIONS_RESOLVE, CONTENT_ADDRESSED, cognition_artifacts
from nexus_pipelines.definitions import defs
from nexus_pipelines.resources import NexusResource
from nexus_query.cognition import ArtifactStore
from nexus_query.cognition.bricks import import_export
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.store import SpaceStore
from tests.helpers import CONVERSATIONS

ACME = RequestContext("acme")
PARTITION = "acme.default.main"
TOPICS = ["what to do with an Embercore stove from an affected batch", "refund for a tent with mildew"]


@pytest.fixture
def instance(nexus_home):
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION, "global"])
        yield instance


def ingest(instance) -> dict:
    result = defs.resolve_job_def("ingest_space").execute_in_process(partition_key=PARTITION, instance=instance)
    assert result.success
    return {e.event_specific_data.materialization.asset_key.path[-1]:
            {k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def assemble_run(instance, topics=TOPICS, partition=PARTITION):
    result = dg.materialize([cognition_artifacts], partition_key=partition, instance=instance,
                            resources={"nexus": NexusResource()},
                            run_config={"ops": {"cognition_artifacts": {"config": {"topics": topics}}}})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    return metadata, {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def test_imported_exports_become_bricks_in_the_ingest_job_and_the_asset_assembles_stored_artifacts(instance):
    files = landing_zone(ACME).files
    tasks = [import_export(files, "main", name, (CONVERSATIONS / name).read_bytes())["task_id"]
             for name in ("claude_conversations.json", "chatgpt_conversations.json")]
    ingested = ingest(instance)  # as the landing sensor starts it: no task tag on the run
    assert ingested["raw_docs"]["conversation_blocks"] == 9 + 16  # every branch's blocks
    assert sorted(ingested["raw_docs"]["import_tasks"]) == sorted(tasks)
    zone = landing_zone(ACME)
    assert {zone.read_task(t).status for t in tasks} == {"succeeded"}
    settled = zone.read_task(tasks[0]).updated_at
    ingest(instance)  # a later run reads the same exports again and leaves their settled tasks alone
    assert zone.read_task(tasks[0]).updated_at == settled
    version = SpaceStore().open(ACME, "main").version

    metadata, checks = assemble_run(instance)
    assert metadata["artifacts"] == 2 and metadata["new_artifacts"] == 2
    assert metadata["coverage_status"] == {"ASSEMBLED": 2}
    assert checks == {CONTENT_ADDRESSED: True, CITATIONS_RESOLVE: True}
    stored = ArtifactStore.for_context(ACME)
    ids = metadata["artifact_ids"]
    assert [stored.get(i)["query"] for i in ids] == TOPICS
    assert "conversations/claude/claude-conv-valve.json" in stored.get(ids[0])["payload"]["provenance"]["source_files"]
    assert SpaceStore().open(ACME, "main").version == version  # assembling never writes the index

    again, _ = assemble_run(instance)
    assert again["artifact_ids"] == ids and again["new_artifacts"] == 0


def test_the_global_partition_has_no_artifacts_to_assemble(instance):
    metadata, checks = assemble_run(instance, partition="global")
    assert (metadata["artifacts"], metadata["skipped"]) == (0, "global space")
    assert all(checks.values())


def test_cognition_artifacts_is_in_the_code_location_downstream_of_space_table():
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey("cognition_artifacts")
    assert graph.get(key).group_name == "cognition"
    assert dg.AssetKey("space_table") in graph.get(key).parent_keys
