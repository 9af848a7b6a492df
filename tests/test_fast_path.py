"""The fast path and the claim: a small batch is queryable when ``land_and_wait`` returns, recorded in
Dagster as a ``space_table`` materialization, and the next run finds nothing left to do; a claimed
request is never started by a sensor; a process killed at any step of a fast write loses and
duplicates nothing once the claim lapses and the pipeline picks the batch up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import httpx
import pytest

from nexus_pipelines.erasure.assets import erasure_request_sensor
from nexus_pipelines.ingest.fast import land_and_wait
from nexus_pipelines.ingest.requests import (
    files_claim_id,
    files_request,
    record_files_seen,
    run_key_if_queued,
    space_files,
)
from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.api.ingest_body import WORKER_NICENESS
from nexus_query.claims import ClaimHeld, Claims, claimed, new_owner
from nexus_query.erasure import request_erasure
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.store import SpaceStore
from tests.helpers import ACME, ACME_KEY, REPO, auth, land, poll, start_nexus_serve
from tests.process_guard import process_tree

KEY = SpaceKey("acme", "default", "notes")


def test_a_claim_has_one_holder_until_it_is_released_or_its_lease_lapses(nexus_home):
    claims = Claims(landing_zone(ACME).files, lease_seconds=0.5)
    first, second = new_owner("a"), new_owner("b")
    held = claims.acquire("batch-1", first)
    assert held is not None and held.generation == 1
    assert claims.acquire("batch-1", second) is None
    assert claims.held_by_other("batch-1", second) and not claims.held_by_other("batch-1", first)
    time.sleep(0.6)  # the holder died: nobody renewed
    taken = claims.acquire("batch-1", second)
    assert taken is not None and taken.generation == 2 and taken.owner == second
    claims.release(taken)
    assert not claims.held_by_other("batch-1", first)
    assert claims.current("never-claimed") is None


def test_a_held_claim_is_renewed_while_its_holder_works(nexus_home):
    claims = Claims(landing_zone(ACME).files, lease_seconds=0.6)
    with claims.hold(claims.acquire("batch-2", new_owner("a"))):
        time.sleep(1.5)  # longer than the lease: only renewal keeps it
        assert claims.held_by_other("batch-2", new_owner("b"))
    assert not claims.held_by_other("batch-2", new_owner("b"))


def test_a_second_claimant_waits_for_the_holder_to_finish_or_gives_up_after_its_bound(nexus_home):
    zone = landing_zone(ACME)
    claims = Claims(zone.files)
    first = claims.acquire("files-import", new_owner("import"))
    with pytest.raises(ClaimHeld):
        with claimed(zone.files, "files-import", role="import"):
            pass
    releaser = threading.Timer(0.5, claims.release, [first])
    releaser.start()
    with claimed(zone.files, "files-import", role="import", wait=60) as holding:
        assert holding.claim.generation == 2  # taken only once the first holder let go
    releaser.join()


def test_sensors_start_no_run_for_a_batch_someone_holds(nexus_home):
    zone = landing_zone(ACME)
    claims = Claims(zone.files)
    claim = claims.acquire("0" * 32, new_owner("serve"))
    task = zone.land_batch("notes", [{"type": "text", "content": "held"}], batch_id=claim.request_id)
    assert run_key_if_queued(zone, "notes", task.task_id) is None
    claims.release(claim)  # released with its task still queued (its holder failed to finish): a run takes it
    assert run_key_if_queued(zone, "notes", task.task_id) == task.task_id


def test_the_erasure_sensor_leaves_a_claimed_request_to_its_holder_and_takes_it_once_the_claim_is_gone(nexus_home):
    claims = Claims(landing_zone(ACME).files)
    claim = claims.acquire("e" * 32, new_owner("erase"))
    landing_zone(ACME).land_batch("notes", [{"type": "text", "id": "note-md", "content": "a note to erase"}])
    request_erasure(ACME, "notes", "doc_ids", ["note-md"], task_id=claim.request_id)  # as `nexus erase --wait`
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"nexus": NexusResource()})
        assert erasure_request_sensor(context).run_requests == []
        claims.release(claim)  # its holder stopped without finishing: the daemon runs it, once
        context = dg.build_sensor_context(instance=instance, resources={"nexus": NexusResource()})
        assert [r.run_key for r in erasure_request_sensor(context).run_requests] == [f"erase:{claim.request_id}"]


def test_an_import_under_claim_gets_no_sensor_run_and_a_dead_importers_files_get_one(nexus_home):
    zone = landing_zone(ACME)
    claims = Claims(zone.files)
    claim = claims.acquire(files_claim_id("notes"), new_owner("import"))
    land(ACME, "chat.json", b"[]", space_id="notes")
    assert files_request(zone, KEY, space_files(zone, "notes")) is None  # the importer reads them
    record_files_seen(zone, "notes")  # what import_and_wait does once its ingest succeeded
    claims.release(claim)
    assert files_request(zone, KEY, space_files(zone, "notes")) is None  # nothing left for a second run
    claim = claims.acquire(files_claim_id("notes"), new_owner("import"))
    land(ACME, "later.json", b"[]", space_id="notes")
    claims.release(claim)  # the importer died before ingesting: the sensors take the files, once
    assert files_request(zone, KEY, space_files(zone, "notes")) is not None
    assert files_request(zone, KEY, space_files(zone, "notes")) is None


@pytest.mark.slow
def test_land_and_wait_returns_queryable_recorded_in_dagster_and_leaves_the_next_run_nothing(dagster_home,
                                                                                          provider):
    items = [{"type": "text", "content": "The Ridgeline stove weighs 2.1 kg with its pot.",
              "metadata": {"source": "Résumé draft's stove.md"}}]
    landed = land_and_wait(ACME, "notes", items)
    assert landed.path == "fast" and landed.task.status == "succeeded"
    assert landed.counts["rows_added"] == 1
    hits = query(ACME, "notes", "how heavy is the stove?", top_k=1).hits
    assert "2.1 kg" in hits[0].content
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("space_table"), asset_partitions=[KEY.partition_key]),
            limit=5).records
        (record,) = records
        metadata = record.asset_materialization.metadata
        assert metadata["task_id"].value == landed.task.task_id and metadata["rows_added"].value == 1
        run = ingest_space_in_process(KEY, instance=instance, progress=False)
    assert run.success
    assert (run.table["rows_added"], run.table["rows_updated"], run.table["rows_deleted"]) == (0, 0, 0)
    assert SpaceStore().open(ACME, "notes").count() == 1


KILLER = """
import os, signal, sys
import nexus_query.claims as claims
claims.LEASE_SECONDS = 1.0
import nexus_pipelines.ingest.fast as fast
from nexus_query.context import RequestContext

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

step = sys.argv[1]
if step == "before_write":
    fast.upsert_records = die
else:
    fast.record_materialization = die
fast.land_and_wait(RequestContext("acme"), "notes", [{"type": "text", "content": "Canary 7f3a: killed mid-write."}])
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", ["before_write", "after_write"])
def test_a_fast_writer_killed_at_any_step_loses_and_duplicates_nothing(dagster_home, provider, step):
    proc = subprocess.run([sys.executable, "-c", KILLER, step], env={**os.environ, "PYTHONPATH": str(REPO)},
                          cwd=REPO, capture_output=True, timeout=600)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    zone = landing_zone(ACME)
    (batch_id,) = zone.batch_ids("notes")
    assert zone.read_task(batch_id).status == "queued"  # never succeeded without its rows
    time.sleep(1.2)  # the dead holder's lease lapses
    assert run_key_if_queued(zone, "notes", batch_id) == batch_id  # what the sensors now start
    with dg.DagsterInstance.get() as instance:
        run = ingest_space_in_process(KEY, instance=instance, task_id=batch_id, progress=False)
    assert run.success and zone.read_task(batch_id).status == "succeeded"
    space = SpaceStore().open(ACME, "notes")
    assert space.count() == 1
    assert run.table["rows_added"] == (1 if step == "before_write" else 0)
    assert "Canary 7f3a" in query(ACME, "notes", "killed mid-write", top_k=1).hits[0].content


WARM_PROBE = """
import gc

import psutil

from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.embeddings import get_provider
from nexus_query.store import snapshot_scan

with background_server(create_app(warm_serving=True, warm_ingest_worker=True)):
    workers = psutil.Process().children()
    print(get_provider()._encoder is not None, snapshot_scan._kernels is not None, [w.nice() for w in workers],
          gc.get_freeze_count() > 0)
"""


@pytest.mark.slow
def test_a_warm_serving_app_has_loaded_the_model_compiled_the_scan_and_started_its_worker_before_serving(
        nexus_home):
    proc = subprocess.run([sys.executable, "-c", WARM_PROBE], env={**os.environ, "PYTHONPATH": str(REPO)},
                          cwd=REPO, capture_output=True, timeout=600, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the ingest worker lowers its priority once its imports are done: it waits idle, not importing
    # and what start-up built is frozen out of the collector's way (the first requests pay no full collection)
    assert proc.stdout.split() == ["True", "True", f"[{WORKER_NICENESS}]", "True"]


@pytest.mark.slow
def test_nexus_serve_killed_right_after_accepting_a_batch_loses_and_duplicates_nothing(dagster_home, provider):
    proc, port = start_nexus_serve({**os.environ, "PYTHONPATH": str(REPO)})
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/nexus/spaces/notes/ingest", headers=auth(ACME_KEY), timeout=60,
                            json={"items": [{"type": "text", "content": "Canary 9c1d: the server died here."}]})
    finally:
        for process in process_tree(proc.pid):  # a crash: no shutdown, the writer thread dies wherever it is
            process.kill()
        proc.wait()
    assert answer.status_code == 202
    task_id = answer.json()["task_id"]
    zone = landing_zone(ACME)
    if zone.read_task(task_id).status != "succeeded":  # it died before settling: the task waits, still queued
        assert zone.read_task(task_id).status == "queued"
        assert poll(lambda: run_key_if_queued(zone, "notes", task_id), attempts=90) == task_id  # lease lapsed
    with dg.DagsterInstance.get() as instance:  # what the sweep's run does (for a settled task: nothing)
        run = ingest_space_in_process(KEY, instance=instance, progress=False)
    assert run.success and zone.read_task(task_id).status == "succeeded"
    assert SpaceStore().open(ACME, "notes").count() == 1
    assert "Canary 9c1d" in query(ACME, "notes", "where did the server die?", top_k=1).hits[0].content


@pytest.mark.slow
def test_a_fast_write_beside_a_pipeline_run_of_the_same_space_keeps_every_row_once(dagster_home, provider):
    zone = landing_zone(ACME)
    queued = zone.land_batch("notes", [{"type": "text", "content": f"Run note {i}: the tent pegs are steel."}
                                       for i in range(8)])
    with dg.DagsterInstance.get() as instance, ThreadPoolExecutor(1) as pool:
        run = pool.submit(ingest_space_in_process, KEY, instance=instance, progress=False)
        landed = land_and_wait(ACME, "notes", [{"type": "text", "content": "Fast note: the stove is titanium."}],
                               instance=instance)
        assert run.result().success and landed.succeeded
    assert zone.read_task(queued.task_id).status == "succeeded"
    ids = SpaceStore().open(ACME, "notes").table.to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 9
