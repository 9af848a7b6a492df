"""The statistics of the KPI fact worker: robust scale, tail quantiles and the small tests behind a fact.

Plain numeric functions and the constants that calibrate them; no wording and no window bookkeeping, so
the numbers a fact rests on can be checked on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import NormalDist
from typing import Any

import numpy as np

from nexus_query.kpi.windows import MONTH

MAD_TO_SIGMA = 1.4826
TAIL_QUANTILE = 0.95  # a scale that also sees the tail: Q95(|deviation|) / 1.96 is sigma for Gaussian residuals
TAIL_Z = NormalDist().inv_cdf(0.5 + TAIL_QUANTILE / 2)
MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation → sigma (Gaussian)
MIN_ALARM_Z = 3.0  # whatever the window count, an episode clears the classic three robust sigmas


@dataclass(frozen=True)
class Calibration:
    """The settings that trade false alarms for missed incidents. They are not tuned here: the defaults are
    what ``bench/kpi_eval.py --folds`` chooses by cross-validation over the folders of the development set
    (chosen on three, scored on the fourth), and the same for every series.

    ``false_alarms_per_month``: the expected false episodes a series-month (the Bonferroni budget behind the
    alarm z); ``continue_p``: an episode lasts while its windows stay this unlikely (Laplace) on the same side;
    ``shift_drift`` and ``shift_threshold``: the CUSUM of robust z's that catches a run of windows each a
    little beyond the baseline (a slow ramp, a step smaller than the band): every window adds its |z| less the
    drift, and the run is an episode once the sum passes the threshold (``math.inf``: no shift episodes);
    ``spread_z``: the robust z of a window's range (its highest reading less its lowest) against the ranges of
    earlier windows that opens a spread episode, an anomaly of variability the level does not show
    (``math.inf``: no spread episodes)."""

    false_alarms_per_month: float = 0.05
    continue_p: float = 0.05
    shift_drift: float = 1.0
    shift_threshold: float = 13.0
    spread_z: float = 9.0

    @property
    def continue_z(self) -> float:
        return math.log(1 / self.continue_p) / math.sqrt(2)


CALIBRATION = Calibration()


_AGGREGATE: dict[str, Callable[[np.ndarray], Any]] = {
    "mean": np.mean, "median": np.median, "sum": np.sum, "min": np.min, "max": np.max, "last": lambda v: v[-1]}


def alarm_z(window: timedelta, calibration: Calibration = CALIBRATION) -> float:
    """The |z| that opens an episode: Bonferroni over the windows checked in a month, under Laplace tails."""
    per_month = max(1.0, MONTH / window)
    return max(MIN_ALARM_Z, laplace_z(calibration.false_alarms_per_month / per_month))


def laplace_z(p: float) -> float:
    """The |z| a Laplace residual (exponential tails, standard deviation 1) exceeds with probability ``p``:
    P(|X| > z) = exp(-z·√2)."""
    return math.log(1 / p) / math.sqrt(2)


@dataclass(frozen=True)
class Severity:
    """How unusual a fact's number is, and the calibration it was judged by (a fact's ``severity``)."""

    robust_z: float | None  # None where the scale is 0 and the move is not
    p_value: float  # two-sided, Laplace tails
    alarm_z: float
    continue_z: float
    false_alarms_per_month: float
    scale_of: str  # what the scale was measured on
    history: int  # values behind the scale

    @classmethod
    def of(cls, z: float, history: int, scale_of: str, alarm: float,
           calibration: Calibration = CALIBRATION) -> Severity:
        p = math.exp(-abs(z) * math.sqrt(2)) if math.isfinite(z) else 0.0
        return cls(z if math.isfinite(z) else None, p, alarm, calibration.continue_z,
                   calibration.false_alarms_per_month, scale_of, history)


def aggregate(values: np.ndarray, how: str) -> float:
    """A window's one value from its readings."""
    return float(_AGGREGATE[how](values))


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
class Cusum:
    """A two-sided CUSUM of robust z's (Page's test): on each side, the sum of what the windows of the current
    run exceed ``drift`` by, back to 0 when the run ends. A run opens a shift only with two windows or more
    beyond the drift: one wild window is the band's to judge."""

    drift: float
    sums: dict[int, float] = field(default_factory=lambda: {1: 0.0, -1: 0.0})
    starts: dict[int, int] = field(default_factory=dict)  # side → the run's first window
    beyond: dict[int, int] = field(default_factory=lambda: {1: 0, -1: 0})  # side → windows past the drift

    def update(self, i: int, z: float) -> None:
        for side in (1, -1):
            step = side * z - self.drift
            total = self.sums[side] + (step if math.isfinite(step) else 0.0)
            if total <= 0:
                self.sums[side], self.beyond[side] = 0.0, 0
                self.starts.pop(side, None)
                continue
            if self.sums[side] == 0:
                self.starts[side] = i
            self.sums[side] = total
            self.beyond[side] += int(step > 0)

    def alarm(self, threshold: float) -> int:
        """+1 for a run up past ``threshold``, -1 for one down, else 0."""
        for side in (1, -1):
            if self.sums[side] > threshold and self.beyond[side] >= 2:
                return side
        return 0

    def reset(self) -> None:
        self.sums, self.beyond = {1: 0.0, -1: 0.0}, {1: 0, -1: 0}
        self.starts.clear()
