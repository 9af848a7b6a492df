"""How far to trust the KPI fact worker, measured on public series with labelled anomaly windows.

    .venv/bin/python bench/kpi_eval.py ../shared/data/nab-dev [--json]
    .venv/bin/python bench/kpi_eval.py [NAB_DIR] --smoke     # seconds: the first series only, or two synthetic ones

``NAB_DIR`` is laid out as the Numenta Anomaly Benchmark is: ``data/<folder>/<file>.csv`` (``timestamp,value``)
and ``labels/combined_windows.json`` (``"<folder>/<file>.csv"`` → ``[[start, end], ...]``). Every series is run
through the CLI exactly as a user would, ``nexus kpi facts FILE --history``, and the printed facts are scored:

* anomaly claims are facts of type ``outside_band``, ``new_extreme``, ``threshold_breach`` or ``spike``; a
  claim's onset is its ``episode_start``, else its ``window_end``;
* anomaly precision: claims whose onset lies inside a labelled window of their series, over all claims;
* window recall: labelled windows with at least one claim whose onset lies inside them, over all windows;
* facts per series-day: facts of every kind over the summed span (first to last reading) of the series;
* anomaly claims on the series of ``artificialNoAnomaly`` (every one is false);
* wrong ``change`` numbers: a change fact whose ``from``/``to`` are not the aggregation of the file's readings
  in the two windows it names, or whose percentage does not follow from them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ANOMALY_TYPES = ("outside_band", "new_extreme", "threshold_breach", "spike")
NO_ANOMALY_FOLDER = "artificialNoAnomaly"
REL_TOL = 1e-4  # the CLI rounds numbers to 6 significant digits
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass
class SeriesScore:
    name: str
    days: float
    facts: int
    claims: int
    claims_in_windows: int
    windows: int
    windows_found: int
    changes: int
    wrong_changes: list[str] = field(default_factory=list)
    facts_by_type: dict[str, int] = field(default_factory=dict)


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_cli(path: Path, extra: list[str]) -> list[dict]:
    command = [sys.executable, "-m", "nexus_query.cli", "kpi", "facts", str(path), "--history", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def read_readings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pl.read_csv(path).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us").dt.epoch("us"),
        pl.col("value").cast(pl.Float64))
    frame = frame.group_by("timestamp").agg(pl.col("value").mean()).sort("timestamp")
    return frame.get_column("timestamp").to_numpy(), frame.get_column("value").to_numpy()


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def aggregate(values: np.ndarray, how: str) -> float:
    return float({"mean": np.mean, "median": np.median, "sum": np.sum, "min": np.min, "max": np.max,
                  "last": lambda v: v[-1]}[how](values))


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), 1e-12)


def check_change(fact: dict, ts: np.ndarray, vals: np.ndarray) -> str | None:
    """None when the change fact's numbers follow from the readings, else what is wrong."""
    method, numbers = fact.get("method", {}), fact.get("numbers", {})
    window = int(method["window"][:-1]) * UNITS[method["window"][-1]]
    end = utc(fact["window_end"])
    now_start = end - window
    then_start = utc(method["compared_with"])
    how = method.get("aggregation", "mean")
    got = []
    for start in (then_start, now_start):
        inside = (ts >= us(start)) & (ts < us(start + window))
        if not inside.any():
            return f"no readings in the window starting {start.isoformat()}"
        got.append(aggregate(vals[inside], how))
    before, after = got
    if not (close(numbers["from"], before) and close(numbers["to"], after)):
        return f"from/to {numbers['from']}/{numbers['to']} but the readings give {before:.6g}/{after:.6g}"
    pct = numbers.get("percent_change")
    if pct is not None and before != 0 and not close(pct, (after - before) / abs(before) * 100.0):
        return f"percent_change {pct} but the readings give {(after - before) / abs(before) * 100.0:.6g}"
    return None


def score_series(root: Path, name: str, windows: list[list[str]], extra: list[str]) -> SeriesScore:
    path = root / "data" / name
    facts = run_cli(path, extra)
    ts, vals = read_readings(path)
    spans = [(us(utc(a)), us(utc(b))) for a, b in windows]
    claims = [f for f in facts if f["type"] in ANOMALY_TYPES]
    onsets = [us(utc(f.get("episode_start") or f["window_end"])) for f in claims]
    inside = [any(a <= t <= b for a, b in spans) for t in onsets]
    found = sum(any(a <= t <= b for t in onsets) for a, b in spans)
    changes = [f for f in facts if f["type"] == "change"]
    wrong = [f"{f['window_end']}: {problem}" for f in changes if (problem := check_change(f, ts, vals))]
    by_type: dict[str, int] = {}
    for f in facts:
        by_type[f["type"]] = by_type.get(f["type"], 0) + 1
    return SeriesScore(name, (ts[-1] - ts[0]) / 86_400e6, len(facts), len(claims), sum(inside), len(spans), found,
                       len(changes), wrong, by_type)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summarise(scores: list[SeriesScore]) -> dict:
    claims = sum(s.claims for s in scores)
    windows = sum(s.windows for s in scores)
    per_folder = {}
    for folder in sorted({s.name.split("/")[0] for s in scores}):
        group = [s for s in scores if s.name.startswith(folder + "/")]
        per_folder[folder] = {
            "series": len(group), "claims": sum(s.claims for s in group),
            "claims_in_windows": sum(s.claims_in_windows for s in group),
            "windows": sum(s.windows for s in group), "windows_found": sum(s.windows_found for s in group),
            "facts_per_series_day": round(ratio(sum(s.facts for s in group), sum(s.days for s in group)), 3)}
    return {
        "series": len(scores),
        "anomaly_precision": round(ratio(sum(s.claims_in_windows for s in scores), claims), 3),
        "anomaly_claims": claims,
        "anomaly_claims_in_windows": sum(s.claims_in_windows for s in scores),
        "window_recall": round(ratio(sum(s.windows_found for s in scores), windows), 3),
        "windows": windows,
        "windows_found": sum(s.windows_found for s in scores),
        "facts": sum(s.facts for s in scores),
        "series_days": round(sum(s.days for s in scores), 1),
        "facts_per_series_day": round(ratio(sum(s.facts for s in scores), sum(s.days for s in scores)), 3),
        "claims_on_no_anomaly_series": sum(s.claims for s in scores if s.name.startswith(NO_ANOMALY_FOLDER + "/")),
        "change_facts": sum(s.changes for s in scores),
        "wrong_change_numbers": sum(len(s.wrong_changes) for s in scores),
        "per_folder": per_folder,
    }


def smoke_nab(root: Path) -> Path:
    """A two-series NAB folder (two days of 5-minute readings; one with a labelled step up), for --smoke."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    windows: dict[str, list[list[str]]] = {}
    for folder, step in ((NO_ANOMALY_FOLDER, 0.0), ("artificialWithAnomaly", 40.0)):
        name = f"{folder}/smoke.csv"
        times = [start + timedelta(minutes=5 * i) for i in range(576)]
        values = [20.0 + (step if i >= 500 else 0.0) + (i % 7) * 0.1 for i in range(576)]
        (root / "data" / folder).mkdir(parents=True)
        (root / "data" / name).write_text("timestamp,value\n" + "".join(
            f"{t:%Y-%m-%d %H:%M:%S},{v}\n" for t, v in zip(times, values, strict=True)))
        window = [f"{times[i]:%Y-%m-%d %H:%M:%S}.000000" for i in (490, 520)]
        windows[name] = [window] if step else []
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nab_dir", nargs="?",
                        help="a folder laid out as NAB: data/<folder>/<file>.csv, labels/combined_windows.json")
    parser.add_argument("--json", action="store_true", help="print the summary and every series' score as JSON")
    parser.add_argument("--jobs", type=int, default=2, help="CLI runs at a time (default 2)")
    parser.add_argument("--cli-arg", action="append", default=[], help="extra argument for every CLI run")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' run that proves the bench works (without NAB_DIR: two synthetic series)")
    args = parser.parse_args(argv)
    if args.nab_dir is None and not args.smoke:
        parser.error("NAB_DIR is required (or --smoke)")
    root = Path(args.nab_dir) if args.nab_dir else smoke_nab(Path(tempfile.mkdtemp(prefix="nexus-kpi-smoke-")))
    labels_path = root / "labels" / "combined_windows.json"
    if not (root / "data").is_dir() or not labels_path.is_file():
        print(f"kpi_eval: {root} is not a NAB data folder: it needs data/<folder>/<file>.csv and "
              f"labels/combined_windows.json (the development set is ../shared/data/nab-dev)", file=sys.stderr)
        return 2
    labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text())
    names = sorted(n for n in labels if (root / "data" / n).is_file())[: 2 if args.smoke else None]
    if not names:
        print(f"kpi_eval: no labelled series found under {root / 'data'}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        scores = list(pool.map(lambda n: score_series(root, n, labels[n], args.cli_arg), names))
    summary = summarise(scores)
    if args.json:
        print(json.dumps({"summary": summary, "series": [asdict(s) for s in scores]}, indent=2))
        return 0
    print(f"{'series':<52} {'days':>6} {'facts':>6} {'claims':>6} {'in win':>6} {'windows':>8}  types")
    for s in scores:
        print(f"{s.name:<52} {s.days:6.1f} {s.facts:6d} {s.claims:6d} {s.claims_in_windows:6d} "
              f"{s.windows_found:>3}/{s.windows:<4}  {s.facts_by_type}")
        for problem in s.wrong_changes:
            print(f"    wrong change: {problem}")
    print()
    for folder, f in summary["per_folder"].items():
        print(f"{folder:<24} claims {f['claims_in_windows']}/{f['claims']} in windows, windows found "
              f"{f['windows_found']}/{f['windows']}, {f['facts_per_series_day']} facts per series-day")
    print()
    print(f"anomaly precision             {summary['anomaly_precision']:.3f} "
          f"({summary['anomaly_claims_in_windows']} of {summary['anomaly_claims']} claims)")
    print(f"window recall                 {summary['window_recall']:.3f} "
          f"({summary['windows_found']} of {summary['windows']} windows)")
    print(f"facts per series-day          {summary['facts_per_series_day']:.3f} "
          f"({summary['facts']} facts over {summary['series_days']} series-days)")
    print(f"claims on {NO_ANOMALY_FOLDER:<20}{summary['claims_on_no_anomaly_series']}")
    print(f"wrong change numbers          {summary['wrong_change_numbers']} of {summary['change_facts']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
