"""Erasure through the HTTP API (a real server on loopback, the request sensor, the job) and through
``nexus erase --wait`` in a separate process, on documents ingested by the real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import httpx
import pytest

from nexus_pipelines.definitions import defs
from nexus_pipelines.erasure.assets import erasure_request_sensor
from nexus_pipelines.resources import NexusResource
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore
from tests.helpers import ACME, CANARY, NOTE, OTHER, PARTITION, files_with, lance_versions_with

KEY = {"Authorization": "Bearer acme-demo-key"}


@pytest.fixture
def instance(nexus_home):
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        yield instance


@pytest.fixture
def client(nexus_home):
    with background_server(create_app(RoutingRegistry.default())) as base_url:
        with httpx.Client(base_url=base_url, timeout=60, headers=KEY) as http:
            yield http


def land_and_ingest(instance) -> None:
    files = landing_zone(ACME).files
    files.write_bytes_atomic(NOTE.encode(), "landing", "main", "files", "canary-note.md")
    files.write_bytes_atomic(OTHER.encode(), "landing", "main", "files", "tents.md")
    assert defs.resolve_job_def("ingest_space").execute_in_process(partition_key=PARTITION, instance=instance).success


def run_requested(instance) -> list[str]:
    """What the request sensor asks for, run as the daemon would; the run keys."""
    context = dg.build_sensor_context(instance=instance, resources={"nexus": NexusResource()})
    result = erasure_request_sensor(context)
    for request in result.run_requests:
        run = defs.resolve_job_def("erase_space").execute_in_process(
            partition_key=request.partition_key, instance=instance, run_config=request.run_config, tags=request.tags)
        assert run.success
    return [r.run_key for r in result.run_requests]


def test_post_erase_answers_202_and_the_sensor_run_erases_and_reports_the_receipt_on_the_task(instance, client):
    land_and_ingest(instance)
    page = client.post("/nexus/spaces/main/query", json={"q": CANARY, "top_k": 1}).json()
    assert CANARY in page["hits"][0]["content"] and page["next_cursor"]
    answer = client.post("/nexus/spaces/main/erase", json={"sources": ["canary-note.md"]})
    assert answer.status_code == 202
    task_id = answer.json()["task_id"]
    assert client.get(f"/nexus/tasks/{task_id}").json()["status"] == "queued"
    assert run_requested(instance) == [f"erase:{task_id}"]
    task = client.get(f"/nexus/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["kind"] == "erasure"
    assert task["counts"]["rows_deleted"] == 1 and task["counts"]["landing_files_removed"] == 1
    assert run_requested(instance) == []  # answered requests are not run again
    hits = client.post("/nexus/spaces/main/query", json={"q": CANARY, "top_k": 20}).json()["hits"]
    assert hits and all(CANARY not in h["content"] for h in hits)
    stale = client.post("/nexus/spaces/main/query", json={"q": CANARY, "top_k": 1, "cursor": page["next_cursor"]})
    assert (stale.status_code, stale.json()["error"]["code"]) == (410, "nexus.cursor_invalid")


def test_delete_space_erases_the_table_and_every_file_of_the_space(instance, client, nexus_home):
    land_and_ingest(instance)
    answer = client.delete("/nexus/spaces/main")
    assert answer.status_code == 202
    run_requested(instance)
    task = client.get(f"/nexus/tasks/{answer.json()['task_id']}").json()
    assert task["status"] == "succeeded" and task["counts"]["rows_deleted"] == 2
    assert not SpaceStore().exists(ACME, "main")
    refused = client.post("/nexus/spaces/main/query", json={"q": "tent"}).json()
    assert refused["error"]["code"] == "nexus.space_not_found"
    assert files_with(nexus_home, CANARY.encode()) == [] and lance_versions_with(nexus_home, CANARY) == []


@pytest.mark.parametrize("body, status, code", [
    ({"sources": ["a.md"], "doc_ids": ["b"]}, 422, "nexus.validation_failed"),
    ({}, 422, "nexus.validation_failed"),
    ({"sources": []}, 422, "nexus.validation_failed"),
    ({"sources": ["../../globex/default/landing/x.md"]}, 404, "nexus.nothing_to_erase"),  # compared, never a path
    ({"sources": ["/etc/passwd"]}, 422, "nexus.validation_failed"),
])
def test_bad_erase_requests_are_refused_with_the_error_envelope_and_nothing_is_queued(client, store, provider, body,
                                                                                      status, code):
    store.open_or_create(ACME, "main", provider.info)  # the space exists: the names themselves are refused
    answer = client.post("/nexus/spaces/main/erase", json=body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert landing_zone(ACME).files.list("erasures") == []


def test_the_global_space_is_not_erased_through_the_api_and_no_key_is_401(client):
    assert client.delete("/nexus/spaces/global").json()["error"]["code"] == "nexus.global_space_read_only"
    answer = client.post("/nexus/spaces/global/erase", json={"doc_ids": ["x"]})
    assert answer.status_code == 403
    assert httpx.post(f"{client.base_url}/nexus/spaces/main/erase", json={"doc_ids": ["x"]}).status_code == 401


def test_nexus_erase_wait_leaves_the_token_in_no_file_under_nexus_home_or_dagster_home(instance, nexus_home,
                                                                                        tmp_path):
    land_and_ingest(instance)
    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    env = {**os.environ, "NEXUS_HOME": str(nexus_home), "DAGSTER_HOME": str(dagster_home),
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    done = subprocess.run([sys.executable, "-m", "nexus_query.cli", "erase", "--key", "acme-demo-key", "--space",
                           "main", "--source", "canary-note.md", "--wait"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    receipt = json.loads(done.stdout)
    assert receipt["rows_deleted"] == 1 and receipt["verified"] is True
    assert "space_erasure - planned:" in done.stderr  # a line per step of the erasure
    assert " - DEBUG - " not in done.stderr  # and none of Dagster's event lines
    assert files_with(nexus_home, CANARY.encode()) == [] and files_with(dagster_home, CANARY.encode()) == []
    assert lance_versions_with(nexus_home, CANARY) == []


def test_nexus_erase_without_wait_queues_the_request_and_refuses_a_missing_choice(nexus_home, capsys):
    from nexus_query.cli import main

    assert main(["erase", "--key", "acme-demo-key", "--space", "main", "--doc-id", "faq-1"]) != 0
    assert "nexus.space_not_found" in capsys.readouterr().err  # no such space yet: nothing is queued
    landing_zone(ACME).land_batch("main", [{"type": "text", "id": "faq-2", "content": OTHER}])
    assert main(["erase", "--key", "acme-demo-key", "--space", "main", "--doc-id", "faq-1"]) == 1
    assert "nexus.nothing_to_erase" in capsys.readouterr().err
    landing_zone(ACME).land_batch("main", [{"type": "text", "id": "faq-1", "content": OTHER}])
    assert main(["erase", "--key", "acme-demo-key", "--space", "main", "--doc-id", "faq-1"]) == 0
    queued = json.loads(capsys.readouterr().out)
    assert landing_zone(ACME).read_task(queued["task_id"]).status == "queued"
    with pytest.raises(SystemExit):
        main(["erase", "--key", "acme-demo-key", "--space", "main"])
