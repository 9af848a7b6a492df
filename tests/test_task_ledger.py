"""The task ledger against real Dagster runs: a run killed mid-way and then completed by the next run
leaves every task ``succeeded``; a failed task keeps its root error and, once retried, is ingested once;
a run Dagster will retry marks nothing failed; ``dagster.yaml`` bounds run retries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from nexus_pipelines.common.dagster_tags import WILL_RETRY_TAG
from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.definitions import defs
from nexus_pipelines.ingest.sensors import ingest_failure_sensor, landing_sensor
from nexus_pipelines.resources import NexusResource
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.landing import landing_zone
from nexus_query.store import Record, SpaceStore, build_rows

ACME = RequestContext("acme")
JOB = defs.resolve_job_def("ingest_space")
PARTITION = "acme.default.main"
REPO = Path(__file__).resolve().parents[1]


def tick(instance, cursor=None) -> dg.SensorResult:
    result = landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                    resources={"nexus": NexusResource()}))
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def report_failure(instance, run_id: str) -> None:
    """What the daemon does for a failed run: evaluate ``ingest_failure_sensor`` on it."""
    run = instance.get_run_by_id(run_id)
    failure = next(iter(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)))
    context = dg.build_run_status_sensor_context(
        sensor_name="ingest_failure_sensor", dagster_event=failure.dagster_event, dagster_instance=instance,
        dagster_run=run, resources={"nexus": NexusResource()}).for_run_failure()
    ingest_failure_sensor(context)


KILLED_RUN = """
import sys, dagster as dg
from nexus_pipelines.definitions import defs
with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def("ingest_space").execute_in_process(
        partition_key=sys.argv[1], instance=instance, tags={"nexus/task_id": sys.argv[2]})
"""


@pytest.mark.slow
def test_a_run_killed_mid_way_then_completed_by_the_next_run_leaves_every_task_succeeded(dagster_home, provider):
    zone = landing_zone(ACME)
    first = zone.land_batch("main", [{"type": "text", "content": "Tents can be returned within 60 days."}])
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, PARTITION, first.task_id], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):  # bounded poll: until raw_docs claimed the task, then kill the run's process
            if zone.read_task(first.task_id).status == "running" or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = zone.read_task(first.task_id)
    assert killed.status == "running"
    second = zone.land_batch("main", [{"type": "text", "content": "Stoves ship within two days."}])
    with dg.DagsterInstance.get() as instance:
        result = JOB.execute_in_process(partition_key=PARTITION, instance=instance, tags={TASK_TAG: second.task_id})
        # run monitoring later marks the killed run failed; its failure must not undo the later success
        instance.report_run_failed(instance.get_run_by_id(killed.run_id))
        report_failure(instance, killed.run_id)
    for task_id in (first.task_id, second.task_id):
        task = zone.read_task(task_id)
        assert (task.status, task.run_id, task.error) == ("succeeded", result.run_id, None)
        assert task.counts["rows"] == 2


def _mismatched_space() -> None:
    other = EmbedderInfo(model="another-model", dimension=8)
    space = SpaceStore().open_or_create(ACME, "main", other)
    space.upsert(build_rows(ACME, [Record(text="x", source="x")], np.ones((1, 8), np.float32) / np.sqrt(8), other),
                 other)


@pytest.mark.slow
def test_a_failed_task_keeps_its_root_error_and_a_retry_ingests_it_once(nexus_home, provider):
    _mismatched_space()  # the cause: a space built by another embedder
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "Gift cards never expire.", "id": "gift-cards"}])
    with dg.DagsterInstance.ephemeral() as instance:
        first_tick = tick(instance)
        (request,) = first_tick.run_requests
        failed_run = JOB.execute_in_process(partition_key=PARTITION, tags=request.tags, instance=instance,
                                            raise_on_error=False)
        report_failure(instance, failed_run.run_id)
        failed = zone.read_task(task.task_id)
        assert failed.status == "failed" and "another-model" in failed.error and "dagster" not in failed.error.lower()

        shutil.rmtree(SpaceStore().location(ACME, "main").dataset_uri)  # the operator removes the cause
        zone.retry_task(task.task_id)
        second_tick = tick(instance, first_tick.cursor)
        (retry,) = second_tick.run_requests
        assert retry.run_key != request.run_key and retry.tags[TASK_TAG] == task.task_id
        result = JOB.execute_in_process(partition_key=PARTITION, tags=retry.tags, instance=instance)
        assert tick(instance, second_tick.cursor).run_requests == []
    done = zone.read_task(task.task_id)
    assert (done.status, done.run_id, done.attempts, done.error) == ("succeeded", result.run_id, 2, None)
    rows = SpaceStore().open(ACME, "main").table.search().select(["source"]).limit(None).to_list()
    assert [r["source"] for r in rows] == ["gift-cards"]


def test_a_failed_run_that_dagster_will_retry_marks_no_task_failed(nexus_home, provider):
    _mismatched_space()
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "will be retried"}])
    with dg.DagsterInstance.ephemeral() as instance:
        (request,) = tick(instance).run_requests
        run = JOB.execute_in_process(partition_key=PARTITION, tags=request.tags, instance=instance,
                                     raise_on_error=False)
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"})
        report_failure(instance, run.run_id)
    assert zone.read_task(task.task_id).status == "running"


def test_dagster_yaml_retries_crashed_runs_twice_and_not_failing_code(dagster_home):
    with dg.DagsterInstance.get() as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
