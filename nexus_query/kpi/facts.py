"""The KPI fact worker: typed, exact, few.

For each series it judges complete windows (of the catalogue's length, or one chosen from the sampling)
and says something only when the data supports it:

==================  ==========================================================================
``change``          the window's value against the comparable window before it (the previous one, or
                    the same one a day/week earlier for seasonal metrics): at least ``min_change_pct``
                    and sustained (nearly every reading now beyond nearly every reading then)
``trend``           six comparable windows moving one way (Kendall tau >= 0.8), at least
                    ``min_change_pct`` overall, not carried by a single step, the last window's readings
                    nearly all beyond the first's
``outside_band``    most readings outside the robust band of the previous windows
                    (median ± 3 × 1.4826 × MAD, never narrower than ± ``min_change_pct``)
``threshold_breach`` at least three readings in a row beyond the catalogue's threshold
``new_extreme``     the window's value beyond every one of at least 24 earlier windows spanning three
                    days or more, farther from their median than ``min_change_pct`` and 4 robust
                    sigmas, with most of its readings beyond too (folded into ``outside_band``)
``missing_data``    a window of an established series with too few readings to judge
``stale_data``      (with a check time) no reading in the latest complete window of the clock
==================  ==========================================================================

Guard rails: a window needs ``min_points`` readings and half of those its sampling promises; only
complete windows are judged; conditions must be sustained (a single spike says nothing); rising is
called better or worse by the metric's direction; sentences state numbers, never causes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

import numpy as np

from nexus_query.kpi.catalogue import Catalogue, MetricSpec
from nexus_query.kpi.source import Series
from nexus_query.kpi.windows import (
    DAY,
    choose_window,
    comparison_phrase,
    from_datetime,
    history_phrase,
    iso,
    period_phrase,
    season_lag,
    to_datetime,
    to_us,
    typical_spacing_us,
    window_code,
    window_noun,
    window_of,
    window_start_us,
    windows_noun,
)
from nexus_query.store.rows import Record

FACT_TYPES = ("change", "trend", "outside_band", "threshold_breach", "new_extreme", "missing_data", "stale_data")

MIN_COVERAGE = 0.5  # a window needs at least half the readings its sampling promises
SUSTAINED_SHARE = 0.95  # change, trend: P(a reading now > a reading then) must reach 0.95 (or fall to 0.05)
BAND_K = 3.0
MAD_TO_SIGMA = 1.4826
BASELINE_WINDOWS, MIN_BASELINE_WINDOWS = 24, 6
HISTORY_WINDOWS, MIN_HISTORY_WINDOWS, MIN_HISTORY_SPAN = 168, 24, timedelta(days=3)
EXTREME_K = 4.0  # a record must also sit 4 robust sigmas of the window values from their median
TREND_WINDOWS, TREND_TAU, TREND_MAX_STEP_SHARE = 6, 0.8, 0.5
SUSTAIN_POINTS = 3  # threshold breach: readings in a row

_AGG_VERB = {"mean": "averaged", "median": "had a median of", "sum": "totalled", "min": "had a low of",
             "max": "peaked at", "last": "ended at"}
_AGG_NOUN = {"mean": "average", "median": "median", "sum": "total", "min": "low", "max": "peak",
             "last": "last reading"}


@dataclass(frozen=True)
class Fact:
    """One sentence about one window of one series, with everything behind it in ``metadata``."""

    id: str
    type: str
    text: str
    source: str  # ``kpi/{series}/{window start}``: the unit a re-run replaces (``.../stale`` for staleness)
    window_start: str
    window_end: str
    metadata: dict[str, Any]

    def to_record(self) -> Record:
        return Record(text=self.text, source=self.source, type="kpi", metadata=self.metadata, id=self.id,
                      chunk_index=FACT_TYPES.index(self.type))

    def to_json(self) -> dict[str, Any]:
        """The CLI's line: type, window, text and the numbers."""
        keep = ("metric", "series", "unit", "assessment", "numbers", "points", "method")
        return {"id": self.id, "type": self.type, "window_start": self.window_start,
                "window_end": self.window_end, "text": self.text,
                **{k: self.metadata[k] for k in keep if k in self.metadata}}


def fact_id(tenant: str, series_key: str, fact_type: str, window_start: str, window_end: str) -> str:
    """Deterministic: the same fact about the same window has the same id, so a re-run replaces it."""
    key = "\x1f".join([tenant, series_key, fact_type, window_start, window_end])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def fact_source(series_key: str, window_start_us: int | None) -> str:
    return f"kpi/{series_key}/" + ("stale" if window_start_us is None else iso(window_start_us))


@dataclass
class SeriesReport:
    """What the worker saw in one series: its windows, the ones it judged, and what it said."""

    series: Series
    spec: MetricSpec
    window: timedelta
    lag: int
    expected: int  # readings a window holds at the usual sampling
    required: int  # readings a window needs to be judged
    starts_us: np.ndarray  # start of each complete window, oldest first
    counts: np.ndarray
    values: np.ndarray  # the window's value (its aggregation), NaN where too few readings
    judged: list[int] = field(default_factory=list)  # window starts judged in this run
    stale_checked: bool = False
    facts: list[Fact] = field(default_factory=list)

    @property
    def sources(self) -> set[str]:
        """The fact sources this run speaks for: their old facts are replaced by ``facts``."""
        judged = {fact_source(self.series.key, start) for start in self.judged}
        return judged | ({fact_source(self.series.key, None)} if self.stale_checked else set())


def analyse_series(series: Series, spec: MetricSpec, *, tenant: str = "local", history: bool = False,
                   as_of: datetime | None = None, since: datetime | None = None) -> SeriesReport:
    """Facts of the latest complete window (or, with ``history``, of every complete window that starts
    at ``since`` or later, each judged only on what came before it). ``as_of`` is the check time:
    readings after it are ignored, and a series with no reading in the clock's latest complete window
    gets a ``stale_data`` fact."""
    ts, vals = series.timestamps_us, series.values
    as_of_us = from_datetime(as_of) if as_of is not None else None
    if as_of_us is not None:
        keep = ts < as_of_us
        ts, vals = ts[keep], vals[keep]
    window = spec.window or choose_window(ts, spec.min_points)
    width = to_us(window)
    spacing = typical_spacing_us(ts) or width
    expected = max(1, round(width / spacing))
    required = max(spec.min_points, math.ceil(MIN_COVERAGE * expected))
    lag = season_lag(window, spec.seasonality)
    empty = np.zeros(0, dtype=np.int64)
    if ts.size == 0:
        return SeriesReport(series, spec, window, lag, expected, required, empty, empty, np.zeros(0))
    horizon = int(ts[-1]) + spacing if as_of_us is None else min(int(ts[-1]) + spacing, as_of_us)
    # Complete windows: from the one holding the first reading to the last one that ends by the horizon.
    first, last = window_of(int(ts[0]), window), window_of(horizon, window) - 1
    starts = np.array([window_start_us(k, window) for k in range(first, last + 1)], dtype=np.int64)
    bounds = np.searchsorted(ts, np.append(starts, starts[-1:] + width))
    counts = np.diff(bounds)
    values = np.array([_aggregate(vals[bounds[i]:bounds[i + 1]], spec.aggregation) if counts[i] >= required
                       else np.nan for i in range(starts.size)])
    report = SeriesReport(series, spec, window, lag, expected, required, starts, counts, values)
    judge = _Judge(report, tenant, ts, vals, bounds)
    first_judged = int(np.searchsorted(starts, from_datetime(since))) if since is not None else 0
    for i in (range(first_judged, starts.size) if history else range(starts.size)[-1:]):
        report.judged.append(int(starts[i]))
        report.facts.extend(judge.window(i))
    if as_of_us is not None:
        report.stale_checked = True
        report.facts.extend(judge.staleness(as_of_us))
    return report


def facts_for_series(series: Series, spec: MetricSpec, **kwargs: Any) -> list[Fact]:
    return analyse_series(series, spec, **kwargs).facts


def analyse_source(series: Iterable[Series], catalogue: Catalogue, *, tenant: str, history: bool = False,
                   as_of: datetime | None = None, since: datetime | None = None,
                   ) -> tuple[list[SeriesReport], list[str]]:
    """Reports for every catalogued series, and the names of metrics the catalogue does not list."""
    reports, uncatalogued = [], set()
    for one in series:
        spec = catalogue.get(one.metric)
        if spec is None:
            uncatalogued.add(one.metric)
            continue
        reports.append(analyse_series(one, spec, tenant=tenant, history=history, as_of=as_of, since=since))
    return reports, sorted(uncatalogued)


def _aggregate(values: np.ndarray, how: str) -> float:
    return float({"mean": np.mean, "median": np.median, "sum": np.sum, "min": np.min, "max": np.max,
                  "last": lambda v: v[-1]}[how](values))


def share_greater(now: np.ndarray, then: np.ndarray) -> float:
    """P(a reading now > a reading then), ties counting half: 1.0 when every reading rose."""
    ordered = np.sort(then)
    below = np.searchsorted(ordered, now, side="left")
    not_above = np.searchsorted(ordered, now, side="right")
    return float((below + not_above).sum() / (2.0 * now.size * then.size))


def kendall_tau(values: np.ndarray) -> float:
    n = values.size
    signs = [np.sign(values[j] - values[i]) for i in range(n) for j in range(i + 1, n)]
    return float(np.sum(signs) / len(signs)) if signs else 0.0


def longest_run(flags: np.ndarray) -> int:
    best = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        best = max(best, current)
    return best


def percent_change(before: float, after: float) -> float | None:
    return None if before == 0 else (after - before) / abs(before) * 100.0


class _Judge:
    """Judges one window at a time, looking only at that window and the ones before it."""

    def __init__(self, report: SeriesReport, tenant: str, ts: np.ndarray, vals: np.ndarray,
                 bounds: np.ndarray) -> None:
        self.r, self.tenant, self.ts, self.vals, self.bounds = report, tenant, ts, vals, bounds
        self.spec, self.series = report.spec, report.series
        self.unit = report.spec.unit or report.series.unit
        self.label = report.spec.label + (
            " (" + ", ".join(f"{k}={v}" for k, v in report.series.dimensions) + ")"
            if report.series.dimensions else "")
        ok = ~np.isnan(report.values)
        self.ok = ok
        self.established_before = np.concatenate([[False], np.cumsum(ok)[:-1] > 0]) if ok.size else ok

    # ---- one window ------------------------------------------------------------------------------

    def points(self, i: int) -> np.ndarray:
        return self.vals[self.bounds[i]:self.bounds[i + 1]]

    def earlier(self, i: int, count: int) -> list[int]:
        """Indices of up to ``count`` comparable windows before ``i`` that have enough readings."""
        found = [i - self.r.lag * m for m in range(1, count + 1) if i - self.r.lag * m >= 0]
        return [j for j in found if self.ok[j]]

    def window(self, i: int) -> list[Fact]:
        if not self.ok[i]:
            return [self.missing(i)] if self.established_before[i] else []
        facts = [f for f in (self.change(i), self.trend(i)) if f]
        band = self.band(i)
        extreme = self.extreme(i)
        if band and extreme and band[0] == extreme[0]:
            facts.append(self.band_fact(i, band, extreme))
        else:
            facts += [f for f in (band and self.band_fact(i, band, None), extreme and self.extreme_fact(i, extreme))
                      if f]
        facts += self.thresholds(i)
        return sorted(facts, key=lambda f: FACT_TYPES.index(f.type))

    def change(self, i: int) -> Fact | None:
        j = i - self.r.lag
        if j < 0 or not self.ok[j]:
            return None
        before, after = float(self.r.values[j]), float(self.r.values[i])
        pct = percent_change(before, after)
        rising = after > before
        share = share_greater(self.points(i), self.points(j))
        sustained = share >= SUSTAINED_SHARE if rising else share <= 1 - SUSTAINED_SHARE
        if after == before or not sustained or (pct is not None and abs(pct) < self.spec.min_change_pct):
            return None
        verb = "rose" if rising else "fell"
        amount = self._amount(before, after, pct)
        text = (f"{self.label} {verb}{amount} {self.period(i)} compared with "
                f"{comparison_phrase(self.r.window, self.r.lag)}, from {self.value(before)} to "
                f"{self.value(after)}{self.assessment_clause(rising)}.")
        numbers = {"from": before, "to": after, "absolute_change": after - before, "percent_change": pct}
        points = {"current": int(self.r.counts[i]), "previous": int(self.r.counts[j])}
        method = {"aggregation": self.spec.aggregation, "compared_with": iso(int(self.r.starts_us[j])),
                  "share_of_readings_beyond": share, "min_change_pct": self.spec.min_change_pct,
                  "sustained_share": SUSTAINED_SHARE}
        return self.fact("change", i, text, numbers, points, method, rising)

    def trend(self, i: int) -> Fact | None:
        chain = [i - self.r.lag * m for m in range(TREND_WINDOWS - 1, -1, -1)]
        if chain[0] < 0 or not all(self.ok[j] for j in chain):
            return None
        values = self.r.values[chain]
        tau, total = kendall_tau(values), float(values[-1] - values[0])
        pct = percent_change(float(values[0]), float(values[-1]))
        largest_step = float(np.max(np.abs(np.diff(values))))
        rising = total > 0
        share = share_greater(self.points(chain[-1]), self.points(chain[0]))
        if (abs(tau) < TREND_TAU or total == 0 or np.sign(tau) != np.sign(total)
                or (pct is not None and abs(pct) < self.spec.min_change_pct)
                or largest_step > TREND_MAX_STEP_SHARE * abs(total)
                or (share < SUSTAINED_SHARE if rising else share > 1 - SUSTAINED_SHARE)):
            return None
        start = int(self.r.starts_us[chain[0]])
        if self.r.lag == 1:
            span = f"over the {windows_noun(self.r.window, TREND_WINDOWS)} ending {self._end_stamp(i)}"
        else:
            season = "days" if self.r.window * self.r.lag == DAY else "weeks"
            span = (f"{self.period(i)} and the same {window_noun(self.r.window)} on the "
                    f"{TREND_WINDOWS - 1} previous {season}")
        pct_text = f" ({pct:+.1f}%)" if pct is not None else ""
        text = (f"{self.label} trended {'up' if rising else 'down'} {span}, from {self.value(values[0])} "
                f"to {self.value(values[-1])}{pct_text}{self.assessment_clause(rising)}.")
        numbers = {"from": float(values[0]), "to": float(values[-1]), "absolute_change": total,
                   "percent_change": pct, "window_values": [float(v) for v in values]}
        points = {"per_window": [int(self.r.counts[j]) for j in chain]}
        method = {"aggregation": self.spec.aggregation, "windows": TREND_WINDOWS, "kendall_tau": tau,
                  "min_tau": TREND_TAU, "largest_step_share": largest_step / abs(total),
                  "share_of_readings_beyond": share}
        return self.fact("trend", i, text, numbers, points, method, rising, start_us=start)

    def band(self, i: int) -> tuple[bool, dict[str, Any]] | None:
        base = self.earlier(i, BASELINE_WINDOWS)
        if len(base) < MIN_BASELINE_WINDOWS:
            return None
        pool = np.concatenate([self.points(j) for j in base])
        median = float(np.median(pool))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(pool - median)))
        half = max(BAND_K * sigma, self.spec.min_change_pct / 100.0 * abs(median))
        low, high = median - half, median + half
        now = self.points(i)
        above, below = int((now > high).sum()), int((now < low).sum())
        need = max(SUSTAIN_POINTS, now.size // 2 + 1)
        if above < need and below < need:
            return None
        return above >= need, {"low": low, "high": high, "baseline_median": median, "robust_sigma": sigma,
                               "readings_outside": above if above >= need else below, "baseline_windows": len(base),
                               "baseline_readings": int(pool.size)}

    def band_fact(self, i: int, band: tuple[bool, dict[str, Any]], extreme: tuple[bool, dict] | None) -> Fact:
        rising, info = band
        n = int(self.r.counts[i])
        side = "above" if rising else "below"
        clause = ""
        if extreme:
            clause = (f", and its {_AGG_NOUN[self.spec.aggregation]} of {self.value(self.r.values[i])} was "
                      f"{'higher' if rising else 'lower'} than in {history_phrase(self.r.window, self.r.lag, extreme[1]['windows'], any_of=True)}")
        text = (f"{self.label} was unusually {'high' if rising else 'low'} {self.period(i)}: "
                f"{info['readings_outside']} of {n} readings were {side} the usual range of "
                f"{self.range(info['low'], info['high'])} (from {history_phrase(self.r.window, self.r.lag, info['baseline_windows'])})"
                f"{clause}{self.assessment_clause(rising)}.")
        numbers = {"value": float(self.r.values[i]), "band_low": info["low"], "band_high": info["high"],
                   "baseline_median": info["baseline_median"], "readings_outside": info["readings_outside"]}
        if extreme:
            numbers["previous_extreme"] = extreme[1]["previous"]
        points = {"current": n, "baseline": info["baseline_readings"]}
        method = {"band": "median ± max(3 × 1.4826 × MAD, min_change_pct)", "k": BAND_K,
                  "robust_sigma": info["robust_sigma"], "baseline_windows": info["baseline_windows"],
                  "new_extreme": bool(extreme), "aggregation": self.spec.aggregation}
        return self.fact("outside_band", i, text, numbers, points, method, rising)

    def extreme(self, i: int) -> tuple[bool, dict[str, Any]] | None:
        past = self.earlier(i, HISTORY_WINDOWS)
        # "Highest in two days" is noise for a metric with a daily rhythm: ask for days of history.
        if len(past) < max(MIN_HISTORY_WINDOWS, math.ceil(MIN_HISTORY_SPAN / (self.r.window * self.r.lag))):
            return None
        value, now = float(self.r.values[i]), self.points(i)
        typical = float(np.median(self.r.values[past]))
        spread = EXTREME_K * MAD_TO_SIGMA * float(np.median(np.abs(self.r.values[past] - typical)))
        if abs(value - typical) < max(self.spec.min_change_pct / 100.0 * abs(typical), spread):
            return None  # a record by a hair, or within the usual spread of windows, is chance, not news
        top, bottom = float(np.max(self.r.values[past])), float(np.min(self.r.values[past]))
        if value > top and (now > top).sum() > now.size / 2:
            return True, {"previous": top, "windows": len(past)}
        if value < bottom and (now < bottom).sum() > now.size / 2:
            return False, {"previous": bottom, "windows": len(past)}
        return None

    def extreme_fact(self, i: int, extreme: tuple[bool, dict[str, Any]]) -> Fact:
        rising, info = extreme
        text = (f"{self.label} {_AGG_VERB[self.spec.aggregation]} {self.value(self.r.values[i])} "
                f"{self.period(i)}, {'higher' if rising else 'lower'} than in {history_phrase(self.r.window, self.r.lag, info['windows'], any_of=True)}"
                f"{self.assessment_clause(rising)}.")
        numbers = {"value": float(self.r.values[i]), "previous_extreme": info["previous"]}
        method = {"aggregation": self.spec.aggregation, "history_windows": info["windows"]}
        return self.fact("new_extreme", i, text, numbers, {"current": int(self.r.counts[i])}, method, rising)

    def thresholds(self, i: int) -> list[Fact]:
        found = []
        now = self.points(i)
        for side, limit in (("above", self.spec.above), ("below", self.spec.below)):
            if limit is None:
                continue
            beyond = now > limit if side == "above" else now < limit
            run = longest_run(beyond)
            if run < SUSTAIN_POINTS:
                continue
            worst = float(now.max() if side == "above" else now.min())
            text = (f"{self.label} was {side} its {self.value(limit)} threshold in {int(beyond.sum())} of "
                    f"{now.size} readings {self.period(i)}, {'reaching' if side == 'above' else 'falling to'} "
                    f"{self.value(worst)}.")
            numbers = {"threshold": float(limit), "readings_beyond": int(beyond.sum()), "longest_run": run,
                       "worst": worst}
            method = {"side": side, "sustain_readings": SUSTAIN_POINTS}
            found.append(self.fact("threshold_breach", i, text, numbers, {"current": int(now.size)}, method,
                                   side == "above", assessment="worse"))
        return found

    def missing(self, i: int) -> Fact:
        n, expected = int(self.r.counts[i]), self.r.expected
        if n == 0:
            text = f"No readings of {self.label} were recorded {self.period(i)}; {expected} were expected."
        else:
            text = (f"Only {n} of the {expected} expected readings of {self.label} were recorded "
                    f"{self.period(i)}, too few to judge the {window_noun(self.r.window)}.")
        numbers = {"readings": n, "expected": expected, "required": self.r.required}
        method = {"min_points": self.spec.min_points, "min_coverage": MIN_COVERAGE}
        return self.fact("missing_data", i, text, numbers, {"current": n}, method, None, assessment="neutral")

    def staleness(self, as_of_us: int) -> list[Fact]:
        """A series that was judged before but has no reading in the clock's latest complete window."""
        clock_last = window_of(as_of_us, self.r.window) - 1
        clock_end = window_start_us(clock_last + 1, self.r.window)
        if self.ts.size == 0 or not self.ok.any() or self.ts[-1] >= window_start_us(clock_last, self.r.window):
            return []
        last = int(self.ts[-1])
        silent = clock_last - window_of(last, self.r.window)
        span = (f"the {window_noun(self.r.window)}" if silent == 1
                else f"the {windows_noun(self.r.window, silent)}")
        text = (f"The last reading of {self.label} is from {to_datetime(last):%Y-%m-%d %H:%M} UTC; none were "
                f"recorded in {span} up to {to_datetime(clock_end):%Y-%m-%d %H:%M} UTC.")
        numbers = {"last_reading_at": iso(last), "empty_windows": silent, "checked_at": iso(as_of_us)}
        window_start, window_end = iso(last), iso(clock_end)
        metadata = self.metadata("stale_data", window_start, window_end, numbers, {"current": 0},
                                 {"check": "no reading in the latest complete window"}, "neutral")
        return [Fact(fact_id(self.tenant, self.series.key, "stale_data", window_start, window_end), "stale_data",
                     text, fact_source(self.series.key, None), window_start, window_end, metadata)]

    # ---- words and metadata ----------------------------------------------------------------------

    def fact(self, kind: str, i: int, text: str, numbers: dict, points: dict, method: dict,
             rising: bool | None, *, start_us: int | None = None, assessment: str | None = None) -> Fact:
        start = iso(start_us if start_us is not None else int(self.r.starts_us[i]))
        end = iso(int(self.r.starts_us[i]) + to_us(self.r.window))
        metadata = self.metadata(kind, start, end, numbers, points, method,
                                 assessment or self.assessment(rising))
        return Fact(fact_id(self.tenant, self.series.key, kind, start, end), kind, text,
                    fact_source(self.series.key, int(self.r.starts_us[i])), start, end, metadata)

    def metadata(self, kind: str, start: str, end: str, numbers: dict, points: dict, method: dict,
                 assessment: str) -> dict[str, Any]:
        method = {**method, "window": window_code(self.r.window), "window_chosen_from_data": self.spec.window is None,
                  "comparison_lag_windows": self.r.lag, "min_points": self.r.required}
        return {"kind": "kpi_fact", "fact_type": kind, "metric": self.series.metric, "series": self.series.key,
                "label": self.label, "unit": self.unit, "dimensions": dict(self.series.dimensions),
                "direction": self.spec.direction, "assessment": assessment, "window": window_code(self.r.window),
                "window_start": start, "window_end": end, "numbers": _rounded(numbers), "points": points,
                "method": _rounded(method)}

    def assessment(self, rising: bool | None) -> str:
        if rising is None or self.spec.direction == "neutral":
            return "neutral"
        return "better" if rising == (self.spec.direction == "up_is_good") else "worse"

    def assessment_clause(self, rising: bool) -> str:
        return {"better": ", an improvement", "worse": ", a deterioration", "neutral": ""}[self.assessment(rising)]

    def period(self, i: int) -> str:
        start = int(self.r.starts_us[i])
        return period_phrase(start, start + to_us(self.r.window), self.r.window)

    def _end_stamp(self, i: int) -> str:
        return f"{to_datetime(int(self.r.starts_us[i]) + to_us(self.r.window)):%Y-%m-%d %H:%M} UTC"

    def _amount(self, before: float, after: float, pct: float | None) -> str:
        if self.unit == "%":
            points = f" {format_number(abs(after - before))} percentage points"
            return points + (f" ({abs(pct):.1f}%)" if pct is not None else "")
        return f" {abs(pct):.1f}%" if pct is not None else ""

    def value(self, v: float) -> str:
        return format_value(float(v), self.unit)

    def range(self, low: float, high: float) -> str:
        return f"{format_number(low)}–{format_value(high, self.unit)}"


def format_number(v: float) -> str:
    """Three significant digits, thousands separated, never scientific: 217, 3.20, 0.0412, 12,480."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    decimals = 2 - math.floor(math.log10(abs(v)))
    if decimals <= 0:
        return f"{round(v):,}"
    text = f"{v:.{decimals}f}"
    return "0" if float(text) == 0 else text


def format_value(v: float, unit: str) -> str:
    number = format_number(v)
    if not unit:
        return number
    return f"{number}{unit}" if unit == "%" else f"{number} {unit}"


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 significant digits: metadata stays readable and the same input gives the same JSON."""
    def one(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.6g}") if math.isfinite(v) else None
        if isinstance(v, list):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in values.items()}
