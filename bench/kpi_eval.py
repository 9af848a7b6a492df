"""How far to trust the KPI fact worker, measured on public series with labelled anomaly windows.

    .venv/bin/python bench/kpi_eval.py ../shared/data/nab-dev [--json]
    .venv/bin/python bench/kpi_eval.py ../shared/data/nab-dev --folds
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
* wrong numbers: a ``change`` fact whose ``from``/``to`` are not the aggregation of the file's readings in the
  two windows it names, or whose percentage does not follow from them; a ``status`` fact whose value or
  compared values are not the aggregation of the readings in the windows it names, or whose percentages do not
  follow from them; a spread ``outside_band`` fact whose lowest and highest readings (and range) are not those
  of the readings in the window it names.

``--folds`` chooses the worker's calibration (``nexus_query.kpi.stats.Calibration``: the false-alarm budget,
how long an episode lasts, the CUSUM drift and threshold of shift episodes, and the range z of spread episodes
or none) by cross-validation
over the data's folders: for each folder in turn, the grid point with the best F1 of precision and recall on
the other folders (among those with no claim on
``artificialNoAnomaly`` and at most ``MAX_CLAIMS_PER_DAY``) is scored on the held-out folder. It prints each
fold, the pooled held-out result (every series scored once, by the setting chosen without it) and the
setting chosen on all folders (the code's default). It runs the worker in process, the same code as the CLI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import polars as pl

from nexus_query.kpi import MetricSpec, analyse_series, read_series_file
from nexus_query.kpi.source import metric_from_path
from nexus_query.kpi.stats import CALIBRATION, Calibration

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


def check_status(fact: dict, ts: np.ndarray, vals: np.ndarray) -> str | None:
    """None when the status fact's value and compared values follow from the readings, else what is wrong."""
    method, numbers = fact.get("method", {}), fact.get("numbers", {})
    window = int(method["window"][:-1]) * UNITS[method["window"][-1]]
    how = method.get("aggregation", "mean")

    def value_at(start: datetime) -> float | None:
        inside = (ts >= us(start)) & (ts < us(start + window))
        return aggregate(vals[inside], how) if inside.any() else None

    now = value_at(utc(fact["window_start"]))
    if now is None or not close(numbers["value"], now):
        return f"value {numbers['value']} but the readings give {now}"
    for name in ("previous", "day", "week", "outside_since"):
        if name not in numbers:
            continue
        then = value_at(utc(numbers[name]["window_start"]))
        if then is None or not close(numbers[name]["value"], then):
            return f"{name} {numbers[name]['value']} but the readings give {then}"
        pct = numbers[name].get("percent_change")
        if pct is not None and then != 0 and not close(pct, (now - then) / abs(then) * 100.0):
            return f"{name} percent_change {pct} but the readings give {(now - then) / abs(then) * 100.0:.6g}"
    return None


def check_spread(fact: dict, ts: np.ndarray, vals: np.ndarray) -> str | None:
    """None when a spread episode's lowest and highest readings, and its range, are those of the readings in
    the window it names; else what is wrong."""
    method, numbers = fact.get("method", {}), fact.get("numbers", {})
    window = int(method["window"][:-1]) * UNITS[method["window"][-1]]
    start = utc(numbers["range_window_start"])
    inside = (ts >= us(start)) & (ts < us(start + window))
    if not inside.any():
        return f"no readings in the window starting {start.isoformat()}"
    low, high = float(vals[inside].min()), float(vals[inside].max())
    if not (close(numbers["low"], low) and close(numbers["high"], high)
            and close(numbers["range"], high - low)):
        return (f"low/high/range {numbers['low']}/{numbers['high']}/{numbers['range']} but the readings give "
                f"{low:.6g}/{high:.6g}/{high - low:.6g}")
    return None


def is_spread(fact: dict) -> bool:
    return fact["type"] == "outside_band" and "range_window_start" in fact.get("numbers", {})


def score_series(root: Path, name: str, windows: list[list[str]], extra: list[str],
                 facts: list[dict] | None = None) -> SeriesScore:
    path = root / "data" / name
    facts = run_cli(path, extra) if facts is None else facts
    ts, vals = read_readings(path)
    spans = [(us(utc(a)), us(utc(b))) for a, b in windows]
    claims = [f for f in facts if f["type"] in ANOMALY_TYPES]
    onsets = [us(utc(f.get("episode_start") or f["window_end"])) for f in claims]
    inside = [any(a <= t <= b for a, b in spans) for t in onsets]
    found = sum(any(a <= t <= b for t in onsets) for a, b in spans)
    changes = [f for f in facts if f["type"] in ("change", "status") or is_spread(f)]
    checks = {"change": check_change, "status": check_status, "outside_band": check_spread}
    wrong = [f"{f['type']} {f['window_end']}: {problem}" for f in changes
             if (problem := checks[f["type"]](f, ts, vals))]
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
    parser.add_argument("--folds", action="store_true",
                        help="choose the calibration by cross-validation over the folders; print each fold")
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
    if args.folds:
        return folds(root, labels, names, args.jobs)
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
    print(f"wrong numbers                 {summary['wrong_change_numbers']} of {summary['change_facts']} "
          "change and status facts")
    return 0


# ---- cross-validation over the folders ------------------------------------------------------------------

BUDGETS = (0.01, 0.02, 0.05, 0.15, 0.5, 1.0, 2.0, 4.0, 8.0)  # false episodes a series-month
SHIFTS = ((1.0, 9.0), (1.0, 13.0), (1.5, 9.0))  # CUSUM (drift, threshold) of the shift episodes
SPREAD_ZS = (6.0, 9.0, 12.0)  # robust z of a window's range that opens a spread episode
SPREAD_BUDGETS = (0.02, 0.05, 0.15, 0.5)
NO_SPREAD = math.inf
GRID = tuple([Calibration(false_alarms_per_month=b, continue_p=p, spread_z=NO_SPREAD)
              for b in BUDGETS for p in (0.05, 0.2)]
             + [Calibration(false_alarms_per_month=b, shift_drift=k, shift_threshold=h, spread_z=NO_SPREAD)
                for b in BUDGETS for k, h in SHIFTS]
             + [Calibration(false_alarms_per_month=b, shift_drift=k, shift_threshold=h, spread_z=z)
                for b in SPREAD_BUDGETS for k, h in SHIFTS[:2] for z in SPREAD_ZS])
MAX_CLAIMS_PER_DAY = 0.5


def facts_in_process(path: Path, calibration: Calibration) -> list[dict]:
    """What ``nexus kpi facts FILE --history`` prints, with ``calibration`` instead of the default."""
    metric = metric_from_path(str(path))
    spec = MetricSpec(name=metric)
    return [f.to_json() for one in read_series_file(str(path), metric=metric)
            for f in analyse_series(one, spec, history=True, calibration=calibration).facts]


def f1(summary: dict) -> float:
    p, r = summary["anomaly_precision"], summary["window_recall"]
    return 0.0 if not (p == p and r == r) or p + r == 0 else 2 * p * r / (p + r)


def admissible(scores: list[SeriesScore]) -> bool:
    days = sum(s.days for s in scores)
    claims = sum(s.claims for s in scores)
    quiet = sum(s.claims for s in scores if s.name.startswith(NO_ANOMALY_FOLDER + "/")) == 0
    return quiet and ratio(claims, days) <= MAX_CLAIMS_PER_DAY


def choose(by_setting: dict[Calibration, list[SeriesScore]], names: set[str]) -> Calibration:
    """The grid point with the best F1 on ``names`` among the admissible ones (ties: the smaller budget)."""
    ranked = []
    for setting, scores in by_setting.items():
        train = [s for s in scores if s.name in names]
        ranked.append((not admissible(train), -f1(summarise(train)), setting.false_alarms_per_month,
                       setting.continue_p, -setting.shift_threshold, setting.shift_drift, -setting.spread_z,
                       setting))
    return min(ranked, key=lambda row: row[:7])[-1]


def score_setting(root: Path, labels: dict[str, list[list[str]]], names: list[str],
                  setting: Calibration) -> list[SeriesScore]:
    return [score_series(root, n, labels[n], [], facts_in_process(root / "data" / n, setting)) for n in names]


def folds(root: Path, labels: dict[str, list[list[str]]], names: list[str], jobs: int) -> int:
    # Processes, not threads: the worker is Python-bound, so threads would share one core.
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as pool:
        scored = pool.map(partial(score_setting, root, labels, names), GRID)
        by_setting = dict(zip(GRID, scored, strict=True))
    folders = sorted({n.split("/")[0] for n in names})
    held_out: list[SeriesScore] = []
    print(f"{'held-out folder':<24} {'chosen on the other three':<40} {'precision':>16} {'recall':>14} "
          f"{'claims/day':>10}")
    for folder in folders:
        train = {n for n in names if not n.startswith(folder + "/")}
        setting = choose(by_setting, train)
        test = [s for s in by_setting[setting] if s.name.startswith(folder + "/")]
        held_out += test
        t = summarise(test)
        print(f"{folder:<24} {describe(setting):<40} "
              f"{t['anomaly_precision']:>6.3f} ({t['anomaly_claims_in_windows']:>2}/{t['anomaly_claims']:<2}) "
              f"{t['window_recall']:>6.3f} ({t['windows_found']:>2}/{t['windows']:<2}) "
              f"{ratio(t['anomaly_claims'], t['series_days']):>10.3f}")
    pooled = summarise(held_out)
    print()
    print(f"pooled held-out: anomaly precision {pooled['anomaly_precision']:.3f} "
          f"({pooled['anomaly_claims_in_windows']} of {pooled['anomaly_claims']}), window recall "
          f"{pooled['window_recall']:.3f} ({pooled['windows_found']} of {pooled['windows']}), "
          f"{ratio(pooled['anomaly_claims'], pooled['series_days']):.3f} anomaly claims per series-day, "
          f"{pooled['claims_on_no_anomaly_series']} on {NO_ANOMALY_FOLDER}, wrong numbers "
          f"{pooled['wrong_change_numbers']} of {pooled['change_facts']} change and status facts")
    chosen = choose(by_setting, set(names))
    print(f"chosen on all four folders: {describe(chosen)}"
          f"{' (the default)' if chosen == CALIBRATION else f' (the default is {describe(CALIBRATION)})'}")
    return 0


def describe(setting: Calibration) -> str:
    shift = ("no shift" if setting.shift_threshold == float("inf")
             else f"shift k {setting.shift_drift:g} h {setting.shift_threshold:g}")
    spread = "" if setting.spread_z == float("inf") else f", spread z {setting.spread_z:g}"
    return f"budget {setting.false_alarms_per_month:g}/month, continue p {setting.continue_p:g}, {shift}{spread}"


if __name__ == "__main__":
    raise SystemExit(main())
