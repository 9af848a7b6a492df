"""The Dagster UI shows when the KPI refresh or ingestion has stalled: freshness policies on kpi_fact_docs and
space_table, evaluated because both instances (local and production) turn freshness on."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
import yaml

from nexus_pipelines.definitions import defs
from tests.helpers import REPO


@pytest.mark.parametrize(("asset", "warn", "fail"), [
    ("kpi_fact_docs", timedelta(minutes=70), timedelta(minutes=130)),  # the hourly schedule: 1 missed tick warns
    ("space_table", timedelta(days=1), timedelta(days=3)),
])
def test_refreshed_assets_carry_a_time_window_freshness_policy(asset, warn, fail):
    policy = defs.resolve_asset_graph().get(dg.AssetKey(asset)).freshness_policy
    assert isinstance(policy, dg.FreshnessPolicy)
    assert (policy.warn_window.to_timedelta(), policy.fail_window.to_timedelta()) == (warn, fail)


def test_the_warn_window_of_the_kpi_facts_outlasts_one_schedule_interval():
    schedule = defs.resolve_schedule_def("kpi_hourly_schedule")
    assert schedule.cron_schedule == "5 * * * *"  # hourly: a run in time never warns
    policy = defs.resolve_asset_graph().get(dg.AssetKey("kpi_fact_docs")).freshness_policy
    assert policy.warn_window.to_timedelta() > timedelta(hours=1)


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_both_instances_turn_freshness_evaluation_on(path):
    assert yaml.safe_load((REPO / path).read_text())["freshness"] == {"enabled": True}
