"""Episode detection: one pass over a series' windows, oldest first, each judged only on the ones before.

A condition that holds over consecutive windows is one episode (beyond the band, beyond a threshold,
too few readings), said once with its onset, peak and end; a change or a trend is a descriptive fact of
its window, at most one of each a day per series. The numbers come from ``baselines`` and ``stats``,
the sentences from ``wording``, the stored form from ``builder``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nexus_query.kpi.baselines import Baselines, Verdict
from nexus_query.kpi.builder import FactBuilder, FactDraft
from nexus_query.kpi.fact import EpisodeType, Fact
from nexus_query.kpi.report import SeriesReport
from nexus_query.kpi.stats import (
    CALIBRATION,
    MIN_ALARM_Z,
    Calibration,
    Cusum,
    Severity,
    aggregate,
    kendall_tau,
    longest_run,
    percent_change,
    robust_spread,
    share_greater,
)
from nexus_query.kpi.windows import DAY, iso
from nexus_query.kpi.wording import Side, Wording

MIN_COVERAGE = 0.5  # a window needs at least half the readings its sampling promises
SUSTAINED_SHARE = 0.95  # change, trend: P(a reading now > a reading then) must reach 0.95 (or fall to 0.05)
TREND_WINDOWS, TREND_TAU, TREND_MAX_STEP_SHARE = 6, 0.8, 0.5
SUSTAIN_POINTS = 3  # threshold breach: readings in a row
LONE_READING_WINDOW_SHARE = 10  # a window of this many readings or more is never unusual through one of them
SPREAD_MIN_RATIO = 2.0  # a spread episode's window ranges over at least twice the usual range
SPREAD_DAYS, SPREAD_MIN_DAYS = 7, 3  # earlier days whose same window's range is also usual (at least 3)

@dataclass(frozen=True)
class Breach:
    """Readings beyond a threshold: in one window, or summed over an episode's windows."""

    side: Side
    threshold: float
    readings: int  # readings beyond it
    of: int  # readings in all
    run: int  # the longest run of readings in a row beyond it
    worst: float

    def worse_than(self, other: Breach) -> bool:
        return (1 if self.side == "above" else -1) * (self.worst - other.worst) > 0

    def joined(self, later: Breach) -> Breach:
        """This episode's breach extended by a later window's."""
        return Breach(self.side, later.threshold, self.readings + later.readings, self.of + later.of,
                      max(self.run, later.run), later.worst if later.worse_than(self) else self.worst)


@dataclass(frozen=True)
class Spread:
    """A window's range (highest reading less lowest) against the ranges of earlier windows."""

    low: float
    high: float
    usual: float  # the median range of the earlier windows
    z: float
    history: int  # earlier windows behind ``usual``
    daily: float  # the widest range of the same window on earlier days
    days: int  # earlier days behind ``daily``

    @property
    def range(self) -> float:
        return self.high - self.low


@dataclass
class Episode:
    """An open or closed episode, by window index."""

    kind: EpisodeType
    sign: int  # +1 above, -1 below (missing data: 0)
    onset: int
    checked: int
    peak: int
    windows: int = 1
    closed_at: int | None = None  # index of the window that ended it
    verdict: Verdict | None = None  # at onset
    last: Verdict | None = None
    breach: Breach | None = None
    shift: bool = False  # an outside_band episode opened by the CUSUM (a run of windows inside the band)
    spread: Spread | None = None  # an outside_band episode of variability: its onset window's range

    @property
    def shown(self) -> int:
        """The window the fact names: the one that closed the episode, else the latest one in it."""
        return self.closed_at if self.closed_at is not None else self.checked


@dataclass(frozen=True)
class Trend:
    """A trend fact, which way it went, and the start of its first window (a continuing trend keeps it)."""

    fact: Fact
    sign: int  # +1 up, -1 down
    start_us: int


@dataclass
class Findings:
    """What one pass found: descriptive facts by the window they were checked on, and the episodes."""

    facts: list[tuple[int, Fact]] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)


class Judge:
    """One pass over the windows, oldest first; each window judged only on the ones before it."""

    def __init__(self, report: SeriesReport, tenant: str, ts: np.ndarray, vals: np.ndarray,
                 bounds: np.ndarray, calibration: Calibration = CALIBRATION) -> None:
        self.r, self.ts, self.vals, self.bounds = report, ts, vals, bounds
        self.spec = report.spec
        self.words = Wording.of(report.series, report.spec, report.window)
        self.builder = FactBuilder(report, tenant, self.words)
        self.ok = ~np.isnan(report.values)
        self.n = report.values.size
        self.calibration = calibration
        self.baselines = Baselines(report.values, report.window, report.spec.seasonality, report.spec.min_change_pct,
                                   calibration)
        self.z_alarm = self.baselines.z_alarm
        self.rate_limit = max(1, DAY // report.window)  # windows between two change (trend) facts
        self.verdicts: list[Verdict | None] = [None] * self.n
        self.unusual = np.zeros(self.n, dtype=bool)  # windows inside an outside_band episode
        self.cusum = Cusum(calibration.shift_drift)
        self.ranges = np.array([float(np.ptp(self.points(i))) if self.ok[i] else np.nan for i in range(self.n)])
        self.varied = np.zeros(self.n, dtype=bool)  # windows inside a spread episode

    def lag_at(self, i: int) -> int:
        verdict = self.verdicts[i] if 0 <= i < self.n else None
        if self.spec.seasonality in ("daily", "weekly"):
            return self.r.lag
        return verdict.lag if verdict else 1

    def points(self, i: int) -> np.ndarray:
        return self.vals[self.bounds[i]:self.bounds[i + 1]]

    def severity(self, z: float, history: int, of: str) -> Severity:
        return Severity.of(z, history, of, self.z_alarm, self.calibration)

    # ---- the pass --------------------------------------------------------------------------------

    def run(self) -> Findings:
        """Change and trend facts (with the index of the window each was last checked on) and the
        episodes of the series; ``episode_facts`` says the episodes."""
        said: list[tuple[int, Fact]] = []
        episodes: list[Episode] = []
        band: Episode | None = None
        spread: Episode | None = None
        breach: dict[Side, Episode | None] = {"above": None, "below": None}
        gap: Episode | None = None
        last_change = last_trend = -10 ** 9
        trend_sign, trend_onset = 0, None
        seen_ok = False
        for i in range(self.n):
            if not self.ok[i]:
                if seen_ok and self.r.counts[i] < MIN_COVERAGE * self.r.expected:  # a gap, not just a thin window
                    if gap is None:
                        gap = Episode("missing_data", 0, i, i, i)
                        episodes.append(gap)
                    else:
                        gap.checked, gap.windows = i, gap.windows + 1
                elif gap is not None:
                    gap.closed_at, gap = i, None
                continue
            seen_ok = True
            if gap is not None:
                gap.closed_at, gap = i, None
            verdict = self.verdicts[i] = self.baselines.verdict(i)
            was_open = band is not None
            if verdict is not None:
                if band is None:
                    sign = verdict.alarm()
                    blip = bool(sign) and self.carried_by_one_reading(i, verdict, sign)
                    if blip:
                        sign = 0
                    if sign:
                        band = Episode("outside_band", sign, i, i, i, verdict=verdict, last=verdict)
                        episodes.append(band)
                        self.unusual[i] = True
                        self.cusum.reset()
                    elif not blip and self.rhythm_known(verdict):  # a blip feeds no run either
                        band = self.shift(i, verdict)
                        if band is not None:
                            episodes.append(band)
                # a shift run goes on while its windows stay past the drift; a band episode while they continue
                elif (band.sign * verdict.z > self.cusum.drift) if band.shift else verdict.continues(band.sign):
                    band.checked, band.windows, band.last = i, band.windows + 1, verdict
                    if band.sign * (self.r.values[i] - self.r.values[band.peak]) > 0:
                        band.peak = i
                    self.unusual[i] = True
                else:
                    band.closed_at, band.last, band = i, verdict, None
                    self.cusum.reset()
            spread = self.spread_episode(i, spread, band is None)
            if spread is not None and spread.onset == i:
                episodes.append(spread)
            sides: tuple[Side, ...] = ("above", "below")
            for side in sides:
                flagged, episode = self.breach(i, side), breach[side]
                if flagged and episode is None:
                    opened = Episode("threshold_breach", 1 if side == "above" else -1, i, i, i, breach=flagged)
                    breach[side] = opened
                    episodes.append(opened)
                elif flagged and episode is not None and episode.breach is not None:
                    worse = flagged.worse_than(episode.breach)
                    episode.breach = episode.breach.joined(flagged)
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
            found = self.trend(i, trend_onset if i - last_trend < self.rate_limit else None)
            if found and i - last_trend < self.rate_limit:
                if found.sign * trend_sign > 0:  # the same trend, still going:
                    said = [(c, f) for c, f in said if f.id != found.fact.id]  # the newer one supersedes the older
                    said.append((i, found.fact))
                    last_trend = i
            elif found:
                said.append((i, found.fact))
                last_trend, trend_sign, trend_onset = i, found.sign, found.start_us
        return Findings(said, episodes)

    # ---- per-window checks -----------------------------------------------------------------------

    def rhythm_known(self, verdict: Verdict) -> bool:
        """Whether a run of windows can be told from the daily rhythm: the window was also judged against the
        same hour of earlier days, or the series has no daily baseline to wait for. Before that, half a day
        above the recent level is the rhythm, not a shift."""
        return "daily" in verdict.spreads or "daily" not in self.baselines.candidates

    def shift(self, i: int, verdict: Verdict) -> Episode | None:
        """A shift episode when the CUSUM of the windows' z's passes its threshold and the run's average moved
        at least ``min_change_pct`` (its floor) from the average expected: it starts at the run's first window,
        and covers the run's windows with a value."""
        self.cusum.update(i, verdict.z)
        sign = self.cusum.alarm(self.calibration.shift_threshold)
        if not sign:
            return None
        onset = self.cusum.starts[sign]
        run = [j for j in range(onset, i + 1) if self.ok[j] and self.verdicts[j] is not None]
        moved = float(np.mean([self.r.values[j] - v.expected for j in run if (v := self.verdicts[j]) is not None]))
        if sign * moved < float(np.mean([v.floor for j in run if (v := self.verdicts[j]) is not None])):
            return None
        peak = max(run, key=lambda j: sign * self.r.values[j])
        self.unusual[run] = True
        return Episode("outside_band", sign, onset, i, peak, windows=len(run), verdict=self.verdicts[onset],
                       last=verdict, shift=True)

    def spread_at(self, i: int) -> Spread | None:
        """Window ``i``'s range against the ranges of the earlier windows (about a week) and of the same window
        on earlier days (a daily rhythm's busy hours vary more), outside spread episodes; None with too few."""
        lo = max(0, i - self.baselines.scale_n)
        past = self.ranges[lo:i][~self.varied[lo:i]]
        past = past[~np.isnan(past)]
        day = max(1, DAY // self.r.window)
        same = [self.ranges[j] for j in range(i - day, max(-1, i - day * SPREAD_DAYS - 1), -day)
                if not self.varied[j] and not np.isnan(self.ranges[j])]
        if past.size < self.baselines.min_history or len(same) < SPREAD_MIN_DAYS or np.isnan(self.ranges[i]):
            return None
        centre, sigma = robust_spread(past)
        excess = self.ranges[i] - centre
        z = excess / sigma if sigma > 0 else (0.0 if excess == 0 else math.copysign(math.inf, excess))
        now = self.points(i)
        return Spread(float(now.min()), float(now.max()), centre, z, int(past.size), float(np.max(same)),
                      len(same))

    def spread_episode(self, i: int, open_: Episode | None, level_quiet: bool) -> Episode | None:
        """The spread episode open after window ``i``: one opens where the level is quiet and the window's
        range is ``spread_z`` robust sigmas and ``SPREAD_MIN_RATIO`` times above the usual range, and wider than
        the same window's on any earlier day (a busy hour that always varies is not news); it lasts
        while the windows' ranges stay ``continue_z`` sigmas and twice the usual range above it."""
        found = self.spread_at(i)
        if open_ is not None:
            if (found is not None and found.z > self.calibration.continue_z
                    and found.range >= SPREAD_MIN_RATIO * found.usual):
                open_.checked, open_.windows = i, open_.windows + 1
                if self.ranges[i] > self.ranges[open_.peak]:
                    open_.peak = i
                self.varied[i] = True
                return open_
            open_.closed_at = i
            return None
        if (found is None or not level_quiet or found.z <= self.calibration.spread_z
                or found.range < SPREAD_MIN_RATIO * found.usual or found.range <= found.daily
                or self.range_carried_by_one_reading(i, found)):
            return None
        self.varied[i] = True
        return Episode("outside_band", 1, i, i, i, spread=found)

    def range_carried_by_one_reading(self, i: int, found: Spread) -> bool:
        """Whether the window's range is unusual only because of its reading farthest from the window's median:
        a lone spike is not a window that varies (where one reading is a small part of the window, as for
        ``carried_by_one_reading``)."""
        now = self.points(i)
        if now.size < 3 or self.r.expected < LONE_READING_WINDOW_SHARE:
            return False
        rest = np.delete(now, int(np.argmax(np.abs(now - np.median(now)))))
        wide = float(np.ptp(rest))
        sigma = (found.range - found.usual) / found.z if found.z > 0 and math.isfinite(found.z) else 0.0
        z = (wide - found.usual) / sigma if sigma > 0 else (math.inf if wide > found.usual else 0.0)
        return z <= self.calibration.spread_z or wide < SPREAD_MIN_RATIO * found.usual or wide <= found.daily

    def carried_by_one_reading(self, i: int, verdict: Verdict, sign: int) -> bool:
        """Whether the window is beyond the band only because of its single most extreme reading: a lone
        spike opens no episode (where one reading is a small part of the window: hourly readings in a
        6-hour window are not blips)."""
        now = self.points(i)
        if now.size < 2 or self.r.expected < LONE_READING_WINDOW_SHARE:
            return False  # a reading that stands for a large part of the window is not a blip
        drop = int(np.argmax(now) if sign > 0 else np.argmin(now))
        without = aggregate(np.delete(now, drop), self.spec.aggregation)
        return sign * (without - verdict.expected) <= verdict.half_width

    def breach(self, i: int, side: Side) -> Breach | None:
        limit = self.spec.above if side == "above" else self.spec.below
        if limit is None:
            return None
        now = self.points(i)
        beyond = now > limit if side == "above" else now < limit
        run = longest_run(beyond)
        if run < SUSTAIN_POINTS:
            return None
        worst = float(now.max() if side == "above" else now.min())
        return Breach(side, float(limit), int(beyond.sum()), int(now.size), run, worst)

    def usual_variation(self, i: int, lag: int) -> tuple[float, float, int] | None:
        """(median, robust sigma, count) of the differences between comparable windows before ``i``, outside
        episodes: what a change must beat to be news."""
        idx = np.arange(max(lag, i - self.baselines.scale_n), i)
        if idx.size == 0:
            return None
        diffs = self.r.values[idx] - self.r.values[idx - lag]
        keep = ~np.isnan(diffs)
        if keep.sum() < self.baselines.min_history:
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
        text = self.words.change(start_us=self.r.start_us(i), lag=lag, before=before, after=after, pct=pct)
        method = {"aggregation": self.spec.aggregation, "compared_with": iso(self.r.start_us(j)),
                  "share_of_readings_beyond": share, "min_change_pct": self.spec.min_change_pct,
                  "sustained_share": SUSTAINED_SHARE, "comparison_lag_windows": lag}
        return self.builder.build(FactDraft(
            kind="change", checked=i, onset_us=self.r.start_us(i), text=text,
            numbers={"from": before, "to": after, "absolute_change": after - before, "percent_change": pct},
            points={"current": int(self.r.counts[i]), "previous": int(self.r.counts[j])}, method=method,
            assessment=self.words.assessment(rising),
            severity=self.severity(z, count, "differences between comparable windows")))

    def trend(self, i: int, onset_us: int | None = None) -> Trend | None:
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
        start = self.r.start_us(chain[0])
        text = self.words.trend(start_us=self.r.start_us(i), lag=lag, windows=TREND_WINDOWS,
                                first=float(values[0]), last=float(values[-1]), pct=pct)
        method = {"aggregation": self.spec.aggregation, "windows": TREND_WINDOWS, "kendall_tau": tau,
                  "min_tau": TREND_TAU, "largest_step_share": largest_step / abs(total),
                  "share_of_readings_beyond": share, "comparison_lag_windows": lag}
        severity = self.severity(total / verdict.sigma if verdict.sigma else math.inf, verdict.history,
                                 "residuals of the baseline")
        fact = self.builder.build(FactDraft(
            kind="trend", checked=i, onset_us=start if onset_us is None else onset_us, text=text,
            numbers={"from": float(values[0]), "to": float(values[-1]), "absolute_change": total,
                     "percent_change": pct, "window_values": [float(v) for v in values]},
            points={"per_window": [int(self.r.counts[j]) for j in chain]}, method=method,
            assessment=self.words.assessment(rising), start_us=start, severity=severity))
        return Trend(fact, 1 if rising else -1, start)
