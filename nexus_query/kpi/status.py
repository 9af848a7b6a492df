"""The status fact: one per series, always, updated in place; what answers "how is checkout latency?" when
nothing is wrong.

From the second complete window on, a series' status names its latest window's value, the change against the
window before and, when the history holds them, against the same window a day and a week earlier, with exact
numbers, and whether the value is within, above or below its usual range once a range can be estimated
(``MIN_HISTORY`` earlier windows: the judge's baseline and robust spread). A change within the series' own
variation between such windows (``USUAL_Z`` robust sigmas of the earlier differences; before enough of them,
less than ``min_change_pct``) is "about the same". The status is not an anomaly claim; its id names only the
tenant and the series, so each run replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nexus_query.kpi.episodes import Judge
from nexus_query.kpi.fact import Fact, fact_id, status_source
from nexus_query.kpi.stats import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA, percent_change
from nexus_query.kpi.windows import DAY, WEEK, iso, stamp, window_noun

USUAL_Z = 2.0  # within two robust sigmas of the usual differences (p ≈ 0.05) a change is "about the same"
Position = str  # "within" | "above" | "below"


@dataclass(frozen=True)
class Comparison:
    """The latest window against one earlier window."""

    name: str  # previous | day | week
    index: int
    value: float
    pct: float | None
    same: bool  # within the usual variation: "about the same"

    def as_dict(self, start_us: int) -> dict[str, Any]:
        return {"value": self.value, "percent_change": self.pct, "about_the_same": self.same,
                "window_start": iso(start_us)}


def latest_judged(judge: Judge) -> int | None:
    """The latest window with a value, when there is one before it (a status needs two complete windows)."""
    ok = np.flatnonzero(judge.ok)
    return int(ok[-1]) if ok.size >= 2 else None


def compare(judge: Judge, i: int, name: str, lag: int) -> Comparison | None:
    j = i - lag
    if j < 0 or not judge.ok[j]:
        return None
    before, after = float(judge.r.values[j]), float(judge.r.values[i])
    pct = percent_change(before, after)
    typical = typical_difference(judge, i, lag)
    if typical is not None:
        same = abs(after - before) <= USUAL_Z * typical
    else:
        same = after == before or (pct is not None and abs(pct) < judge.spec.min_change_pct)
    return Comparison(name, j, before, pct, same)


def typical_difference(judge: Judge, i: int, lag: int) -> float | None:
    """The robust sigma (1.4826 × MAD about 0) of the earlier differences between windows ``lag`` apart: the
    series' own window-to-window variation. The MAD, not the tail scale of the judge: a daily rhythm's few
    big steps are not the usual difference, so a 60% drop at the end of a busy evening is said as one."""
    idx = np.arange(max(lag, i - judge.baselines.scale_n), i)
    diffs = judge.r.values[idx] - judge.r.values[idx - lag]
    diffs = np.abs(diffs[~np.isnan(diffs)])
    if diffs.size < judge.baselines.min_history:
        return None
    return MAD_TO_SIGMA * float(np.median(diffs)) or MEAN_AD_TO_SIGMA * float(np.mean(diffs))


def status_fact(judge: Judge) -> Fact | None:
    """The series' status as of its latest complete window with a value; None before the second one."""
    i = latest_judged(judge)
    if i is None:
        return None
    r, words, window = judge.r, judge.words, judge.r.window
    value = float(r.values[i])
    lags = [("previous", 1)] + [(name, period // window) for name, period in (("day", DAY), ("week", WEEK))
                                if window < period and not period % window]
    found = [c for name, lag in lags if (c := compare(judge, i, name, lag)) is not None]
    noun = window_noun(window)
    clauses = []
    for c in found:
        then = {"previous": f"the {noun} before", "day": f"the same {noun} a day earlier",
                "week": f"the same {noun} a week earlier"}[c.name]
        if c.same:
            clauses.append(f"about the same as {then} ({words.value(c.value)})")
        else:
            verb = "up" if value > c.value else "down"
            amount = f" {abs(c.pct):.1f}%" if c.pct is not None else ""
            clauses.append(f"{verb}{amount} from {words.value(c.value)} {then}")
    numbers: dict[str, Any] = {"value": value}
    for c in found:
        numbers[c.name] = c.as_dict(r.start_us(c.index))
    position, usual_text = usual_range(judge, i, numbers)
    text = f"{words.label} was {words.value(value)} {words.period(r.start_us(i))}"
    text += (", " + "; ".join(clauses)) if clauses else ""
    text += (f"; {usual_text}" if usual_text else "") + "."
    previous = next((c for c in found if c.name == "previous"), None)
    rising = None if previous is None or previous.same else value > previous.value
    metadata = judge.builder.metadata(
        "status", iso(r.start_us(i)), iso(r.end_us(i)), numbers,
        {"current": int(r.counts[i])}, {"aggregation": judge.spec.aggregation, "usual_z": USUAL_Z},
        words.assessment(rising))
    metadata.update(position=position, window_complete=bool(r.counts[i] >= r.expected))
    key = r.series.key
    return Fact(fact_id(judge.builder.tenant, key, "status", "current"), "status", text, status_source(key),
                iso(r.start_us(i)), iso(r.end_us(i)), metadata)


def usual_range(judge: Judge, i: int, numbers: dict[str, Any]) -> tuple[Position | None, str]:
    """Where the value lies against the baseline's usual range (expected ± ``USUAL_Z`` robust sigmas), and,
    when it has been outside for a run of windows, since when and the change from the window before them."""
    verdict = judge.verdicts[i]
    if verdict is None:
        return None, ""
    r, words = judge.r, judge.words
    low, high = verdict.expected - USUAL_Z * verdict.sigma, verdict.expected + USUAL_Z * verdict.sigma
    readings = judge.vals[:judge.bounds[i + 1]]
    if readings.size and readings.min() >= 0:
        low = max(low, 0.0)  # a usual range below zero is not one a count or a latency can be in
    value = float(r.values[i])
    numbers.update(usual_low=low, usual_high=high)
    usual = words.range(low, high) if low < high else words.value(high)
    if low <= value <= high:
        return "within", f"within its usual {'range of ' if low < high else 'value of '}{usual}"
    side = "above" if value > high else "below"
    first = i
    while first - 1 >= 0 and judge.ok[first - 1] and (
            r.values[first - 1] > high if side == "above" else r.values[first - 1] < low):
        first -= 1
    text = f"{side} its usual {'range of ' if low < high else 'value of '}{usual}"
    before = first - 1
    if first < i and before >= 0 and judge.ok[before]:
        then = float(r.values[before])
        pct = percent_change(then, value)
        amount = f" {abs(pct):.1f}%" if pct is not None else ""
        text += (f" since {stamp(r.start_us(first))}, {'up' if value > then else 'down'}{amount} from "
                 f"{words.value(then)} in the {window_noun(r.window)} ending {stamp(r.end_us(before))}")
        numbers["outside_since"] = {"since": iso(r.start_us(first)), "windows": i - first + 1, "value": then,
                                    "percent_change": pct, "window_start": iso(r.start_us(before))}
    return side, text
