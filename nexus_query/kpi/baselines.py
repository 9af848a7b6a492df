"""What a window of a series is judged against: the recent level or a daily/weekly seasonal baseline,
chosen by whichever has spread least lately, and the alarm band around it.

The recent level is the median of about a day of windows. A seasonal baseline is the median of the same
window on the previous days (weeks), shifted by the median of the latest day's seasonal residuals, so that
after a level shift the new level becomes the baseline within about half a day. A window's robust z is its
residual over the robust spread of about a week of earlier residuals (see ``stats.robust_spread``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np

from nexus_query.kpi.stats import CALIBRATION, Calibration, alarm_z, robust_spread
from nexus_query.kpi.windows import DAY, WEEK, iso

Baseline = Literal["recent", "daily", "weekly"]

RECENT_WINDOWS = (6, 24)  # the recent baseline: about a day of windows, at least 6, at most 24
SEASON_CYCLES = {"daily": 7, "weekly": 4}  # earlier days (weeks) whose same window makes the seasonal baseline
MIN_CYCLES = 3
SCALE_WINDOWS = (24, 336)  # residual history for the robust spread: about a week of windows
# A window is judged once 12 windows came before it (half a day of hourly data): the recent level needs
# BASELINE_MIN of them, the residuals' spread the other RESIDUALS_MIN. Fewer is silence.
MIN_HISTORY = 12
BASELINE_MIN = 4
RESIDUALS_MIN = MIN_HISTORY - BASELINE_MIN
_WANTED: dict[str, tuple[Baseline, ...]] = {"none": ("recent",), "auto": ("recent", "daily", "weekly"),
                                            "daily": ("daily",), "weekly": ("weekly",)}
_SEASON_CODE: dict[Baseline, str | None] = {"recent": None, "daily": "1d", "weekly": "1w"}


@dataclass(frozen=True)
class Verdict:
    """How one window compares with its baseline: the expected value, the residual and the alarm band."""

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
    continue_z: float

    @property
    def z(self) -> float:
        if self.sigma > 0:
            return self.residual / self.sigma
        return 0.0 if self.residual == 0 else math.copysign(math.inf, self.residual)

    def alarm(self) -> int:
        """+1 above the band, -1 below it, 0 inside."""
        return int(np.sign(self.residual)) if abs(self.residual) > self.half_width else 0

    def continues(self, sign: int) -> bool:
        return bool(np.sign(self.residual) == sign
                    and abs(self.residual) > max(self.continue_z * self.sigma, self.floor / 2))


@dataclass(frozen=True)
class Candidate:
    """One baseline over every window: NaN where there is too little history."""

    lag: int
    expected: np.ndarray
    used: np.ndarray  # windows behind each expected value


@dataclass(frozen=True)
class BaselineEvidence:
    """The baseline a fact was judged against, as its metadata states it."""

    kind: Baseline
    seasonal: bool
    season: str | None
    baseline_windows: int
    residual_history_windows: int
    history_from: str
    expected: float
    robust_sigma: float
    spread_by_baseline: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Baselines:
    """The candidate baselines of one series' windows, and each window's verdict against the best one."""

    def __init__(self, values: np.ndarray, window: timedelta, seasonality: str, min_change_pct: float,
                 calibration: Calibration = CALIBRATION) -> None:
        self.values, self.window, self.seasonality = values, window, seasonality
        self.min_change_pct, self.calibration = min_change_pct, calibration
        self.ok = ~np.isnan(values)
        self.n = values.size
        self.z_alarm = alarm_z(window, calibration)
        per_day = max(1, DAY // window)
        self.recent_n = min(max(per_day, RECENT_WINDOWS[0]), RECENT_WINDOWS[1])
        self.scale_n = min(max(WEEK // window, SCALE_WINDOWS[0]), SCALE_WINDOWS[1])
        self.min_history = RESIDUALS_MIN
        self.candidates = self._candidates()

    def _candidates(self) -> dict[Baseline, Candidate]:
        v, ok, n = self.values, self.ok, self.n
        wanted = _WANTED[self.seasonality]
        found: dict[Baseline, Candidate] = {}
        if "recent" in wanted:
            found["recent"] = Candidate(1, *self._recent(v))
        seasons: tuple[tuple[Literal["daily", "weekly"], timedelta], ...] = (("daily", DAY), ("weekly", WEEK))
        for name, period in seasons:
            if name not in wanted or self.window >= period or period % self.window:
                continue
            lag = period // self.window
            seasonal, used = np.full(n, np.nan), np.zeros(n, dtype=int)
            for i in range(n):
                idx = [i - lag * k for k in range(1, SEASON_CYCLES[name] + 1) if i - lag * k >= 0]
                idx = [j for j in idx if ok[j]]
                if len(idx) >= MIN_CYCLES:
                    seasonal[i], used[i] = float(np.median(v[idx])), len(idx)
            offset, _ = self._recent(v - seasonal)  # the level of the latest day against the seasonal profile
            found[name] = Candidate(lag, seasonal + offset, used)
        if not found:  # a forced season the window cannot follow (daily windows, daily seasonality)
            found["recent"] = Candidate(1, *self._recent(v))
        return found

    def _recent(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, used = np.full(self.n, np.nan), np.zeros(self.n, dtype=int)
        for i in range(self.n):
            past = v[max(0, i - self.recent_n):i]
            past = past[~np.isnan(past)]
            if past.size >= BASELINE_MIN:
                out[i], used[i] = float(np.median(past)), past.size
        return out, used

    def verdict(self, i: int) -> Verdict | None:
        """The window against the baseline whose recent residuals spread least (ties: the recent level).
        From the first day a series is judged on its recent level; a seasonal baseline joins once it has
        ``MIN_CYCLES`` earlier days (weeks) and ``RESIDUALS_MIN`` residuals."""
        best: Verdict | None = None
        spreads: dict[str, float] = {}
        lo = max(0, i - self.scale_n)
        for name, candidate in self.candidates.items():
            expected = candidate.expected
            if np.isnan(expected[i]):
                continue
            past = self.values[lo:i] - expected[lo:i]
            past = past[~np.isnan(past)]
            if past.size < self.min_history:
                continue
            centre, sigma = robust_spread(past)
            spreads[name] = sigma
            if best is not None and sigma >= best.sigma:
                continue
            floor = self.min_change_pct / 100.0 * abs(expected[i] + centre)
            best = Verdict(name, candidate.lag, float(expected[i] + centre),
                           float(self.values[i] - expected[i] - centre), sigma, max(self.z_alarm * sigma, floor),
                           floor, int(past.size), int(candidate.used[i]), {}, self.calibration.continue_z)
        return replace(best, spreads=spreads) if best is not None else None

    def evidence(self, v: Verdict, i: int, starts_us: np.ndarray) -> BaselineEvidence:
        """The baseline of ``v`` (window ``i``'s verdict) for a fact's metadata."""
        lo = max(0, i - self.scale_n)
        return BaselineEvidence(v.baseline, v.baseline != "recent", _SEASON_CODE[v.baseline], v.baseline_windows,
                                v.history, iso(int(starts_us[lo])), v.expected, v.sigma, v.spreads)
