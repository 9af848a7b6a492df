"""The landing sensor and the failure sensor, evaluated with Dagster's sensor contexts on real stores."""

import dagster as dg
import numpy as np
import pytest

from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.definitions import defs
from nexus_pipelines.ingest.sensors import ingest_failure_sensor
from nexus_pipelines.ingest.sweep import landing_sweep_sensor
from nexus_pipelines.partitions import TENANT_TAG, SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.landing import landing_zone
from nexus_query.store import Record, SpaceStore, build_rows
from tests.helpers import tick

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
JOB = defs.resolve_job_def("ingest_space")


@pytest.fixture
def instance(nexus_home):
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_a_landed_batch_adds_its_space_and_requests_one_run_keyed_by_the_batch(instance):
    task = landing_zone(ACME).land_batch("main", [{"type": "text", "content": "Tents are waterproof."}])
    result = tick(instance)
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["acme.default.main"]]
    (request,) = result.run_requests
    assert request.run_key == task.task_id and request.partition_key == "acme.default.main"
    assert request.tags[TASK_TAG] == task.task_id and request.tags[TENANT_TAG] == "acme"
    assert instance.get_dynamic_partitions("tenant_spaces") == ["acme.default.main"]
    again = tick(instance, result.cursor)
    assert not again.dynamic_partitions_requests and again.run_requests == []  # the inbox entry was handled


def test_one_tick_covers_every_tenant_with_a_store_and_the_sweep_the_global_space(instance):
    landing_zone(ACME).land_batch("main", [{"type": "text", "content": "acme text"}])
    landing_zone(GLOBEX).land_batch("ops", [{"type": "text", "content": "globex text"}])
    landing_zone(RequestContext("globex", "fleet")).land_batch("main", [{"type": "text", "content": "project"}])
    landing_zone(RequestContext("initech")).land_batch("main", [{"type": "text", "content": "no store route"}])
    result = tick(instance)
    assert sorted(instance.get_dynamic_partitions("tenant_spaces")) == [
        "acme.default.main", "globex.default.ops", "globex.fleet.main"]
    assert {r.partition_key: r.tags[TENANT_TAG] for r in result.run_requests} == {
        "acme.default.main": "acme", "globex.default.ops": "globex", "globex.fleet.main": "globex"}
    # Files system jobs drop into the global space are found by the sweep (tests/test_discovery.py).
    NexusResource().files(SpaceKey.global_space()).write_bytes_atomic(b"shared", "landing", "global", "files", "a.txt")
    sweep = landing_sweep_sensor(dg.build_sensor_context(instance=instance, resources={"nexus": NexusResource()}))
    assert [(r.partition_key, r.tags[TENANT_TAG]) for r in sweep.run_requests] == [("global", "_global")]


def test_a_failed_run_reports_the_error_on_its_task(instance, provider):
    ctx = ACME
    other = EmbedderInfo(model="another-model", dimension=8)
    space = SpaceStore().open_or_create(ctx, "main", other)  # a space built by another embedder
    space.upsert(build_rows(ctx, [Record(text="x", source="x")], np.ones((1, 8), np.float32) / np.sqrt(8), other),
                 other)
    task = landing_zone(ctx).land_batch("main", [{"type": "text", "content": "will not fit"}])
    (request,) = tick(instance).run_requests
    result = JOB.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance,
                                    raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="ingest_failure_sensor", dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), resources={"nexus": NexusResource()},
    ).for_run_failure()
    ingest_failure_sensor(context)
    reported = landing_zone(ctx).read_task(task.task_id)
    assert reported.status == "failed" and reported.run_id == result.run_id
    assert "another-model" in reported.error
