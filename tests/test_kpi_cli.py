"""`nexus kpi facts`: JSON lines an analyst can read, for the latest window or every window."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np

from nexus_query.cli import main

END = datetime(2026, 11, 16, 14, tzinfo=UTC)


def write_csv(path, values, minutes=5):
    start = END - timedelta(minutes=minutes * len(values))
    lines = ["timestamp,value"] + [f"{(start + timedelta(minutes=minutes * i)).isoformat()},{v}"
                                   for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def stepped(hours=7 * 24, step_hours=1, seed=2):
    values = 180 * (1 + 0.02 * np.random.default_rng(seed).standard_normal(hours * 12))
    values[-12 * step_hours:] *= 1.2
    return [round(v, 2) for v in values]


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_kpi_facts_prints_the_latest_windows_facts_as_json_lines(tmp_path, capsys):
    csv = write_csv(tmp_path / "latency.csv", stepped())
    assert main(["kpi", "facts", str(csv), "--metric", "checkout_latency_p95", "--unit", "ms",
                 "--direction", "down_is_good", "--label", "p95 latency of checkout"]) == 0
    captured = capsys.readouterr()
    facts = lines(captured.out)
    assert [f["type"] for f in facts] == ["change", "outside_band", "status"]
    change, status = facts[0], facts[2]
    assert status["text"].startswith("p95 latency of checkout was ") and " the hour before" in status["text"]
    assert (change["window_start"], change["window_end"]) == ("2026-11-16T13:00:00Z", "2026-11-16T14:00:00Z")
    assert change["text"].startswith("p95 latency of checkout rose ") and " ms to " in change["text"]
    assert change["numbers"]["percent_change"] > 15 and change["points"] == {"current": 12, "previous": 12}
    assert change["method"]["window_chosen_from_data"] is True  # 5-minute readings: hourly windows
    assert "window 1h (chosen from the sampling)" in captured.err


def test_kpi_facts_with_history_backfills_every_window_and_a_flat_file_prints_only_its_status(tmp_path, capsys):
    values = stepped(step_hours=3)
    csv = write_csv(tmp_path / "latency.csv", values)
    assert main(["kpi", "facts", str(csv), "--metric", "latency", "--history", "--window", "1h"]) == 0
    history = [f for f in lines(capsys.readouterr().out) if f["type"] != "status"]
    assert history[0]["window_end"] == "2026-11-16T12:00:00Z" and history[0]["type"] == "change"
    assert {f["window_end"] for f in history} <= {"2026-11-16T12:00:00Z", "2026-11-16T13:00:00Z",
                                                    "2026-11-16T14:00:00Z"}
    assert main(["kpi", "facts", str(csv), "--metric", "latency", "--window", "1h"]) == 0
    latest = lines(capsys.readouterr().out)
    assert {f["window_end"] for f in latest} == {"2026-11-16T14:00:00Z"}
    flat = write_csv(tmp_path / "flat.csv", [42.0] * 600)
    assert main(["kpi", "facts", str(flat), "--metric", "latency", "--history"]) == 0
    (status,) = lines(capsys.readouterr().out)
    assert status["type"] == "status" and status["window_end"] == "2026-11-16T14:00:00Z"
    assert "about the same as the hour before (42.0)" in status["text"] and status["position"] == "within"


def test_kpi_facts_history_prints_one_line_per_episode_and_names_a_plain_file_by_itself(tmp_path, capsys):
    csv = write_csv(tmp_path / "cpu-load.csv", stepped(step_hours=3))
    assert main(["kpi", "facts", str(csv), "--history"]) == 0  # no --metric: the file's name
    facts = lines(capsys.readouterr().out)
    (episode,) = [f for f in facts if f["type"] == "outside_band"]
    assert episode["metric"] == "cpu-load" and episode["text"].startswith("cpu-load has been unusually high since")
    assert (episode["episode_start"], episode["episode_end"]) == ("2026-11-16T11:00:00Z", None)
    assert episode["window_end"] == "2026-11-16T14:00:00Z" and episode["episode"]["windows"] == 3
    assert episode["severity"]["robust_z"] > episode["severity"]["alarm_z"] and episode["baseline"]["kind"]


def test_kpi_facts_on_a_bad_file_prints_the_error_envelope(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-11-16T13:00:00Z,fast\n")
    exe = os.path.join(os.path.dirname(sys.executable), "nexus")
    result = subprocess.run([exe, "kpi", "facts", str(bad), "--metric", "latency"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error nexus.invalid_request (400): ") and result.stderr.count("\n") == 1
