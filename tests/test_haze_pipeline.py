"""HAZE in Dagster and over HTTP: the partitioned asset and its metadata, and a re-projection requested
with POST .../haze/snapshot that the sensor turns into a run, whose points GET .../haze/points streams."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import dagster as dg
import httpx
import pytest
from PIL import Image

from nexus_pipelines.definitions import defs
from nexus_pipelines.haze.assets import HazeConfig, haze_projection, haze_refresh_sensor, haze_request_sensor
from nexus_pipelines.haze.reducer import ProjectionParams
from nexus_pipelines.partitions import space_job, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.context import RequestContext
from nexus_query.haze import HazeStore, pending_requests, request_snapshot
from nexus_query.landing import landing_zone
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from nexus_query.store import Record, build_rows
from tests.helpers import load_topics

ACME = RequestContext("acme")
PARTITION = "acme.default.main"
ACME_KEY = {"Authorization": "Bearer acme-demo-key"}


@pytest.fixture
def topics_space(store, provider, topic_corpus):
    rows, vectors = topic_corpus
    return load_topics(store, provider, ACME, "main", rows[::2], vectors[::2])


def test_haze_projection_is_in_the_code_location_partitioned_per_space():
    asset = defs.resolve_assets_def("haze_projection")
    assert asset.group_names_by_key[dg.AssetKey("haze_projection")] == "haze"
    assert asset.partitions_def.name == "tenant_spaces"
    assert dg.AssetKey("space_table") in asset.asset_deps[dg.AssetKey("haze_projection")]
    assert defs.resolve_sensor_def("haze_request_sensor") is not None


def test_the_asset_config_offers_every_projection_parameter_with_its_default_and_refit():
    fields = {name: field.default for name, field in HazeConfig.model_fields.items()}
    assert fields == {"refit": False, **ProjectionParams().as_dict()}
    config = HazeConfig(method="tsne", sample_size=500, refit=True)
    assert config.params() == ProjectionParams(method="tsne", sample_size=500)
    schema = haze_projection.op.config_schema.config_type.fields
    assert set(schema) == set(fields) and not any(f.is_required for f in schema.values())


def test_materializing_a_partition_stores_a_map_and_shows_it_in_the_metadata(topics_space):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        result = dg.materialize([haze_projection], partition_key=PARTITION, instance=instance,
                                resources={"nexus": NexusResource()})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("haze_projection")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["rows"] == 100 and metadata["table_version"] == topics_space.version
    assert metadata["snapshot_id"] == HazeStore.for_context(ACME).latest_snapshot_id("main")
    assert metadata["clusters"] >= 2 and metadata["seconds_total"] > 0
    thumbnail = base64.b64decode(metadata["map"].split("base64,")[1].split(")")[0])
    assert thumbnail.startswith(b"\x89PNG\r\n\x1a\n") and len(thumbnail) < 80_000  # inline, in the event log
    assert Image.open(io.BytesIO(thumbnail)).width >= 480
    # capability links that open with a click (tests/test_links.py follows them)
    assert metadata["map_png"].startswith("http://127.0.0.1:8000/nexus/links/")
    assert metadata["map_png"] in metadata["map"]  # the thumbnail opens the full picture
    assert metadata["html_map"].endswith("/map.html")
    assert metadata["html_map_url"].startswith("http://127.0.0.1:8000/nexus/links/")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"points_match_rows", "snapshot_readable"} and all(c.passed for c in checks.values())
    assert checks["points_match_rows"].metadata["points"].value == 100
    assert {c.partition for c in checks.values()} == {PARTITION}  # each space's map checked as that space


def test_haze_checks_read_the_stores_and_fail_on_a_broken_snapshot(topics_space):
    from nexus_pipelines.haze.checks import inspect_snapshot
    from nexus_pipelines.haze.projection import project_space
    from nexus_pipelines.haze.writer import parquet_bytes

    haze = HazeStore.for_context(ACME)
    project_space(topics_space, haze, "main")
    assert all(c.passed for c in inspect_snapshot(topics_space, haze, "main"))
    latest = haze.latest_snapshot_id("main")
    haze.files.write_bytes_atomic(b"not a picture", *haze.snapshot_parts("main", latest, "map.png"))
    points = haze.open("main", latest).to_arrow()
    haze.files.write_bytes_atomic(parquet_bytes(points.slice(1)),
                                  *haze.snapshot_parts("main", latest, "points.parquet"))
    passed = {c.check_name: c.passed for c in inspect_snapshot(topics_space, haze, "main")}
    assert passed == {"points_match_rows": False, "snapshot_readable": False}  # a point lost, a picture broken


def test_a_snapshot_request_over_http_runs_once_and_its_points_stream_back(topics_space):
    registry = RoutingRegistry.default()
    with background_server(create_app(registry)) as base_url, \
            httpx.Client(base_url=base_url, headers=ACME_KEY, timeout=60) as http:
        missing = http.get("/nexus/spaces/main/haze/points")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "nexus.haze_snapshot_not_found"
        assert http.post("/nexus/spaces/nowhere/haze/snapshot").json()["error"]["code"] == "nexus.space_not_found"
        assert http.post("/nexus/spaces/main/haze/snapshot", json={"method": "pca"}).status_code == 422
        assert httpx.get(f"{base_url}/nexus/spaces/main/haze/points").status_code == 401

        accepted = http.post("/nexus/spaces/main/haze/snapshot", json={"refit": True})
        assert accepted.status_code == 202
        task_id = accepted.json()["task_id"]
        assert http.get(f"/nexus/tasks/{task_id}").json() | {"status": "queued", "kind": "haze_snapshot"} == \
            http.get(f"/nexus/tasks/{task_id}").json()

        with dg.instance_for_test() as instance:
            resources = {"nexus": NexusResource()}
            evaluation = haze_request_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            for request in evaluation.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            (run_request,) = evaluation.run_requests
            assert run_request.partition_key == PARTITION and run_request.run_key == f"haze:{task_id}"
            run = defs.resolve_job_def("haze_space").execute_in_process(
                partition_key=PARTITION, run_config=run_request.run_config, tags=run_request.tags, instance=instance)
            assert run.success
            later = haze_request_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            assert later.run_requests == []

        task = http.get(f"/nexus/tasks/{task_id}").json()
        assert task["status"] == "succeeded" and task["run_id"] == run.run_id and task["counts"]["rows"] == 100

        with http.stream("GET", "/nexus/spaces/main/haze/points") as streamed:
            assert streamed.status_code == 200 and streamed.headers["content-type"] == "application/x-ndjson"
            snapshot_id = streamed.headers["x-haze-snapshot"]
            points = [json.loads(line) for line in streamed.iter_lines() if line]
        assert len(points) == 100 and {"id", "x", "y", "cluster", "label", "type", "source", "text"} == set(points[0])
        pinned = http.get("/nexus/spaces/main/haze/points", params={"snapshot": snapshot_id})
        assert [json.loads(line)["id"] for line in pinned.text.splitlines()] == [p["id"] for p in points]
        gone = http.get("/nexus/spaces/main/haze/points", params={"snapshot": "20000101-000000-v1-000000"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "nexus.haze_snapshot_not_found"
        other = http.get("/nexus/spaces/main/haze/points", headers={"Authorization": "Bearer globex-demo-key"})
        assert other.status_code == 404  # globex has no map of its own "main"; acme's is never reachable

        page = http.get("/nexus/spaces/main/haze/map")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["x-haze-snapshot"] == snapshot_id and "default-src 'none'" in \
            page.headers["content-security-policy"]
        assert page.content == HazeStore.for_context(ACME).open("main").html()
        assert httpx.get(f"{base_url}/nexus/spaces/main/haze/map").status_code == 401
        foreign = http.get("/nexus/spaces/main/haze/map", headers={"Authorization": "Bearer globex-demo-key"})
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "nexus.haze_snapshot_not_found"


def test_a_failed_projection_marks_its_task_failed(store, provider, topics_space):
    task = request_snapshot(ACME, "main")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        result = dg.materialize(
            [haze_projection], partition_key=PARTITION, instance=instance, raise_on_error=False,
            resources={"nexus": NexusResource()}, tags={"nexus/task_id": task.task_id},
            run_config={"ops": {"haze_projection": {"config": {"cluster_method": "spectral"}}}})
    assert not result.success
    failed = landing_zone(ACME).read_task(task.task_id)
    assert failed.status == "failed" and "cluster_method" in failed.error
    assert pending_requests(HazeStore.for_context(ACME)) == []


def test_the_global_space_is_mapped_into_the_global_projection_store(store, provider, topic_corpus, nexus_home):
    rows, vectors = topic_corpus
    records = [Record(text=text, source=source) for source, text, _ in rows[:40]]
    space = store.open_global_for_system("dev", provider.info)
    space.upsert(build_rows(None, records, vectors[:40], provider.info), provider.info)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", ["global"])
        result = dg.materialize([haze_projection], partition_key="global", instance=instance,
                                resources={"nexus": NexusResource()})
    assert result.success
    route = RoutingRegistry.default().global_routes("dev").nexus_projection_store
    global_maps = HazeStore(TenantFiles.for_global(route))
    assert global_maps.open("global").to_arrow().num_rows == 40
    assert not (nexus_home / "projections" / "acme").exists()


def test_an_ingest_run_puts_its_new_rows_on_the_map_without_moving_the_others(nexus_home, topic_corpus):
    rows, _ = topic_corpus
    zone = landing_zone(ACME)
    zone.land_batch("main", [{"type": "text", "content": text} for _, text, _ in rows[:60:2]])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        ingest = defs.resolve_job_def("ingest_space").execute_in_process(partition_key=PARTITION, instance=instance)
        (request,) = haze_refresh_sensor(dg.build_run_status_sensor_context(
            sensor_name="haze_refresh_sensor", dagster_instance=instance, dagster_run=ingest.dagster_run,
            dagster_event=ingest.get_run_success_event()))
        haze_job = defs.resolve_job_def("haze_space")
        first = haze_job.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance)
        before = HazeStore.for_context(ACME).open("main").to_pandas().set_index("id")[["x", "y"]]

        # 10 more: a third more rows is placed into the map (a space that doubles gets a new one)
        zone.land_batch("main", [{"type": "text", "content": text} for _, text, _ in rows[1:20:2]])
        again = defs.resolve_job_def("ingest_space").execute_in_process(partition_key=PARTITION, instance=instance)
        (later,) = haze_refresh_sensor(dg.build_run_status_sensor_context(
            sensor_name="haze_refresh_sensor", dagster_instance=instance, dagster_run=again.dagster_run,
            dagster_event=again.get_run_success_event()))
        assert later.run_key != request.run_key and later.partition_key == PARTITION
        assert request.tags["nexus/tenant"] == later.tags["nexus/tenant"] == "acme"  # the per-tenant run limit
        haze_job.execute_in_process(partition_key=PARTITION, tags=later.tags, instance=instance)
        assert haze_refresh_sensor(dg.build_run_status_sensor_context(
            sensor_name="haze_refresh_sensor", dagster_instance=instance, dagster_run=first.dagster_run,
            dagster_event=first.get_run_success_event())) == []  # a map run writes no rows: no loop
    after = HazeStore.for_context(ACME).open("main")
    assert dataclasses.replace(after.info.counts, rows=40, kept=30, placed=10) == after.info.counts
    moved = after.to_pandas().set_index("id")[["x", "y"]].loc[before.index]
    assert (moved == before).all().all()


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")  # the experiment
def test_the_map_refresh_stays_a_sensor_while_automation_runs_would_escape_the_tenant_run_limit():
    """Why haze_refresh_sensor is not an automation condition (docs/pipelines.md, Automation): in Dagster 1.13
    a run that declarative automation starts for an asset is tagged with its partition only, not with the
    tags its job gives each partition, so dagster.yaml's one-run-per-tenant limit would not hold for it; and a
    condition on the job itself is refused when the job has partitioned config (which is what tags its runs).
    Fails once Dagster carries them: then ``AutomationCondition.eager()`` can replace the sensor."""
    @dg.asset(partitions_def=tenant_spaces)
    def space_table() -> None: ...

    @dg.asset(partitions_def=tenant_spaces, deps=[space_table], automation_condition=dg.AutomationCondition.eager())
    def haze_projection() -> None: ...

    automation = dg.AutomationConditionSensorDefinition("haze_automation", target=[haze_projection.key],
                                                        use_user_code_server=True)
    job = space_job("haze_space", [haze_projection.key], "the job haze_refresh_sensor starts")
    automated = dg.define_asset_job(job.name, selection=job.selection, config=job.config,
                                    automation_condition=dg.AutomationCondition.any_job_root_assets_match(
                                        dg.AutomationCondition.eager()))
    with dg.instance_for_test() as instance:  # definitions load against the current instance
        repository = dg.Definitions(assets=[space_table, haze_projection], jobs=[job],
                                    sensors=[automation]).get_repository_def()
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        first = automation(dg.build_sensor_context(instance=instance, repository_def=repository))
        instance.report_runless_asset_event(dg.AssetMaterialization("space_table", partition=PARTITION))
        tick = automation(dg.build_sensor_context(instance=instance, repository_def=repository, cursor=first.cursor))
        with pytest.raises(dg.DagsterInvalidDefinitionError) as refused:
            dg.Definitions(assets=[space_table, haze_projection], jobs=[automated]).resolve_job_def(job.name)
    (request,) = tick.run_requests
    assert request.partition_key == PARTITION and request.asset_selection == [haze_projection.key]
    assert "nexus/tenant" not in request.tags  # which every run of the job, and of the sensor, carries
    assert "without resolving per-partition config" in str(refused.value.__cause__)


def test_snapshot_requests_for_a_space_coalesce_into_one_waiting_run(topics_space):
    """A fuzzer's 20 requests with every combination of options: one task, one request, one run to start."""
    registry = RoutingRegistry.default()
    with background_server(create_app(registry)) as base_url, \
            httpx.Client(base_url=base_url, headers=ACME_KEY, timeout=60) as http:
        bodies = [{}, {"refit": True}, {"method": "umap"}, {"refit": False, "method": "tsne"}, None] * 4
        ids = {http.post("/nexus/spaces/main/haze/snapshot", json=body).json()["task_id"] for body in bodies}
    (task_id,) = ids
    (waiting,) = pending_requests(HazeStore.for_context(ACME))
    assert (waiting.task_id, waiting.refit, waiting.method) == (task_id, True, "tsne")
    with dg.instance_for_test() as instance:
        evaluation = haze_request_sensor(dg.build_sensor_context(instance=instance,
                                                                 resources={"nexus": NexusResource()}))
    assert [r.run_key for r in evaluation.run_requests] == [f"haze:{task_id}"]


def test_a_run_takes_what_joined_its_request_before_it_started_and_a_later_request_waits_anew(topics_space):
    first = request_snapshot(ACME, "main")  # the sensor starts its run with these options ...
    assert request_snapshot(ACME, "main", method="tsne").task_id == first.task_id  # ... then this joins
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        result = dg.materialize([haze_projection], partition_key=PARTITION, instance=instance,
                                resources={"nexus": NexusResource()}, tags={"nexus/task_id": first.task_id})
    assert result.success
    metadata = result.asset_materializations_for_node("haze_projection")[0].metadata
    assert metadata["method"].value == "tsne"
    assert landing_zone(ACME).read_task(first.task_id).status == "succeeded"
    assert request_snapshot(ACME, "main").task_id != first.task_id


def test_map_files_get_the_mode_any_file_of_the_process_gets_not_owner_only(topics_space, tmp_path):
    from nexus_pipelines.haze.projection import project_space

    project_space(topics_space, HazeStore.for_context(ACME), "main")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the umask gives an ordinary file (0644 under the usual 022)
    snapshot = HazeStore.for_context(ACME).open("main")
    for name in ("map.html", "map.png", "points.parquet"):
        assert Path(snapshot.url(name)).stat().st_mode & 0o777 == plain.stat().st_mode & 0o777, name
