"""A tenant's own measurements, black box through the CLI on a fresh data root: a tenant and key by command, a
one-day CSV (named as people name exports) added with `nexus kpi add --wait` and only NEXUS_API_KEY set, then
the question a person asks, "how is it going?", answered by the metric's status fact."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent
START = datetime(2026, 11, 16, tzinfo=UTC)


def nexus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "nexus"), *args], env=env, capture_output=True, text=True)


def ok(env: dict[str, str], *args: str) -> str:
    done = nexus(env, *args)
    assert done.returncode == 0, f"nexus {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow  # model-loading processes and an in-process Dagster run
def test_a_one_day_csv_added_by_a_new_tenant_answers_how_is_it_going(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CONFIG", "NEXUS_API_KEY", "NEXUS_URL",
                                                            "DAGSTER_HOME")}
    env["NEXUS_HOME"] = str(tmp_path / "data")
    ok(env, "tenants", "add", "bistro")
    env["NEXUS_API_KEY"] = ok(env, "keys", "create", "--tenant", "bistro").strip()

    # a day of one-minute checkout latency, the last two hours 20% higher (the seed's example)
    values = 190 * (1 + 0.03 * np.random.default_rng(7).standard_normal(1440))
    values[-120:] *= 1.2
    export = tmp_path / "Exports" / "Grafana – 'Dezember'" / "checkout p95 latency.csv"
    export.parent.mkdir(parents=True)
    rows = [f"{(START + timedelta(minutes=i)).isoformat()},{v:.2f}" for i, v in enumerate(values)]
    export.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")

    added = nexus(env, "kpi", "add", str(export), "--space", "ops", "--wait")  # the file names the metric
    assert added.returncode == 0, added.stderr[-3000:]
    assert "added 1440 reading(s) of checkout_p95_latency" in added.stderr

    answer = json.loads(ok(env, "query", "how is it going?", "--space", "ops", "--json"))
    statuses = [hit for hit in answer["hits"] if hit["metadata"].get("fact_type") == "status"]
    assert statuses, f"no status fact among {[hit['content'][:80] for hit in answer['hits']]}"
    (status,) = statuses
    assert status["metadata"]["metric"] == "checkout_p95_latency"
    assert status["metadata"]["as_of"] == "2026-11-16T23:59:00Z"
    assert "the hour before" in status["content"]
