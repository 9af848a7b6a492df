"""A tenant's own measurements, black box through the CLI on a fresh data root: a tenant and key by command, a
one-day CSV (named as people name exports) added with `nexus kpi add --wait` and only NEXUS_API_KEY set, then
the question a person asks, "how is it going?", answered by the metric's status fact."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.helpers import new_tenant, run_nexus, user_env

START = datetime(2026, 11, 16, tzinfo=UTC)


@pytest.mark.slow  # model-loading processes and an in-process Dagster run
def test_a_one_day_csv_added_by_a_new_tenant_answers_how_is_it_going(tmp_path):
    env = new_tenant(user_env(tmp_path / "data"), "bistro")

    # a day of one-minute checkout latency, the last two hours 20% higher (the seed's example)
    values = 190 * (1 + 0.03 * np.random.default_rng(7).standard_normal(1440))
    values[-120:] *= 1.2
    export = tmp_path / "Exports" / "Grafana – 'Dezember'" / "checkout p95 latency.csv"
    export.parent.mkdir(parents=True)
    rows = [f"{(START + timedelta(minutes=i)).isoformat()},{v:.2f}" for i, v in enumerate(values)]
    export.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")

    added = run_nexus(env, "kpi", "add", str(export), "--space", "ops", "--wait")  # the file names the metric
    assert "added 1440 reading(s) of checkout_p95_latency" in added.stderr

    answer = json.loads(run_nexus(env, "query", "how is it going?", "--space", "ops", "--json").stdout)
    statuses = [hit for hit in answer["hits"] if hit["metadata"].get("fact_type") == "status"]
    assert statuses, f"no status fact among {[hit['content'][:80] for hit in answer['hits']]}"
    (status,) = statuses
    assert status["metadata"]["metric"] == "checkout_p95_latency"
    assert status["metadata"]["as_of"] == "2026-11-16T23:59:00Z"
    assert "the hour before" in status["content"]
