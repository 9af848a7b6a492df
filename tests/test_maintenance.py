"""Space maintenance: compaction, index refresh, cleanup that never breaks a live cursor; its asset and
nightly schedule."""

import time
from datetime import datetime, timedelta

import dagster as dg
import pytest

from nexus_pipelines.maintenance.assets import (
    MAINTENANCE_BATCH_SIZE,
    space_maintenance,
    space_maintenance_job,
    space_maintenance_nightly,
)
from nexus_pipelines.maintenance.optimize import cleanup_age, default_retention, optimize_space
from nexus_pipelines.partitions import tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.context import RequestContext
from nexus_query.errors import CursorInvalid, InvalidRequest
from nexus_query.query import query
from nexus_query.store.lance_indexes import has_fts_index
from tests.helpers import evaluate_schedule, load_texts

ACME = RequestContext("acme")
DAY = 86_400
TICK = datetime(2026, 11, 20, 3, 17)


def fragmented_space(store, provider, writes: int = 10):
    """A space written in many small upserts, one fragment (and one version) each."""
    for i in range(writes):
        space = load_texts(store, provider, ACME, "main",
                           {f"tent-{i}-{j}": f"Tent model {i}.{j} sleeps {j + 1} people." for j in range(3)})
    return space


def test_a_long_lived_version_superseded_recently_is_kept_though_it_was_created_long_ago():
    now = datetime(2026, 11, 20, 12, 0)
    versions = [{"version": 1, "timestamp": now - timedelta(days=30)},
                {"version": 2, "timestamp": now - timedelta(days=10)},  # the latest for ten days
                {"version": 3, "timestamp": now - timedelta(hours=2)}]  # a cursor may still pin 2
    older_than, kept = cleanup_age(versions, timedelta(days=1), now)
    assert kept == 2
    assert now - older_than < versions[1]["timestamp"] and now - older_than > versions[0]["timestamp"]
    assert cleanup_age(versions, timedelta(days=1), now + timedelta(days=2))[1] == 3  # later, only the latest


def test_optimize_compacts_indexes_and_keeps_every_version_a_live_cursor_reads(store, provider):
    space = fragmented_space(store, provider)
    first = query(ACME, "main", "which tent sleeps two people", top_k=4, store=store, provider=provider)
    time.sleep(1.5)  # the versions cleanup may drop are older than the oldest kept by over a second of slack
    before = space.table.stats()["fragment_stats"]["num_fragments"]
    report = optimize_space(space, cursor_ttl_seconds=DAY)
    assert report.rows == 30 and space.count() == 30
    # the full-text index covers the first write's fragment: Lance compacts indexed and unindexed rows apart
    assert report.fragments_before == before >= 10 and report.fragments_after <= 2
    assert "text" not in report.indexes_created and has_fts_index(space.table)  # built at the first write
    assert report.versions_removed == 0  # everything is younger than the retention
    page_two = query(ACME, "main", "which tent sleeps two people", top_k=4, cursor=first.next_cursor,
                     store=store, provider=provider)
    assert page_two.table_versions == first.table_versions and len(page_two.hits) == 4

    # With a 3 s cursor lifetime, once the versions page 1 read were superseded longer ago, they go.
    time.sleep(3.5)
    later = optimize_space(space, cursor_ttl_seconds=3, retention=timedelta(seconds=3))
    assert later.versions_removed > 0 and later.oldest_kept_version > first.table_versions["tenant"]
    assert space.count() == 30
    with pytest.raises(CursorInvalid):
        query(ACME, "main", "which tent sleeps two people", top_k=4, cursor=first.next_cursor,
              store=store, provider=provider)


def test_a_retention_shorter_than_a_cursor_lifetime_is_refused(store, provider):
    space = fragmented_space(store, provider, writes=1)
    with pytest.raises(InvalidRequest):
        optimize_space(space, cursor_ttl_seconds=DAY, retention=timedelta(hours=1))
    assert default_retention(DAY) > timedelta(seconds=DAY)


def written(instance, *keys: str) -> None:
    """What an ingest run records for the spaces it wrote (the schedule reads it from the event log)."""
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="space_table", partition=key))


def nightly(instance):
    return evaluate_schedule(space_maintenance_nightly, instance, TICK, resources={"nexus": NexusResource()})


def test_nightly_schedule_covers_every_written_space_in_partition_ranges(nexus_home):
    keys = [f"tenant{i:03d}.default.main" for i in range(MAINTENANCE_BATCH_SIZE * 2 + 7)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, keys)
        assert isinstance(nightly(instance), dg.SkipReason)  # nothing written: nothing to do
        written(instance, *keys)
        requests = nightly(instance)
    ranges = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
              for r in requests]
    assert ranges == [(keys[0], keys[49]), (keys[50], keys[99]), (keys[100], keys[-1])]
    assert len({r.run_key for r in requests}) == 3


def test_a_scheduled_run_optimizes_each_space_of_its_range_and_skips_spaces_without_a_table(store, provider):
    fragmented_space(store, provider, writes=9)
    job = dg.Definitions(assets=[space_maintenance], jobs=[space_maintenance_job],
                         resources={"nexus": NexusResource()}).resolve_job_def("space_maintenance_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, ["acme.default.main", "globex.default.main"])
        written(instance, "acme.default.main", "globex.default.main")
        (request,) = nightly(instance)
        result = job.execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    by_space = {e.materialization.partition: {k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    assert by_space["acme.default.main"]["status"] == "optimized"
    assert by_space["acme.default.main"]["fragments_before"] >= 9
    assert by_space["acme.default.main"]["fragments_after"] <= 2
    assert by_space["globex.default.main"]["status"] == "no table yet"
