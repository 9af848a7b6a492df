"""The whole flow with every store on S3 (moto_server on 127.0.0.1), routed by the registry alone: HTTP
ingest over a real socket → landing sensor → ingest runs (a tenant space and the global space) → query
→ HAZE map → cognition artifact → KPI facts; and nothing of a tenant's is written under the local data
root."""

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import dagster as dg
import httpx
import pytest
import yaml

from nexus_pipelines.definitions import defs
from nexus_pipelines.demo import EXAMPLES, land_examples
from nexus_pipelines.haze.assets import haze_request_sensor
from nexus_pipelines.ingest.sweep import landing_sweep_sensor
from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.api.app import create_app
from nexus_query.api.server import background_server
from nexus_query.cognition.bricks import import_export
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
from tests.helpers import tick

ACME = RequestContext("acme")
ACME_KEY = {"Authorization": "Bearer acme-demo-key"}
PARTITION = "acme.default.main"
TOPIC = "tent returned with mildew"
KPI_CHECK = datetime(2026, 11, 16, 14, 5, tzinfo=UTC)  # five past the hour the example data ends


@pytest.fixture
def all_on_s3(s3_config, monkeypatch) -> dict:
    """The s3_config registry, completed: the global space's files on S3 too, and a cursor secret, so
    that no route or secret falls back to the local data root."""
    raw = yaml.safe_load(Path(s3_config).read_text())
    dev = raw["environments"]["dev"]
    for kind, prefix in (("nexus_blob_store", "blobs-global"), ("nexus_projection_store", "projections-global")):
        dev["global"][kind] = {**dev["defaults"][kind], "prefix": prefix}
    raw["cursor"]["secret"] = "s3-flow-cursor-secret-0123456789"
    path = Path(s3_config).with_name("nexus-all-s3.yaml")
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    return raw


def run_requests(instance, job_name: str, requests) -> list[dg.ExecuteInProcessResult]:
    """Execute what a sensor asked for, as the daemon would launch it."""
    job = defs.resolve_job_def(job_name)
    results = [job.execute_in_process(partition_key=r.partition_key, run_config=r.run_config or None, tags=r.tags,
                                      instance=instance) for r in requests]
    assert all(r.success for r in results)
    return results


def s3_keys(bucket: str, endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.mark.slow
def test_the_whole_flow_runs_with_every_store_on_s3_and_writes_nothing_under_the_data_root(
        nexus_home, all_on_s3, moto_endpoint, provider):
    registry = RoutingRegistry.default()
    data_root = registry.config.data_root
    assert data_root == nexus_home.resolve()  # NEXUS_HOME and the registry's data_root: one local root
    bucket = registry.config.environments["dev"].global_routes.nexus_blob_store.bucket
    nexus = NexusResource()
    documents = [json.loads(line) for name in ("returns.jsonl", "products.jsonl")
                 for line in (EXAMPLES / "acme" / name).read_text().splitlines() if line.strip()]
    # System jobs fill the global space; a tenant imports a chat export for cognition.
    land_examples(nexus.files(SpaceKey.global_space()), "global", EXAMPLES / "global")
    export = EXAMPLES / "acme" / "conversations" / "support-chats-chatgpt.json"
    import_export(landing_zone(ACME, registry).files, "main", export.name, export.read_bytes())

    with background_server(create_app()) as base_url, \
            httpx.Client(base_url=base_url, headers=ACME_KEY, timeout=120) as http, \
            dg.instance_for_test() as instance:
        accepted = http.post("/nexus/spaces/main/ingest", json={"items": documents})
        assert accepted.status_code == 202
        task_id = accepted.json()["task_id"]

        # Landing sensor → the announced batch's run; the sweep → a run for each space with files dropped
        # without the API (acme's export, imported here without announcing it, and the global space's files).
        sensed = tick(instance)
        assert {r.partition_key for r in sensed.run_requests} == {PARTITION}
        swept = tick(instance, sensor=landing_sweep_sensor)
        assert {r.partition_key for r in swept.run_requests} == {PARTITION, "global"}
        ingests = run_requests(instance, "ingest_space", [*sensed.run_requests, *swept.run_requests])
        assert http.get(f"/nexus/tasks/{task_id}").json()["status"] == "succeeded"
        tables = [r.asset_materializations_for_node("space_table")[0].metadata for r in ingests]
        assert all(t["uri"].value.startswith("s3://") for t in tables)
        assert all(t["commit_conflicts_retried"].value == 0 for t in tables)  # one writer at a time here

        # Query over HTTP, merged with the global space, with a second page from the cursor.
        first = http.post("/nexus/spaces/main/query", json={"q": "how do I return a tent?", "top_k": 3,
                                                             "include_global": True}).json()
        assert any(h["metadata"].get("topic") == "returns" for h in first["hits"]) and first["next_cursor"]
        second = http.post("/nexus/spaces/main/query", json={"q": "how do I return a tent?", "top_k": 3,
                                                              "include_global": True, "cursor": first["next_cursor"]})
        assert second.status_code == 200 and len(second.json()["hits"]) == 3
        merged = http.post("/nexus/spaces/main/query", json={"q": "ISO 8601 timestamps in UTC", "top_k": 5,
                                                              "include_global": True}).json()["hits"]
        assert merged[0]["space"] == "global" and "ISO 8601" in merged[0]["content"]

        # HAZE: a snapshot requested over HTTP, drawn by the run its sensor asks for, streamed back.
        assert http.post("/nexus/spaces/main/haze/snapshot", json={}).status_code == 202
        haze = haze_request_sensor(dg.build_sensor_context(instance=instance, resources={"nexus": nexus}))
        run_requests(instance, "haze_space", haze.run_requests)
        points = [json.loads(line) for line in http.get("/nexus/spaces/main/haze/points").text.splitlines() if line]
        assert len(points) >= len(documents) and {"x", "y", "cluster"} <= set(points[0])

        # Cognition: the artifact of a topic, assembled from the export's bricks, read back over HTTP.
        cognition = dg.materialize([defs.get_assets_def("cognition_artifacts")], partition_key=PARTITION,
                                   instance=instance, resources={"nexus": nexus},
                                   run_config={"ops": {"cognition_artifacts": {"config": {"topics": [TOPIC]}}}})
        (artifact_id,) = cognition.asset_materializations_for_node("cognition_artifacts")[0].metadata[
            "artifact_ids"].value
        artifact = http.get(f"/nexus/artifacts/{artifact_id}").json()
        assert artifact["artifact_id"] == artifact_id and artifact["payload"]["coverage_status"] == "ASSEMBLED"

        # KPI facts: the tenant's measurements in its blob store become facts in the space.
        files = nexus.files(SpaceKey.parse(PARTITION))
        for name, parts in (("catalogue.yaml", ("kpi", "main", "catalogue.yaml")),
                            ("measurements.csv", ("kpi", "main", "measurements", "measurements.csv"))):
            files.write_bytes_atomic((EXAMPLES / "acme" / "kpi" / name).read_bytes(), *parts)
        kpi = defs.resolve_job_def("kpi_facts_job").execute_in_process(
            partition_key=PARTITION, instance=instance,
            run_config={"ops": {"kpi_fact_docs": {"config": {"as_of": KPI_CHECK.isoformat()}}}})
        assert kpi.success
        facts = http.post("/nexus/spaces/main/query", json={"q": "how is checkout latency?", "top_k": 20}).json()
        assert any(h["metadata"].get("metric") == "checkout_latency_p95" for h in facts["hits"])

    keys = s3_keys(bucket, moto_endpoint)
    expected = {
        "LanceDB, tenant space": "lance/acme/default/main.lance/",
        "LanceDB, global space": "lance-global/main.lance/",
        "landing zone": "blobs/acme/default/landing/main/batches/",
        "intermediate assets": "blobs/acme/default/pipelines/",
        "blob store (conversation sources)": "blobs/acme/default/",
        "global space's files": "blobs-global/_global/shared/landing/global/files/",
        "projection store (HAZE)": "projections/acme/default/haze/main/",
        "KPI source": "blobs/acme/default/kpi/main/",
    }
    for store, prefix in expected.items():
        assert any(k.startswith(prefix) for k in keys), f"nothing of the {store} on S3 under {prefix}"
    assert any(k.startswith("blobs/acme/default/") and artifact_id.split(":")[1] in k for k in keys)  # artifact store
    written = sorted(str(p.relative_to(data_root)) for p in data_root.rglob("*") if p.is_file()) \
        if data_root.exists() else []
    assert written == [], f"tenant data leaked to the local data root: {written[:20]}"
