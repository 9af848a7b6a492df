"""The KPI fact worker: typed, exact, few, and calibrated so that a quiet series says nothing.

Each series is cut into complete windows (the catalogue's length, or one chosen from the sampling) and
every window is judged only on the windows before it, against a baseline that knows the series:

* **Baselines.** The recent level (median of about a day of windows) and, where the window divides a
  day or a week, a seasonal one: the median of the same window on the previous days (weeks), shifted by
  the median of the latest day's seasonal residuals, so that after a level shift the new level becomes
  the baseline within about half a day. ``seasonality: auto`` (the default) lets the data choose: the
  baseline whose recent residuals have the smallest robust spread wins (a daily rhythm is then judged
  against the same hour of earlier days); ``none``, ``daily`` and ``weekly`` force one.
* **Severity.** A window's robust z is its residual over 1.4826 × the MAD of the last week's residuals
  (the median and MAD ignore excursions shorter than half that history, so an episode does not widen
  its own band).
* **A false-alarm budget.** An episode opens when |z| exceeds the quantile that a residual passes with
  probability ``FALSE_ALARMS_PER_MONTH / windows per month`` (Bonferroni over the windows checked in a
  month), under Laplace tails: real KPI residuals have exponential, not Gaussian, tails, and P(|X| > z) =
  exp(-z·√2) says so (5.1 for hourly windows, 3.9 for 6-hour ones, 2.9 for days). The budget is 0.5
  expected false episodes a series-month, so that by Poisson two or more in a month happen 9% of the
  time: "at most about one". An episode continues while |z| stays above 2.1 (p < 0.05) on the same side,
  and never opens for a move smaller than ``min_change_pct`` of the baseline. With too little history
  (``MIN_HISTORY`` residuals, a day at least, and for sub-daily windows the days a daily rhythm needs)
  nothing is said.
* **Episodes, not windows.** A condition that holds over consecutive windows is one fact whose id is
  (tenant, series, type, onset): updated while it lasts, closed when it ends, ``episode_start``,
  ``episode_end``, its peak and duration in the metadata. ``window_start``/``window_end`` name the window
  it was last checked on.

==================  ==========================================================================
``outside_band``    an episode of windows beyond the baseline's band (a level shift is one too: it
                    closes once the new level has become the baseline, and says so)
``threshold_breach`` an episode of windows with three readings in a row beyond the catalogue's threshold
``missing_data``    an episode of windows of an established series with less than half the readings its
                    sampling promises (a window with more, but fewer than ``min_points``, is not judged)
``change``          the window against the comparable one before it (the previous window, or the same
                    one a day/week earlier when the baseline is seasonal): at least ``min_change_pct``,
                    sustained (nearly every reading beyond nearly every reading then), beyond the usual
                    window-to-window variation, and at most one a day per series
``trend``           six comparable windows moving one way (Kendall tau >= 0.8), at least
                    ``min_change_pct`` overall and beyond the usual variation, not carried by one step;
                    at most one a day per series
``stale_data``      (with a check time) no reading in the latest complete window of the clock
==================  ==========================================================================

Sentences state numbers with units, never causes; rising is called better or worse by the metric's
direction. ``new_extreme`` stays a known type (older spaces hold such facts); an episode's metadata now
says whether its peak was a record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from nexus_query.kpi.catalogue import Catalogue, MetricSpec
from nexus_query.kpi.source import Series
from nexus_query.kpi.windows import (
    DAY,
    MONTH,
    WEEK,
    choose_window,
    comparison_phrase,
    duration_phrase,
    from_datetime,
    iso,
    period_phrase,
    season_lag,
    stamp,
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

FACT_TYPES = ("change", "trend", "outside_band", "threshold_breach", "new_extreme", "missing_data", "stale_data",
              "spike")
EPISODE_TYPES = ("outside_band", "threshold_breach", "missing_data")

MIN_COVERAGE = 0.5  # a window needs at least half the readings its sampling promises
SUSTAINED_SHARE = 0.95  # change, trend: P(a reading now > a reading then) must reach 0.95 (or fall to 0.05)
MAD_TO_SIGMA = 1.4826
TAIL_QUANTILE = 0.95  # a scale that also sees the tail: Q95(|deviation|) / 1.96 is sigma for Gaussian residuals
TAIL_Z = NormalDist().inv_cdf(0.5 + TAIL_QUANTILE / 2)
MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation → sigma (Gaussian)
FALSE_ALARMS_PER_MONTH = 0.5  # expected; Poisson: P(2 or more in a month) = 9%, so "at most about one"
Z_CONTINUE = math.log(1 / 0.05) / math.sqrt(2)  # an episode lasts while p < 0.05 (Laplace) on the same side
MIN_ALARM_Z = 3.0  # whatever the window count, an episode clears the classic three robust sigmas
RECENT_WINDOWS = (6, 24)  # the recent baseline: about a day of windows, at least 6, at most 24
SEASON_CYCLES = {"daily": 7, "weekly": 4}  # earlier days (weeks) whose same window makes the seasonal baseline
MIN_CYCLES = 3
SCALE_WINDOWS = (24, 336)  # residual history for the robust spread: about a week of windows
MIN_HISTORY = 8  # residuals (and at least a day of them) before anything is judged: too little history is silence
TREND_WINDOWS, TREND_TAU, TREND_MAX_STEP_SHARE = 6, 0.8, 0.5
SUSTAIN_POINTS = 3  # threshold breach: readings in a row
LONE_READING_WINDOW_SHARE = 10  # a window of this many readings or more is never unusual through one of them
REEMIT = DAY  # a latest-window run also re-says episodes closed this recently (a skipped tick still closes them)

Baseline = Literal["recent", "daily", "weekly"]

_AGG_VERB = {"mean": "averaged", "median": "had a median of", "sum": "totalled", "min": "had a low of",
             "max": "peaked at", "last": "ended at"}
_AGG_NOUN = {"mean": "average", "median": "median", "sum": "total", "min": "low", "max": "peak",
             "last": "last reading"}


def alarm_z(window: timedelta) -> float:
    """The |z| that opens an episode: Bonferroni over the windows checked in a month, under Laplace tails."""
    per_month = max(1.0, MONTH / window)
    return max(MIN_ALARM_Z, laplace_z(FALSE_ALARMS_PER_MONTH / per_month))


def laplace_z(p: float) -> float:
    """The |z| a Laplace residual (exponential tails, standard deviation 1) exceeds with probability ``p``:
    P(|X| > z) = exp(-z·√2)."""
    return math.log(1 / p) / math.sqrt(2)


@dataclass(frozen=True)
class Fact:
    """One sentence about one series, with everything behind it in ``metadata``. Episode facts speak for
    consecutive windows: ``window_start``/``window_end`` name the one they were last checked on."""

    id: str
    type: str
    text: str
    source: str  # ``kpi/{series}/{onset}``: the unit a re-run replaces (``.../stale`` for staleness)
    window_start: str
    window_end: str
    metadata: dict[str, Any]

    @property
    def episode_start(self) -> str | None:
        return self.metadata.get("episode_start")

    @property
    def episode_end(self) -> str | None:
        return self.metadata.get("episode_end")

    def to_record(self) -> Record:
        return Record(text=self.text, source=self.source, type="kpi", metadata=self.metadata, id=self.id,
                      chunk_index=FACT_TYPES.index(self.type))

    def to_json(self) -> dict[str, Any]:
        """The CLI's line: type, window, episode, text and the numbers."""
        keep = ("metric", "series", "unit", "assessment", "episode_start", "episode_end", "episode", "numbers",
                "points", "severity", "baseline", "window_complete", "method")
        return {"id": self.id, "type": self.type, "window_start": self.window_start,
                "window_end": self.window_end, "text": self.text,
                **{k: self.metadata[k] for k in keep if k in self.metadata}}


def fact_id(tenant: str, series_key: str, fact_type: str, onset: str) -> str:
    """Deterministic: the same fact (an episode, or a window's change) has the same id however often it is
    re-judged, so a re-run or the next hour's run updates it in place."""
    key = "\x1f".join([tenant, series_key, fact_type, onset])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def fact_source(series_key: str, onset_us: int | None) -> str:
    return f"kpi/{series_key}/" + ("stale" if onset_us is None else iso(onset_us))


@dataclass
class SeriesReport:
    """What the worker saw in one series: its windows, the ones it judged, and what it said."""

    series: Series
    spec: MetricSpec
    window: timedelta
    lag: int  # comparison lag (windows) of the latest judged window
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
    """Facts of the latest complete window (or, with ``history``, one per episode and descriptive fact
    over every complete window that starts at ``since`` or later, each window judged only on what came
    before it). ``as_of`` is the check time: readings after it are ignored, and a series with no reading
    in the clock's latest complete window gets a ``stale_data`` fact."""
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
    if starts.size == 0:
        return SeriesReport(series, spec, window, lag, expected, required, empty, empty, np.zeros(0))
    bounds = np.searchsorted(ts, np.append(starts, starts[-1:] + width))
    counts = np.diff(bounds)
    values = np.array([_aggregate(vals[bounds[i]:bounds[i + 1]], spec.aggregation) if counts[i] >= required
                       else np.nan for i in range(starts.size)])
    report = SeriesReport(series, spec, window, lag, expected, required, starts, counts, values)
    judge = _Judge(report, tenant, ts, vals, bounds)
    said = judge.run()
    first_judged = int(np.searchsorted(starts, from_datetime(since))) if since is not None else 0
    latest = starts.size - 1
    if history:
        report.judged = [int(s) for s in starts[first_judged:]]
        keep = [fact for checked, fact in said if checked >= first_judged]
    else:
        report.judged = [int(starts[latest])]
        recent = latest - max(1, REEMIT // window)
        keep = [fact for checked, fact in said
                if checked == latest or (fact.type in EPISODE_TYPES and checked > recent and checked >= first_judged)]
    report.lag = judge.lag_at(latest)
    report.facts = sorted(keep, key=lambda f: (f.window_start, FACT_TYPES.index(f.type)))
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


def robust_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, sigma): a location and a scale that a few wild values do not move, but that frequent ones do.

    The scale is the larger of 1.4826 × MAD and the 95th percentile of the absolute deviations over 1.96;
    both are the standard deviation for Gaussian residuals. The second grows when more than 5% of the
    history is wild, so spikes that come every day are the series' normal behaviour, not news. Where both
    are 0 (most readings identical, as in a square wave) the mean absolute deviation × 1.2533 stands in."""
    centre = float(np.median(values))
    deviations = np.abs(values - centre)
    sigma = max(MAD_TO_SIGMA * float(np.median(deviations)), float(np.quantile(deviations, TAIL_QUANTILE)) / TAIL_Z)
    if sigma == 0:
        sigma = MEAN_AD_TO_SIGMA * float(np.mean(deviations))
    return centre, sigma


@dataclass
class _Verdict:
    """How one window compares with its baseline."""

    baseline: Baseline
    lag: int  # windows back of the comparable window (1 for the recent baseline)
    expected: float
    residual: float  # value - expected - the usual residual
    sigma: float
    half_width: float  # the alarm band's half width
    floor: float  # min_change_pct of the expected value: smaller moves are never news
    history: int  # residuals behind sigma
    baseline_windows: int
    spreads: dict[str, float]

    @property
    def z(self) -> float:
        if self.sigma > 0:
            return self.residual / self.sigma
        return 0.0 if self.residual == 0 else math.copysign(math.inf, self.residual)

    def alarm(self) -> int:
        return int(np.sign(self.residual)) if abs(self.residual) > self.half_width else 0

    def continues(self, sign: int) -> bool:
        return np.sign(self.residual) == sign and abs(self.residual) > max(Z_CONTINUE * self.sigma, self.floor / 2)


@dataclass
class _Episode:
    kind: str
    sign: int  # +1 above, -1 below (missing data: 0)
    onset: int  # window index
    checked: int
    peak: int
    windows: int = 1
    closed_at: int | None = None  # index of the window that ended it
    verdict: _Verdict | None = None  # at onset
    last: _Verdict | None = None
    info: dict[str, Any] = field(default_factory=dict)


class _Judge:
    """One pass over the windows, oldest first; each window judged only on the ones before it."""

    def __init__(self, report: SeriesReport, tenant: str, ts: np.ndarray, vals: np.ndarray,
                 bounds: np.ndarray) -> None:
        self.r, self.tenant, self.ts, self.vals, self.bounds = report, tenant, ts, vals, bounds
        self.spec, self.series = report.spec, report.series
        self.unit = report.spec.unit or report.series.unit
        self.label = report.spec.label + (
            " (" + ", ".join(f"{k}={v}" for k, v in report.series.dimensions) + ")"
            if report.series.dimensions else "")
        self.ok = ~np.isnan(report.values)
        self.n = report.values.size
        self.z_alarm = alarm_z(report.window)
        per_day = max(1, DAY // report.window)
        self.recent_n = min(max(per_day, RECENT_WINDOWS[0]), RECENT_WINDOWS[1])
        self.scale_n = min(max(WEEK // report.window, SCALE_WINDOWS[0]), SCALE_WINDOWS[1])
        self.rate_limit = max(1, DAY // report.window)  # windows between two change (trend) facts
        self.min_history = max(MIN_HISTORY, self.recent_n)
        self.candidates = self._baselines()
        self.warm_up = 0
        if "daily" in self.candidates:  # the first window the daily baseline can judge
            lag, expected, _ = self.candidates["daily"]
            finite = np.flatnonzero(~np.isnan(expected))
            self.warm_up = int(finite[0]) + self.min_history if finite.size else self.n
        self.verdicts: list[_Verdict | None] = [None] * self.n
        self.unusual = np.zeros(self.n, dtype=bool)  # windows inside an outside_band episode

    # ---- baselines -------------------------------------------------------------------------------

    def _baselines(self) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
        """name → (lag, expected value per window, windows behind it); NaN where there is too little history."""
        v, ok, n = self.r.values, self.ok, self.n
        wanted = {"none": ["recent"], "auto": ["recent", "daily", "weekly"], "daily": ["daily"],
                  "weekly": ["weekly"]}[self.spec.seasonality]
        found: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        if "recent" in wanted:
            found["recent"] = (1, *self._recent(v))
        for name, period in (("daily", DAY), ("weekly", WEEK)):
            if name not in wanted or self.r.window >= period or period % self.r.window:
                continue
            lag = period // self.r.window
            seasonal, used = np.full(n, np.nan), np.zeros(n, dtype=int)
            for i in range(n):
                idx = [i - lag * k for k in range(1, SEASON_CYCLES[name] + 1) if i - lag * k >= 0]
                idx = [j for j in idx if ok[j]]
                if len(idx) >= MIN_CYCLES:
                    seasonal[i], used[i] = float(np.median(v[idx])), len(idx)
            offset, _ = self._recent(v - seasonal)  # the level of the latest day against the seasonal profile
            found[name] = (lag, seasonal + offset, used)
        if not found:  # a forced season the window cannot follow (daily windows, daily seasonality)
            found["recent"] = (1, *self._recent(v))
        return found

    def _recent(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, used = np.full(self.n, np.nan), np.zeros(self.n, dtype=int)
        for i in range(self.n):
            past = v[max(0, i - self.recent_n):i]
            past = past[~np.isnan(past)]
            if past.size >= max(3, self.recent_n // 2):
                out[i], used[i] = float(np.median(past)), past.size
        return out, used

    def verdict(self, i: int) -> _Verdict | None:
        """The window against the baseline whose recent residuals spread least (ties: the recent level).
        Sub-daily windows wait until a daily rhythm could be told from an anomaly (``warm_up``)."""
        if i < self.warm_up:
            return None
        best: _Verdict | None = None
        spreads: dict[str, float] = {}
        lo = max(0, i - self.scale_n)
        for name, (lag, expected, used) in self.candidates.items():
            if np.isnan(expected[i]):
                continue
            past = self.r.values[lo:i] - expected[lo:i]
            past = past[~np.isnan(past)]
            if past.size < self.min_history:
                continue
            centre, sigma = robust_spread(past)
            spreads[name] = sigma
            if best is not None and sigma >= best.sigma:
                continue
            floor = self.spec.min_change_pct / 100.0 * abs(expected[i] + centre)
            best = _Verdict(name, lag, float(expected[i] + centre), float(self.r.values[i] - expected[i] - centre),
                            sigma, max(self.z_alarm * sigma, floor), floor, int(past.size), int(used[i]), {})
        if best is not None:
            best.spreads = spreads
        return best

    def lag_at(self, i: int) -> int:
        verdict = self.verdicts[i] if 0 <= i < self.n else None
        if self.spec.seasonality in ("daily", "weekly"):
            return self.r.lag
        return verdict.lag if verdict else 1

    # ---- the pass --------------------------------------------------------------------------------

    def points(self, i: int) -> np.ndarray:
        return self.vals[self.bounds[i]:self.bounds[i + 1]]

    def run(self) -> list[tuple[int, Fact]]:
        """(index of the window a fact was last checked on, the fact), for every fact of the series."""
        said: list[tuple[int, Fact]] = []
        episodes: list[_Episode] = []
        band: _Episode | None = None
        breach: dict[str, _Episode | None] = {"above": None, "below": None}
        gap: _Episode | None = None
        last_change = last_trend = -10 ** 9
        trend_sign, trend_onset = 0.0, None
        seen_ok = False
        for i in range(self.n):
            if not self.ok[i]:
                if seen_ok and self.r.counts[i] < MIN_COVERAGE * self.r.expected:  # a gap, not just a thin window
                    if gap is None:
                        gap = _Episode("missing_data", 0, i, i, i)
                        episodes.append(gap)
                    else:
                        gap.checked, gap.windows = i, gap.windows + 1
                elif gap is not None:
                    gap.closed_at, gap = i, None
                continue
            seen_ok = True
            if gap is not None:
                gap.closed_at, gap = i, None
            verdict = self.verdicts[i] = self.verdict(i)
            was_open = band is not None
            if verdict is not None:
                if band is None:
                    sign = verdict.alarm()
                    if sign and self.carried_by_one_reading(i, verdict, sign):
                        sign = 0
                    if sign:
                        band = _Episode("outside_band", sign, i, i, i, verdict=verdict, last=verdict)
                        episodes.append(band)
                        self.unusual[i] = True
                elif verdict.continues(band.sign):
                    band.checked, band.windows, band.last = i, band.windows + 1, verdict
                    if band.sign * (self.r.values[i] - self.r.values[band.peak]) > 0:
                        band.peak = i
                    self.unusual[i] = True
                else:
                    band.closed_at, band.last, band = i, verdict, None
            for side in ("above", "below"):
                flagged, episode = self.breach(i, side), breach[side]
                if flagged and episode is None:
                    breach[side] = _Episode("threshold_breach", 1 if side == "above" else -1, i, i, i, info=flagged)
                    episodes.append(breach[side])
                elif flagged and episode is not None:
                    worse = episode.sign * (flagged["worst"] - episode.info["worst"]) > 0
                    episode.info = {"side": side, "threshold": flagged["threshold"],
                                    "readings": episode.info["readings"] + flagged["readings"],
                                    "of": episode.info["of"] + flagged["of"],
                                    "run": max(episode.info["run"], flagged["run"]),
                                    "worst": flagged["worst"] if worse else episode.info["worst"]}
                    episode.checked, episode.windows = i, episode.windows + 1
                    episode.peak = i if worse else episode.peak
                elif episode is not None:
                    episode.closed_at, breach[side] = i, None
            quiet = not was_open or (band is not None and band.onset == i)
            if quiet and i - last_change >= self.rate_limit:
                fact = self.change(i)
                if fact:
                    said.append((i, fact))
                    last_change = i
            fact = self.trend(i, trend_onset if i - last_trend < self.rate_limit else None)
            if fact and i - last_trend < self.rate_limit:
                if fact.metadata["numbers"]["absolute_change"] * trend_sign > 0:  # the same trend, still going:
                    said = [(c, f) for c, f in said if f.id != fact.id]  # the newer one supersedes the older
                    said.append((i, fact))
                    last_trend = i
            elif fact:
                said.append((i, fact))
                last_trend, trend_sign = i, np.sign(fact.metadata["numbers"]["absolute_change"])
                trend_onset = from_datetime(datetime.fromisoformat(fact.window_start))
        said += [(e.checked if e.closed_at is None else e.closed_at, self.episode_fact(e)) for e in episodes]
        return said

    # ---- per-window checks -----------------------------------------------------------------------

    def carried_by_one_reading(self, i: int, verdict: _Verdict, sign: int) -> bool:
        """Whether the window is beyond the band only because of its single most extreme reading: a lone
        spike opens no episode (where one reading is a small part of the window: hourly readings in a
        6-hour window are not blips)."""
        now = self.points(i)
        if now.size < 2 or self.r.expected < LONE_READING_WINDOW_SHARE:
            return False  # a reading that stands for a large part of the window is not a blip
        drop = int(np.argmax(now) if sign > 0 else np.argmin(now))
        without = _aggregate(np.delete(now, drop), self.spec.aggregation)
        return sign * (without - verdict.expected) <= verdict.half_width

    def breach(self, i: int, side: str) -> dict[str, Any] | None:
        limit = self.spec.above if side == "above" else self.spec.below
        if limit is None:
            return None
        now = self.points(i)
        beyond = now > limit if side == "above" else now < limit
        run = longest_run(beyond)
        if run < SUSTAIN_POINTS:
            return None
        worst = float(now.max() if side == "above" else now.min())
        return {"side": side, "threshold": float(limit), "readings": int(beyond.sum()), "of": int(now.size),
                "run": run, "worst": worst}

    def usual_variation(self, i: int, lag: int) -> tuple[float, float, int] | None:
        """(median, robust sigma, count) of the differences between comparable windows before ``i``, outside
        episodes: what a change must beat to be news."""
        idx = np.arange(max(lag, i - self.scale_n), i)
        if idx.size == 0:
            return None
        diffs = self.r.values[idx] - self.r.values[idx - lag]
        keep = ~np.isnan(diffs)
        if keep.sum() < self.min_history:
            return None
        centre, sigma = robust_spread(diffs[keep])
        return centre, sigma, int(keep.sum())

    def change(self, i: int) -> Fact | None:
        if self.verdicts[i] is None:
            return None  # too little history to say what is usual
        lag = self.lag_at(i)
        j = i - lag
        if j < 0 or not self.ok[j] or self.unusual[j]:
            return None  # against an unusual window, the change is that episode's end, which its fact says
        before, after = float(self.r.values[j]), float(self.r.values[i])
        pct = percent_change(before, after)
        rising = after > before
        share = share_greater(self.points(i), self.points(j))
        sustained = share >= SUSTAINED_SHARE if rising else share <= 1 - SUSTAINED_SHARE
        if after == before or not sustained or (pct is not None and abs(pct) < self.spec.min_change_pct):
            return None
        usual = self.usual_variation(i, lag)
        if usual is None:
            return None  # too little history to know what is usual
        centre, sigma, count = usual
        z = (after - before - centre) / sigma if sigma > 0 else math.copysign(math.inf, after - before - centre)
        if abs(z) <= self.z_alarm:
            return None
        verb = "rose" if rising else "fell"
        amount = self._amount(before, after, pct)
        text = (f"{self.label} {verb}{amount} {self.period(i)} compared with "
                f"{comparison_phrase(self.r.window, lag)}, from {self.value(before)} to "
                f"{self.value(after)}{self.assessment_clause(rising)}.")
        numbers = {"from": before, "to": after, "absolute_change": after - before, "percent_change": pct}
        points = {"current": int(self.r.counts[i]), "previous": int(self.r.counts[j])}
        method = {"aggregation": self.spec.aggregation, "compared_with": iso(int(self.r.starts_us[j])),
                  "share_of_readings_beyond": share, "min_change_pct": self.spec.min_change_pct,
                  "sustained_share": SUSTAINED_SHARE, "comparison_lag_windows": lag}
        severity = self.severity(z, count, "differences between comparable windows")
        return self.fact("change", i, int(self.r.starts_us[i]), text, numbers, points, method, rising,
                         severity=severity)

    def trend(self, i: int, onset_us: int | None = None) -> Fact | None:
        """Six comparable windows moving one way; ``onset_us`` names the trend this one continues."""
        lag = self.lag_at(i)
        chain = [i - lag * m for m in range(TREND_WINDOWS - 1, -1, -1)]
        verdict = self.verdicts[i]
        if chain[0] < 0 or verdict is None or not all(self.ok[j] for j in chain):
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
                or abs(total) <= MIN_ALARM_Z * verdict.sigma
                or (share < SUSTAINED_SHARE if rising else share > 1 - SUSTAINED_SHARE)):
            return None
        start = int(self.r.starts_us[chain[0]])
        if lag == 1:
            span = f"over the {windows_noun(self.r.window, TREND_WINDOWS)} ending {self._end_stamp(i)}"
        else:
            season = "days" if self.r.window * lag == DAY else "weeks"
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
                  "share_of_readings_beyond": share, "comparison_lag_windows": lag}
        severity = self.severity(total / verdict.sigma if verdict.sigma else math.inf, verdict.history,
                                 "residuals of the baseline")
        return self.fact("trend", i, start if onset_us is None else onset_us, text, numbers, points, method,
                         rising, severity=severity, start_us=start)

    # ---- episodes --------------------------------------------------------------------------------

    def episode_fact(self, e: _Episode) -> Fact:
        return {"outside_band": self.band_fact, "threshold_breach": self.breach_fact,
                "missing_data": self.gap_fact}[e.kind](e)

    def _span(self, e: _Episode) -> tuple[int, int | None, str]:
        """(onset µs, end µs or None while open, duration words)."""
        width = to_us(self.r.window)
        onset = int(self.r.starts_us[e.onset])
        end = int(self.r.starts_us[e.checked]) + width
        windows = e.checked - e.onset + 1
        return onset, (end if e.closed_at is not None else None), duration_phrase(windows * self.r.window)

    def band_fact(self, e: _Episode) -> Fact:
        first, last = e.verdict, e.last
        assert first is not None and last is not None
        onset, end, duration = self._span(e)
        onset = self.first_reading_beyond(e.onset, first, e.sign)
        rising = e.sign > 0
        high, side = ("high", "above") if rising else ("low", "below")
        noun = _AGG_NOUN[self.spec.aggregation]
        band_low, band_high = first.expected - first.half_width, first.expected + first.half_width
        before = self.vals[:self.bounds[e.onset]]
        if before.size and before.min() >= 0:
            band_low = max(band_low, 0.0)  # a range below zero is not one a count or a latency can be in
        usual = self.range(band_low, band_high)
        basis = self.baseline_phrase(first)
        peak_value = float(self.r.values[e.peak])
        peak_end = int(self.r.starts_us[e.peak]) + to_us(self.r.window)
        shown = e.closed_at if e.closed_at is not None else e.checked
        now = float(self.r.values[shown]) if self.ok[shown] else float(self.r.values[e.checked])
        level_shift = bool(e.closed_at is not None and e.sign * (now - first.expected) > first.half_width)
        assess = self.assessment_clause(rising)
        if level_shift:
            pct = percent_change(first.expected, now)
            pct_text = f" ({pct:+.1f}%)" if pct is not None else ""
            text = (f"{self.label} moved to a new level from {stamp(onset)}: its {noun} was {self.value(now)} "
                    f"{self.period(shown)}, against a usual range of {usual} before{pct_text} ({basis}); that "
                    f"level is now the baseline{assess}.")
        elif end is None and e.windows == 1:
            text = (f"{self.label} was unusually {high} {self.period(e.checked)}: its {noun} of "
                    f"{self.value(peak_value)} was {side} the usual range of {usual} ({basis}){assess}.")
        elif end is None:
            text = (f"{self.label} has been unusually {high} since {stamp(onset)}: its {noun} was "
                    f"{self.value(self.r.values[e.checked])} {self.period(e.checked)}, against a usual range of "
                    f"{usual} ({basis}), peaking at {self.value(peak_value)} in the {window_noun(self.r.window)} "
                    f"ending {stamp(peak_end)}{assess}.")
        else:
            text = (f"{self.label} was unusually {high} from {stamp(onset)} to {stamp(end)} ({duration}), "
                    f"peaking at {self.value(peak_value)} in the {window_noun(self.r.window)} ending "
                    f"{stamp(peak_end)}, against a usual range of {usual} ({basis}){assess}.")
        peak_verdict = self.verdicts[e.peak] or first
        numbers = {"value": now, "peak": peak_value, "baseline": first.expected,
                   "band_low": band_low, "band_high": band_high}
        if level_shift:
            numbers["percent_change"] = percent_change(first.expected, now)
        episode = {"start": iso(onset), "end": iso(end) if end is not None else None, "peak": peak_value,
                   "peak_at": iso(peak_end), "windows": e.windows, "duration": duration if end else None,
                   "level_shift": level_shift, "record": self.is_record(e)}
        severity = self.severity(peak_verdict.z, peak_verdict.history, "residuals of the baseline")
        points = {"current": int(self.r.counts[shown]), "baseline_windows": first.baseline_windows,
                  "residual_history": first.history}
        method = {"aggregation": self.spec.aggregation,
                  "band": "expected ± max(z_alarm × 1.4826 × MAD of the residuals, min_change_pct)"}
        return self.fact("outside_band", shown, int(self.r.starts_us[e.onset]), text, numbers, points, method,
                         rising, severity=severity, episode=episode, baseline=self.baseline_evidence(first, e.onset))

    def first_reading_beyond(self, i: int, verdict: _Verdict, sign: int) -> int:
        """When an excursion began: the first reading of its first window beyond the band (else the window's
        start). The fact's id and source keep the window's start, so a re-run finds the same fact."""
        now = self.points(i)
        beyond = np.flatnonzero(sign * (now - verdict.expected) > verdict.half_width)
        return int(self.ts[self.bounds[i] + beyond[0]]) if beyond.size else int(self.r.starts_us[i])

    def breach_fact(self, e: _Episode) -> Fact:
        onset, end, duration = self._span(e)
        info = e.info
        side = info["side"]
        reach = "reaching" if side == "above" else "falling to"
        limit = self.value(info["threshold"])
        if e.windows == 1:
            text = (f"{self.label} was {side} its {limit} threshold in {info['readings']} of {info['of']} readings "
                    f"{self.period(e.onset)}, {reach} {self.value(info['worst'])}.")
        elif end is None:
            text = (f"{self.label} has been {side} its {limit} threshold since {stamp(onset)}: {info['readings']} "
                    f"of {info['of']} readings, {reach} {self.value(info['worst'])}.")
        else:
            text = (f"{self.label} was {side} its {limit} threshold from {stamp(onset)} to {stamp(end)} "
                    f"({duration}): {info['readings']} of {info['of']} readings, {reach} "
                    f"{self.value(info['worst'])}.")
        numbers = {"threshold": info["threshold"], "readings_beyond": info["readings"], "longest_run": info["run"],
                   "worst": info["worst"]}
        episode = {"start": iso(onset), "end": iso(end) if end is not None else None, "peak": info["worst"],
                   "peak_at": iso(int(self.r.starts_us[e.peak]) + to_us(self.r.window)), "windows": e.windows,
                   "duration": duration if end else None}
        method = {"side": side, "sustain_readings": SUSTAIN_POINTS}
        shown = e.closed_at if e.closed_at is not None else e.checked
        return self.fact("threshold_breach", shown, onset, text, numbers, {"current": info["of"]}, method,
                         side == "above", assessment="worse", episode=episode)

    def gap_fact(self, e: _Episode) -> Fact:
        onset, end, duration = self._span(e)
        got = int(self.r.counts[e.onset:e.checked + 1].sum())
        expected = self.r.expected * (e.checked - e.onset + 1)
        if e.windows == 1 and e.checked == e.onset:
            n = got
            if n == 0:
                text = f"No readings of {self.label} were recorded {self.period(e.onset)}; {expected} were expected."
            else:
                text = (f"Only {n} of the {expected} expected readings of {self.label} were recorded "
                        f"{self.period(e.onset)}, too few to judge the {window_noun(self.r.window)}.")
        elif end is None:
            text = (f"Too few readings of {self.label} have been recorded since {stamp(onset)}: {got} of the "
                    f"{expected} expected in {duration}.")
        else:
            text = (f"Too few readings of {self.label} were recorded from {stamp(onset)} to {stamp(end)}: {got} "
                    f"of the {expected} expected in {duration}.")
        numbers = {"readings": got, "expected": expected, "required": self.r.required * (e.checked - e.onset + 1)}
        episode = {"start": iso(onset), "end": iso(end) if end is not None else None, "windows": e.windows,
                   "duration": duration if end else None}
        method = {"min_points": self.spec.min_points, "min_coverage": MIN_COVERAGE}
        shown = e.closed_at if e.closed_at is not None else e.checked
        if e.windows == 1 and e.checked == e.onset:
            numbers = {"readings": got, "expected": self.r.expected, "required": self.r.required}
        return self.fact("missing_data", shown, onset, text, numbers, {"current": got}, method, None,
                         assessment="neutral", episode=episode)

    def is_record(self, e: _Episode) -> bool:
        """Whether the episode's peak is beyond every earlier window of at least three days of history."""
        past = self.r.values[:e.onset]
        past = past[~np.isnan(past)]
        if past.size == 0 or (e.onset * self.r.window) < 3 * DAY:
            return False
        peak = self.r.values[e.peak]
        return bool(peak > past.max() if e.sign > 0 else peak < past.min())

    def baseline_phrase(self, v: _Verdict) -> str:
        if v.baseline == "recent":
            return f"from the previous {windows_noun(self.r.window, v.baseline_windows)}"
        season = "days" if v.baseline == "daily" else "weeks"
        return (f"from the same {window_noun(self.r.window)} on the previous {v.baseline_windows} {season}, "
                f"at the latest {'day' if season == 'days' else 'week'}'s level")

    def baseline_evidence(self, v: _Verdict, i: int) -> dict[str, Any]:
        lo = max(0, i - self.scale_n)
        return {"kind": v.baseline, "seasonal": v.baseline != "recent",
                "season": {"recent": None, "daily": "1d", "weekly": "1w"}[v.baseline],
                "baseline_windows": v.baseline_windows, "residual_history_windows": v.history,
                "history_from": iso(int(self.r.starts_us[lo])), "expected": v.expected,
                "robust_sigma": v.sigma, "spread_by_baseline": v.spreads}

    def severity(self, z: float, history: int, of: str) -> dict[str, Any]:
        p = math.exp(-abs(z) * math.sqrt(2)) if math.isfinite(z) else 0.0  # two-sided, Laplace tails
        return {"robust_z": z if math.isfinite(z) else None, "p_value": p, "alarm_z": self.z_alarm,
                "continue_z": Z_CONTINUE, "false_alarms_per_month": FALSE_ALARMS_PER_MONTH, "scale_of": of,
                "history": history}

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
        return [Fact(fact_id(self.tenant, self.series.key, "stale_data", window_start), "stale_data",
                     text, fact_source(self.series.key, None), window_start, window_end, metadata)]

    # ---- words and metadata ----------------------------------------------------------------------

    def fact(self, kind: str, i: int, onset_us: int, text: str, numbers: dict, points: dict, method: dict,
             rising: bool | None, *, start_us: int | None = None, assessment: str | None = None,
             severity: dict | None = None, episode: dict | None = None, baseline: dict | None = None) -> Fact:
        start = iso(start_us if start_us is not None else int(self.r.starts_us[i]))
        end = iso(int(self.r.starts_us[i]) + to_us(self.r.window))
        metadata = self.metadata(kind, start, end, numbers, points, method, assessment or self.assessment(rising))
        metadata["window_complete"] = bool(self.r.counts[i] >= self.r.expected)
        if episode is not None:
            metadata.update(episode_start=episode["start"], episode_end=episode["end"], episode=_rounded(episode))
        if severity is not None:
            metadata["severity"] = _rounded(severity)
        if baseline is not None:
            metadata["baseline"] = _rounded({k: (_rounded(v) if isinstance(v, dict) else v)
                                             for k, v in baseline.items()})
        return Fact(fact_id(self.tenant, self.series.key, kind, iso(onset_us)), kind, text,
                    fact_source(self.series.key, onset_us), start, end, metadata)

    def metadata(self, kind: str, start: str, end: str, numbers: dict, points: dict, method: dict,
                 assessment: str) -> dict[str, Any]:
        method = {"comparison_lag_windows": self.r.lag, **method, "window": window_code(self.r.window),
                  "window_chosen_from_data": self.spec.window is None, "min_points": self.r.required,
                  "seasonality": self.spec.seasonality}
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
        return stamp(int(self.r.starts_us[i]) + to_us(self.r.window))

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
