"""End to end: HTTP ingest → landing sensor → the run it asks for → the document is found, the task says so."""

import os

import dagster as dg
import httpx
import pytest

from nexus_pipelines.definitions import defs
from nexus_pipelines.ingest.sensors import landing_sensor
from nexus_pipelines.resources import NexusResource
from nexus_query.context import RequestContext
from nexus_query.query import query
from tests.helpers import start_nexus_serve, stop

ACME_KEY = {"Authorization": "Bearer acme-demo-key"}


@pytest.mark.slow  # starts `nexus serve`
def test_an_http_batch_is_ingested_by_the_run_the_sensor_requests_and_its_task_succeeds(nexus_home, provider):
    server, port = start_nexus_serve({**os.environ, "NEXUS_HOME": str(nexus_home)})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=ACME_KEY, timeout=30) as http:
            accepted = http.post("/nexus/spaces/main/ingest", json={"items": [
                {"type": "text", "content": "The Ridgeline 9 tent has a single titanium pole and weighs 900 g.",
                 "metadata": {"source": "catalogue"}}]})
            assert accepted.status_code == 202
            task_id = accepted.json()["task_id"]
            assert http.get(f"/nexus/tasks/{task_id}").json()["status"] == "queued"

            with dg.DagsterInstance.ephemeral() as instance:
                resources = {"nexus": NexusResource()}
                evaluation = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources))
                for request in evaluation.dynamic_partitions_requests:
                    instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                (run_request,) = evaluation.run_requests
                assert run_request.run_key == task_id
                run = defs.resolve_job_def("ingest_space").execute_in_process(
                    partition_key=run_request.partition_key, tags=run_request.tags, instance=instance)
                assert run.success

                hit = query(RequestContext("acme"), "main", "which tent has a titanium pole?", top_k=1).hits[0]
                assert "Ridgeline 9" in hit.content and hit.metadata["source"] == "catalogue"
                task = http.get(f"/nexus/tasks/{task_id}").json()
                assert task["status"] == "succeeded" and task["run_id"] == run.run_id
                assert task["counts"]["rows_added"] == 1 and task["counts"]["items"] == 1

                later = landing_sensor(dg.build_sensor_context(instance=instance, cursor=evaluation.cursor,
                                                               resources=resources))
                assert later.run_requests == [] and not later.dynamic_partitions_requests
    finally:
        stop(server)
