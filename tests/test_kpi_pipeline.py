"""KPI facts in a real space (real model, LanceDB on disk), through Dagster: asset, schedule and sensor."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from nexus_pipelines.common.dagster_tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    DATA_VERSION_TAG,
)
from nexus_pipelines.definitions import defs
from nexus_pipelines.kpi.assets import KPI_BATCH_SIZE
from nexus_pipelines.kpi.refresh import refresh_facts
from nexus_pipelines.kpi.triggers import kpi_hourly_schedule, kpi_measurements_sensor
from nexus_query.context import RequestContext
from nexus_query.kpi import read_source
from nexus_query.kpi.retirement import kpi_rows, plan_retirement
from nexus_query.kpi.source import source_version
from nexus_query.paths import TenantFiles
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from tests.helpers import evaluate_schedule, load_texts

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "acme" / "kpi"
CATALOGUE = (EXAMPLES / "catalogue.yaml").read_bytes()
MEASUREMENTS = (EXAMPLES / "measurements.csv").read_bytes()
CHECK = datetime(2026, 11, 16, 14, 5, tzinfo=UTC)  # five past the hour the example data ends
FACTS_JOB = defs.resolve_job_def("kpi_facts_job")
OBSERVE_JOB = defs.resolve_job_def("kpi_observe_measurements")


def files(ctx: RequestContext) -> TenantFiles:
    return TenantFiles.for_tenant(RoutingRegistry.default().blob_route(ctx), ctx)


METRICS = ("checkout_latency_p95", "conversion_rate", "orders_per_hour")  # the bundled example's, sorted


def put_source(ctx: RequestContext = ACME, measurements: bytes = MEASUREMENTS, catalogue: bytes = CATALOGUE,
               name: str = "measurements.csv") -> None:
    files(ctx).write_bytes_atomic(catalogue, "kpi", "main", "catalogue.yaml")
    files(ctx).write_bytes_atomic(measurements, "kpi", "main", "measurements", name)


def refresh(store, provider, ctx: RequestContext = ACME, now: datetime = CHECK, **kwargs):
    space = store.open_or_create(ctx, "main", provider.info)
    return space, refresh_facts(space, ctx, read_source(files(ctx), "main"), provider, now=now, **kwargs)


def stored_facts(space) -> list[tuple[str, str]]:
    """(source, text) of the space's KPI rows; a source names one window of one series."""
    space.refresh()  # this handle may predate the refresh's writes
    table = space.table.search().where("type = 'kpi'").select(["source", "text"]).limit(None).to_arrow()
    return sorted(zip(table.column("source").to_pylist(), table.column("text").to_pylist(), strict=True))


def readings(start: datetime, hours: int, values: dict[str, float]) -> bytes:
    """Five-minute readings of each metric at a constant value."""
    lines = ["timestamp,metric,value"]
    for i in range(hours * 12):
        stamp = (start + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"{stamp},{metric},{value}" for metric, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def instance(nexus_home):
    with dg.instance_for_test() as instance:
        yield instance


def test_refreshed_facts_are_kpi_rows_that_answer_how_is_checkout_latency(store, provider):
    load_texts(store, provider, ACME, "main", {
        "oncall": "Checkout on-call: page the payments engineer when card declines spike.",
        "returns": "Return a tent within 60 days with the receipt.",
        "hours": "Stores open at 10:00 in winter.",
        "shipping": "Standard shipping takes three working days."})
    put_source()
    space, result = refresh(store, provider)
    assert [f.type for f in result.facts if f.type != "status"] == ["change", "outside_band"]
    statuses = [f for f in result.facts if f.type == "status"]  # one per series, whatever happened
    assert sorted(f.source for f in statuses) == [f"kpi/{m}/status" for m in METRICS]
    hits = query(ACME, "main", "how is checkout latency?", top_k=3, store=store, provider=provider).hits
    assert [h.type for h in hits[:2]] == ["kpi", "kpi"]
    assert hits[0].content.startswith("p95 latency of checkout") and hits[0].metadata["unit"] == "ms"
    changes = query(ACME, "main", "how is checkout latency?", filters={"fact_type": "change"}, store=store,
                    provider=provider).hits
    assert [h.metadata["fact_type"] for h in changes] == ["change"]


def test_a_second_refresh_embeds_nothing_and_changes_nothing(store, provider):
    put_source()
    space, first = refresh(store, provider)
    before = stored_facts(space)
    _, again = refresh(store, provider)
    assert (again.stats.embedded, again.stats.inserted, again.stats.updated, again.stats.deleted) == (0, 0, 0, 0)
    assert stored_facts(space) == before and len(before) == 2 + len(METRICS)  # and a status per series


def test_facts_that_no_longer_hold_for_a_judged_window_are_removed(store, provider):
    put_source()
    space, _ = refresh(store, provider)
    corrected = MEASUREMENTS.decode().splitlines()
    flat = [line for line in corrected if "checkout_latency_p95" not in line or "2026-11-16T13" not in line]
    flat += [f"2026-11-16T13:{m:02d}:00Z,checkout_latency_p95,181.0,ms" for m in range(0, 60, 5)]
    put_source(measurements=("\n".join(flat) + "\n").encode())  # late correction: the step was a glitch
    _, result = refresh(store, provider)
    assert [f.type for f in result.facts] == ["status"] * len(METRICS) and result.retired["superseded"] == 2
    assert [s for s, _ in stored_facts(space)] == [f"kpi/{m}/status" for m in METRICS]  # updated in place


def test_a_stale_fact_appears_when_readings_stop_and_goes_when_they_resume(store, provider):
    put_source()
    later = CHECK + timedelta(hours=3)
    space, _ = refresh(store, provider, now=later)
    stale = {s: t for s, t in stored_facts(space) if s.endswith("/stale")}
    assert len(stale) == 3 and stale["kpi/orders_per_hour/stale"] == (
        "The last reading of orders per hour is from 2026-11-16 13:55 UTC; none were recorded in the 3 hours up "
        "to 2026-11-16 17:00 UTC.")
    files(ACME).write_bytes_atomic(readings(datetime(2026, 11, 16, 14, tzinfo=UTC), 3, {
        "checkout_latency_p95": 181.0, "conversion_rate": 3.2, "orders_per_hour": 600.0}),
        "kpi", "main", "measurements", "late.csv")
    _, result = refresh(store, provider, now=later)
    assert result.retired["superseded"] == 3
    kept = stored_facts(space)
    assert not [s for s, _ in kept if s.endswith("/stale")]
    assert {s for s, _ in kept} >= {"kpi/checkout_latency_p95/2026-11-16T13:00:00Z"}  # earlier windows' facts stay


def test_a_history_run_backfills_every_window_and_retention_drops_old_ones(store, provider):
    put_source()
    space, result = refresh(store, provider, history=True)
    # one fact per episode: the latency step and the conversion dip (each with its change), the orders gap
    assert {f.type for f in result.facts} == {"change", "outside_band", "missing_data", "status"}
    assert len(result.facts) == 5 + len(METRICS) and len(stored_facts(space)) == 5 + len(METRICS)
    put_source(catalogue=CATALOGUE.replace(b"retention_days: 90", b"retention_days: 2"))
    _, again = refresh(store, provider, history=True)
    assert again.retired["expired"] == 3
    assert {s for s, _ in stored_facts(space)} == {"kpi/checkout_latency_p95/2026-11-16T13:00:00Z",
                                                   *[f"kpi/{m}/status" for m in METRICS]}  # a status never expires


def test_facts_of_a_metric_dropped_from_the_catalogue_are_removed(store, provider):
    put_source()
    space, _ = refresh(store, provider)
    without = CATALOGUE.split(b"  - name: conversion_rate")[0].replace(b"  - name: checkout_latency_p95",
                                                                       b"  - name: x")
    put_source(catalogue=without + b"\n")
    _, result = refresh(store, provider)
    assert "checkout_latency_p95" in result.uncatalogued and result.retired["uncatalogued"] == 2 + len(METRICS)
    assert stored_facts(space) == []


def test_retirement_keeps_what_was_just_written_and_ignores_rows_that_are_not_facts():
    rows = [("new", "kpi/m/2026-11-16T13:00:00Z"), ("old-same-window", "kpi/m/2026-11-16T13:00:00Z"),
            ("older-window", "kpi/m/2026-11-16T12:00:00Z"), ("ancient", "kpi/m/2026-01-01T00:00:00Z"),
            ("stale", "kpi/m/stale"), ("gone-metric", "kpi/g{region=eu}/2026-11-16T13:00:00Z"),
            ("document", "returns-runbook.md")]
    plan = plan_retirement(rows, new_ids={"new"}, judged_sources={"kpi/m/2026-11-16T13:00:00Z"},
                           catalogued={"m"}, cutoff="2026-08-18T14:05:00Z")
    assert plan == {"superseded": ["old-same-window"], "expired": ["ancient"], "uncatalogued": ["gone-metric"]}


def test_materializing_a_partition_writes_the_facts_with_a_chart_per_metric(instance, store, provider):
    put_source()
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main"])
    result = FACTS_JOB.execute_in_process(partition_key="acme.default.main", instance=instance, run_config={
        "ops": {"kpi_fact_docs": {"config": {"as_of": CHECK.isoformat()}}}})
    (check,) = result.get_asset_check_evaluations()
    assert result.success and check.passed and check.partition == "acme.default.main"
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert event.materialization.partition == "acme.default.main"
    assert metadata["facts"] == 5 and metadata["dagster/row_count"] == 5 and metadata["series"] == 3
    # the charts live in the projection store, linked; only one small thumbnail is inline
    assert metadata["charts"].count("data:image/png;base64,") == 1 and len(metadata["charts"]) < 80_000
    charts = {k: v for k, v in metadata.items() if k.startswith("chart: ")}  # one URL entry per chart
    assert len(charts) == 3 and all(url.startswith("http://127.0.0.1:8000/nexus/links/") for url in charts.values())
    stored = TenantFiles.for_tenant(RoutingRegistry.default().projection_route(ACME), ACME)
    assert len(stored.list("kpi", "main", "charts")) == 3
    assert "p95 latency of checkout rose 19.7%" in metadata["fact_sentences"]
    assert len(kpi_rows(store.open(ACME, "main"))) == 2 + len(METRICS)


def measured(instance, *keys: str) -> None:
    """New measurements of ``keys``, as an observation (or a tenant's loader) records them."""
    for key in keys:
        instance.report_runless_asset_event(dg.AssetObservation(asset_key="kpi_measurements", partition=key,
                                                                tags={DATA_VERSION_TAG: f"{key}-v1"}))


def test_the_hourly_schedule_updates_an_open_episode_in_place_and_closes_it(instance, store, provider):
    put_source()
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main"])
    measured(instance, "acme.default.main")  # the schedule refreshes spaces whose measurements moved

    def tick(hour: int) -> list[tuple[str, str, str]]:
        """Run the hourly schedule's request for five past ``hour``; the space's latency episode rows."""
        when = datetime(2026, 11, 16, hour, 5, tzinfo=UTC)
        (request,) = evaluate_schedule(kpi_hourly_schedule, instance, when)
        assert FACTS_JOB.execute_in_process(instance=instance, tags=request.tags,
                                            run_config=request.run_config).success
        space = store.open(ACME, "main")
        table = space.table.search().where("type = 'kpi'").select(["id", "source", "text"]).limit(None).to_arrow()
        columns = (table.column(c).to_pylist() for c in ("id", "source", "text"))
        return [(i, s, t) for i, s, t in zip(*columns, strict=True)
                if s == "kpi/checkout_latency_p95/2026-11-16T13:00:00Z" and "unusually high" in t]

    (opened,) = tick(14)
    assert opened[2].startswith("p95 latency of checkout was unusually high in the hour ending 2026-11-16 14:00 UTC")
    files(ACME).write_bytes_atomic(readings(datetime(2026, 11, 16, 14, tzinfo=UTC), 1,
                                            {"checkout_latency_p95": 226.0}), "kpi", "main", "measurements", "14.csv")
    (going,) = tick(15)
    assert going[0] == opened[0] and going[2].startswith(
        "p95 latency of checkout has been unusually high since 2026-11-16 13:00 UTC")
    files(ACME).write_bytes_atomic(readings(datetime(2026, 11, 16, 15, tzinfo=UTC), 1,
                                            {"checkout_latency_p95": 181.0}), "kpi", "main", "measurements", "15.csv")
    (closed,) = tick(16)
    assert closed[0] == opened[0] and closed[2].startswith(
        "p95 latency of checkout was unusually high from 2026-11-16 13:00 UTC to 2026-11-16 15:00 UTC (2 hours)")


def test_the_hourly_schedule_batches_tenant_spaces_into_partition_ranges(instance):
    tick = datetime(2026, 11, 16, 15, 5, tzinfo=UTC)
    assert isinstance(evaluate_schedule(kpi_hourly_schedule, instance, tick),
                      dg.SkipReason)
    keys = [f"tenant{i:03d}.default.main" for i in range(2 * KPI_BATCH_SIZE + 10)]
    instance.add_dynamic_partitions("tenant_spaces", keys)
    measured(instance, *keys)
    requests = evaluate_schedule(kpi_hourly_schedule, instance, tick)
    assert [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in requests] == [
        (keys[0], keys[KPI_BATCH_SIZE - 1]), (keys[KPI_BATCH_SIZE], keys[2 * KPI_BATCH_SIZE - 1]),
        (keys[2 * KPI_BATCH_SIZE], keys[-1])]
    assert {r.run_config["ops"]["kpi_fact_docs"]["config"]["as_of"] for r in requests} == {tick.isoformat()}
    assert len({r.run_key for r in requests}) == 3


def test_a_scheduled_batch_refreshes_each_space_in_its_range_and_isolates_a_broken_source(instance, store, provider):
    put_source(ACME)
    put_source(GLOBEX, measurements=b"timestamp,metric,value\n2026-11-16T13:00:00Z,orders_per_hour,many\n")
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main", "globex.default.main",
                                                      "initech.default.main"])
    measured(instance, "acme.default.main", "globex.default.main", "initech.default.main")
    (request,) = evaluate_schedule(kpi_hourly_schedule, instance, CHECK)
    result = FACTS_JOB.execute_in_process(instance=instance, tags=request.tags, run_config=request.run_config)
    assert result.success
    by_partition = {e.materialization.partition: {k: v.value for k, v in e.materialization.metadata.items()}
                    for e in result.get_asset_materialization_events()}
    assert by_partition["acme.default.main"]["facts"] == 2 + len(METRICS)
    assert by_partition["globex.default.main"]["status"] == "failed"
    assert by_partition["initech.default.main"]["status"] == "no KPI source"
    # the source check: one result per space, on its own partition (its history and plots are the space's)
    checks = {c.partition: c for c in result.get_asset_check_evaluations()}
    assert {p: c.passed for p, c in checks.items()} == {
        "acme.default.main": True, "globex.default.main": False, "initech.default.main": True}
    assert checks["acme.default.main"].metadata["facts"].value == 2 + len(METRICS)
    assert checks["initech.default.main"].metadata["facts"].value == 0
    assert checks["globex.default.main"].metadata["error"].value == by_partition["globex.default.main"]["error"]
    assert len(kpi_rows(store.open(ACME, "main"))) == 2 + len(METRICS)


def sensor_requests(instance, run_result):
    context = dg.build_run_status_sensor_context(
        sensor_name="kpi_measurements_sensor", dagster_instance=instance, dagster_run=run_result.dagster_run,
        dagster_event=run_result.get_run_success_event())
    return kpi_measurements_sensor(context)


def test_the_end_of_run_sensor_refreshes_spaces_whose_measurements_a_run_brought(instance):
    put_source(ACME)
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main", "globex.default.main"])
    observed = OBSERVE_JOB.execute_in_process(instance=instance)
    (request,) = sensor_requests(instance, observed)
    assert request.partition_key == "acme.default.main" and request.tags["nexus/tenant"] == "acme"
    assert request.run_key.startswith("acme.default.main@")
    # Same measurements: the observation records nothing, so nothing is refreshed.
    assert sensor_requests(instance, OBSERVE_JOB.execute_in_process(instance=instance)) == []
    files(ACME).write_bytes_atomic(readings(datetime(2026, 11, 16, 14, tzinfo=UTC), 1,
                                            {"orders_per_hour": 600.0}), "kpi", "main", "measurements", "new.csv")
    (changed,) = sensor_requests(instance, OBSERVE_JOB.execute_in_process(instance=instance))
    assert changed.run_key != request.run_key
    facts_run = FACTS_JOB.execute_in_process(partition_key="acme.default.main", instance=instance)
    assert sensor_requests(instance, facts_run) == []


def test_kpi_facts_survive_a_document_ingest_run_of_the_same_space(instance, store, provider):
    put_source()
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main"])
    assert FACTS_JOB.execute_in_process(partition_key="acme.default.main", instance=instance, run_config={
        "ops": {"kpi_fact_docs": {"config": {"as_of": CHECK.isoformat()}}}}).success
    files(ACME).write_bytes_atomic(b"Return a tent within 60 days.", "landing", "main", "files", "returns.txt")
    ingest = defs.resolve_job_def("ingest_space")
    assert ingest.execute_in_process(partition_key="acme.default.main", instance=instance).success
    assert len(kpi_rows(store.open(ACME, "main"))) == 2 + len(METRICS)


def test_the_kpi_source_reads_from_s3_and_its_fingerprint_follows_the_files(s3_config):
    put_source(ACME)
    source = read_source(files(ACME), "main")
    assert files(ACME).url("kpi", "main", "catalogue.yaml").startswith("s3://")
    assert source.measurements.height == 6040 and set(source.catalogue.metrics) == {
        "checkout_latency_p95", "conversion_rate", "orders_per_hour"}
    assert source_version(files(ACME), "main") == source.version
    files(ACME).write_bytes_atomic(readings(datetime(2026, 11, 16, 14, tzinfo=UTC), 1,
                                            {"orders_per_hour": 600.0}), "kpi", "main", "measurements", "new.csv")
    assert source_version(files(ACME), "main") != source.version
    assert read_source(files(GLOBEX), "main") is None and source_version(files(GLOBEX), "main") is None


def test_a_refresh_weeks_after_the_data_ends_claims_nothing_ongoing(store, provider):
    put_source()
    space, result = refresh(store, provider, now=CHECK + timedelta(days=21))  # `make dev` after `make demo`
    episodes = [f for f in result.facts if f.episode_start is not None]
    assert episodes and all(f.episode_end is not None for f in episodes)
    assert {f.type for f in result.facts} >= {"status", "stale_data"}
    for fact in result.facts:
        assert not {"ongoing", "now", "currently"} & set(fact.text.replace(",", " ").split())
        assert "has been" not in fact.text
        assert fact.metadata["as_of"] <= "2026-11-16T14:00:00Z"
    assert any("ended with the data at 2026-11-16 13:55 UTC" in text for _, text in stored_facts(space))
