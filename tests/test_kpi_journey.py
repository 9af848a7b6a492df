"""Measurements into a space on a fresh data root, through the CLI (`nexus kpi add --wait`, then `nexus query`)
and through HTTP (`POST /nexus/spaces/{id}/kpi/measurements`, the KPI run, the task): the status fact answers
"how is p95 latency?"; bad readings are refused naming their line, and nothing stored is lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import numpy as np

from nexus_pipelines.kpi.in_process import kpi_facts_in_process
from nexus_pipelines.partitions import SpaceKey
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.cli import main
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
from tests.helpers import ACME

KEY = "acme-demo-key"
START = datetime(2026, 11, 16, tzinfo=UTC)
AS_OF = START + timedelta(days=1, minutes=5)


def one_day(seed: int = 1) -> list[tuple[str, float]]:
    """The seed's example: a day of one-minute p95 latency whose last two hours are 20% higher."""
    values = 190 * (1 + 0.03 * np.random.default_rng(seed).standard_normal(1440))
    values[-120:] *= 1.2
    return [((START + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"), round(float(v), 2))
            for i, v in enumerate(values)]


def write_csv(path, readings, header="timestamp,value") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *[f"{t},{v}" for t, v in readings]]) + "\n", encoding="utf-8")
    return str(path)


def measurement_files(space: str = "main") -> list[str]:
    return landing_zone(ACME).files.list("kpi", space, "measurements")


def test_kpi_add_then_query_finds_the_status_fact_and_bad_files_name_their_line(nexus_home, tmp_path, capsys):
    folder = tmp_path / "my data" / "équipe 'ops'"
    day = write_csv(folder / "p95 latency (checkout).csv", one_day())
    assert main(["kpi", "add", day, "--key", KEY, "--space", "main", "--metric", "p95_latency"]) == 0
    assert "added 1440 reading(s) of p95_latency" in capsys.readouterr().err
    (stored,) = measurement_files()
    # a bad file is refused whole, naming the line; what was stored stays
    bad = write_csv(folder / "late readings.csv", [("2026-11-17T00:00:00Z", 181.0), ("2026-11-17T00:01:00Z", "fast")])
    assert main(["kpi", "add", bad, "--key", KEY, "--metric", "p95_latency"]) == 2
    err = capsys.readouterr().err
    assert "late readings.csv, line 3: value 'fast' is not a number" in err
    dup = write_csv(folder / "twice.csv", [("2026-11-17T00:00:00Z", 181.0), ("2026-11-17T00:00:00Z", 182.0)])
    assert main(["kpi", "add", dup, "--key", KEY, "--metric", "p95_latency"]) == 2
    assert "twice.csv, line 3: a second reading of 'p95_latency'" in capsys.readouterr().err
    assert measurement_files() == [stored]
    # --wait refreshes the space's facts in this process: the status answers the question
    assert main(["kpi", "add", write_csv(folder / "next minute.csv", [("2026-11-17T00:00:00Z", 230.0)]),
                 "--key", KEY, "--metric", "p95_latency", "--wait"]) == 0
    assert "fact(s) in the space's KPI facts" in capsys.readouterr().out
    assert main(["query", "how is p95 latency?", "--key", KEY, "--json", "--filter", "fact_type=status"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["hits"]
    assert hit["content"].startswith("p95 latency was ") and "the hour before" in hit["content"]
    assert hit["metadata"]["metric"] == "p95_latency" and hit["metadata"]["as_of"] == "2026-11-17T00:00:00Z"


def test_post_measurements_answers_202_with_a_task_that_the_kpi_run_settles(nexus_home):
    readings = [{"metric": "p95_latency", "timestamp": t, "value": v, "unit": "ms"} for t, v in one_day()]
    with background_server(create_app(RoutingRegistry.default())) as base_url, \
            httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as http:
        bad = readings[:3] + [{**readings[3], "timestamp": "yesterday"}]
        refused = http.post("/nexus/spaces/main/kpi/measurements", json={"readings": bad})
        assert refused.status_code == 422  # the schema's date-time, named by its place in the batch
        assert refused.json()["error"]["errors"][0]["loc"] == ["body", "readings", "3", "timestamp"]
        twice = http.post("/nexus/spaces/main/kpi/measurements", json={"readings": readings[:2] + readings[1:2]})
        assert twice.status_code == 409 and "row 3: a second reading" in twice.text
        assert measurement_files() == []
        accepted = http.post("/nexus/spaces/main/kpi/measurements", json={"readings": readings})
        assert accepted.status_code == 202
        task_id = accepted.json()["task_id"]
        task = http.get(f"/nexus/tasks/{task_id}").json()
        assert (task["status"], task["kind"], task["counts"]) == ("queued", "kpi_measurements", {"readings": 1440})
        with dg.DagsterInstance.ephemeral() as instance:
            outcome = kpi_facts_in_process(SpaceKey("acme", "default", "main"), instance=instance, as_of=AS_OF)
        assert outcome.success and outcome.metadata["tasks_settled"] == 1
        task = http.get(f"/nexus/tasks/{task_id}").json()
        assert task["status"] == "succeeded" and task["run_id"] == outcome.run_id
        hits = http.post("/nexus/spaces/main/query", json={"q": "how is p95 latency?",
                                                            "filters": {"fact_type": "status"}}).json()["hits"]
        assert [h["metadata"]["metric"] for h in hits] == ["p95_latency"]
        assert "up " in hits[0]["content"] and "from " in hits[0]["content"]
