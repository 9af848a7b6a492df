"""Schedules that touch only what changed: the nightly maintenance and the hourly KPI refresh read Dagster's
event log (real instances) and batch only the changed spaces into partition-range runs."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from nexus_pipelines.common.dagster_tags import ASSET_PARTITION_RANGE_END_TAG as END
from nexus_pipelines.common.dagster_tags import ASSET_PARTITION_RANGE_START_TAG as START
from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG
from nexus_pipelines.kpi.triggers import ACTIVE_FOR, kpi_hourly_schedule
from nexus_pipelines.maintenance.assets import MAINTENANCE_BATCH_SIZE, space_maintenance_nightly
from nexus_pipelines.partitions import changed_range_run_requests, tenant_spaces
from nexus_pipelines.resources import NexusResource
from tests.helpers import evaluate_schedule

KEYS = [f"t{i:03d}.default.main" for i in range(12)]


@pytest.fixture
def instance(nexus_home):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, KEYS)
        yield instance


def materialized(instance, asset: str, *partitions: str) -> None:
    for partition in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=partition))


def observed(instance, partition: str, version: str) -> None:
    instance.report_runless_asset_event(dg.AssetObservation(asset_key="kpi_measurements", partition=partition,
                                                            tags={DATA_VERSION_TAG: version}))


def ranges(requests) -> list[tuple[str, str]]:
    return [(r.tags[START], r.tags[END]) for r in requests]


def maintenance_tick(instance, at: datetime):
    return evaluate_schedule(space_maintenance_nightly, instance, at, resources={"nexus": NexusResource()})


def kpi_tick(instance, at: datetime):
    return evaluate_schedule(kpi_hourly_schedule, instance, at)


def test_changed_ranges_never_include_an_unchanged_partition_and_hold_at_most_size_keys():
    keys = [f"k{i:02d}" for i in range(10)]
    requests = changed_range_run_requests(keys, {"k01", "k02", "k03", "k04", "k06", "k09"}, 3, run_key="tick",
                                          batch_tag="nexus/b")
    assert ranges(requests) == [("k01", "k03"), ("k04", "k04"), ("k06", "k06"), ("k09", "k09")]
    assert [r.tags["nexus/b"] for r in requests] == ["1/4", "2/4", "3/4", "4/4"]
    assert changed_range_run_requests(keys, set(), 3, run_key="t", batch_tag="b") == []


def test_nightly_maintenance_skips_spaces_not_written_since_their_last_maintenance(instance):
    materialized(instance, "space_table", KEYS[1], KEYS[2], KEYS[7])
    materialized(instance, "kpi_fact_docs", KEYS[3])
    materialized(instance, "space_maintenance", KEYS[7])  # maintained after its write
    later = datetime.now(UTC) + timedelta(days=5)  # every write is long past the retention
    assert ranges(maintenance_tick(instance, later)) == [(KEYS[1], KEYS[3])]
    materialized(instance, "space_maintenance", KEYS[1], KEYS[2], KEYS[3])
    assert isinstance(maintenance_tick(instance, later), dg.SkipReason)
    materialized(instance, "space_table", KEYS[9])
    assert ranges(maintenance_tick(instance, later)) == [(KEYS[9], KEYS[9])]


def test_a_space_written_within_the_retention_is_maintained_again_so_its_old_versions_go(instance):
    materialized(instance, "space_table", KEYS[4])
    materialized(instance, "space_maintenance", KEYS[4])
    tonight = datetime.now(UTC) + timedelta(hours=20)
    assert ranges(maintenance_tick(instance, tonight)) == [(KEYS[4], KEYS[4])]
    assert isinstance(maintenance_tick(instance, tonight + timedelta(days=3)), dg.SkipReason)


def test_nightly_maintenance_batches_many_written_spaces_into_ranges(nexus_home):
    keys = [f"tenant{i:03d}.default.main" for i in range(MAINTENANCE_BATCH_SIZE * 2 + 7)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, keys)
        materialized(instance, "space_table", *keys)
        requests = maintenance_tick(instance, datetime.now(UTC))
    assert ranges(requests) == [(keys[0], keys[49]), (keys[50], keys[99]), (keys[100], keys[-1])]
    assert len({r.run_key for r in requests}) == 3


def test_the_hourly_kpi_refresh_runs_only_for_spaces_whose_measurements_moved(instance):
    now = datetime.now(UTC)
    assert isinstance(kpi_tick(instance, now), dg.SkipReason)  # no space has measurements
    observed(instance, KEYS[2], "v1")
    observed(instance, KEYS[3], "v1")
    observed(instance, KEYS[8], "v1")
    materialized(instance, "kpi_fact_docs", KEYS[8])  # its facts are newer than its measurements
    requests = kpi_tick(instance, now)
    # Within ACTIVE_FOR all three are refreshed (time moves their facts on); KEYS[8] in a run of its own.
    assert ranges(requests) == [(KEYS[2], KEYS[3]), (KEYS[8], KEYS[8])]
    assert {r.run_config["ops"]["kpi_fact_docs"]["config"]["as_of"] for r in requests} == {now.isoformat()}
    later = now + ACTIVE_FOR + timedelta(hours=1)  # measurements still since: only those without facts since
    assert ranges(kpi_tick(instance, later)) == [(KEYS[2], KEYS[3])]
    materialized(instance, "kpi_fact_docs", KEYS[2], KEYS[3])
    assert isinstance(kpi_tick(instance, later), dg.SkipReason)
    observed(instance, KEYS[8], "v2")  # new measurements
    assert ranges(kpi_tick(instance, later)) == [(KEYS[8], KEYS[8])]
