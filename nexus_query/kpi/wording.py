"""The KPI facts' sentences: numbers with units, periods and durations, never causes.

Apart from the statistics on purpose: what a fact says can be read (and reworded) here without touching
how it was found, and the numbers behind each sentence stay in the fact's metadata. Rising is called
better or worse by the metric's direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from nexus_query.kpi.baselines import Baseline
from nexus_query.kpi.catalogue import MetricSpec
from nexus_query.kpi.source import Series
from nexus_query.kpi.windows import (
    DAY,
    comparison_phrase,
    period_phrase,
    stamp,
    to_datetime,
    to_us,
    window_noun,
    windows_noun,
)

Assessment = Literal["better", "worse", "neutral"]
Side = Literal["above", "below"]

AGG_NOUN = {"mean": "average", "median": "median", "sum": "total", "min": "low", "max": "peak",
            "last": "last reading"}
_CLAUSE: dict[Assessment, str] = {"better": ", an improvement", "worse": ", a deterioration", "neutral": ""}


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


def series_label(series: Series, spec: MetricSpec) -> str:
    """How sentences name a series: the metric's label and, where it has them, its dimensions."""
    dims = ", ".join(f"{k}={v}" for k, v in series.dimensions)
    return spec.label + (f" ({dims})" if series.dimensions else "")


@dataclass(frozen=True)
class Wording:
    """The sentences of one series' facts; window positions are given by their start (µs)."""

    label: str
    unit: str
    window: timedelta
    direction: str
    aggregation: str

    @classmethod
    def of(cls, series: Series, spec: MetricSpec, window: timedelta) -> Wording:
        return cls(series_label(series, spec), spec.unit or series.unit, window, spec.direction, spec.aggregation)

    # ---- pieces ----------------------------------------------------------------------------------

    def assessment(self, rising: bool | None) -> Assessment:
        if rising is None or self.direction == "neutral":
            return "neutral"
        return "better" if rising == (self.direction == "up_is_good") else "worse"

    def assessment_clause(self, rising: bool) -> str:
        return _CLAUSE[self.assessment(rising)]

    def period(self, start_us: int) -> str:
        return period_phrase(start_us, start_us + to_us(self.window), self.window)

    def end_stamp(self, start_us: int) -> str:
        return stamp(start_us + to_us(self.window))

    def amount(self, before: float, after: float, pct: float | None) -> str:
        if self.unit == "%":
            points = f" {format_number(abs(after - before))} percentage points"
            return points + (f" ({abs(pct):.1f}%)" if pct is not None else "")
        return f" {abs(pct):.1f}%" if pct is not None else ""

    def value(self, v: float) -> str:
        return format_value(float(v), self.unit)

    def range(self, low: float, high: float) -> str:
        return f"{format_number(low)}–{format_value(high, self.unit)}"

    def baseline_phrase(self, kind: Baseline, windows: int) -> str:
        if kind == "recent":
            return f"from the previous {windows_noun(self.window, windows)}"
        season = "days" if kind == "daily" else "weeks"
        return (f"from the same {window_noun(self.window)} on the previous {windows} {season}, "
                f"at the latest {'day' if season == 'days' else 'week'}'s level")

    # ---- sentences -------------------------------------------------------------------------------

    def change(self, *, start_us: int, lag: int, before: float, after: float, pct: float | None) -> str:
        rising = after > before
        verb = "rose" if rising else "fell"
        return (f"{self.label} {verb}{self.amount(before, after, pct)} {self.period(start_us)} compared with "
                f"{comparison_phrase(self.window, lag)}, from {self.value(before)} to "
                f"{self.value(after)}{self.assessment_clause(rising)}.")

    def trend(self, *, start_us: int, lag: int, windows: int, first: float, last: float,
              pct: float | None) -> str:
        """``windows`` comparable windows, the latest starting at ``start_us``, ``lag`` windows apart."""
        rising = last - first > 0
        if lag == 1:
            span = f"over the {windows_noun(self.window, windows)} ending {self.end_stamp(start_us)}"
        else:
            season = "days" if self.window * lag == DAY else "weeks"
            span = (f"{self.period(start_us)} and the same {window_noun(self.window)} on the "
                    f"{windows - 1} previous {season}")
        pct_text = f" ({pct:+.1f}%)" if pct is not None else ""
        return (f"{self.label} trended {'up' if rising else 'down'} {span}, from {self.value(first)} "
                f"to {self.value(last)}{pct_text}{self.assessment_clause(rising)}.")

    def outside_band(self, *, rising: bool, onset_us: int, end_us: int | None, duration: str, windows: int,
                     level_shift: bool, pct: float | None, shown_start_us: int, shown_value: float,
                     checked_start_us: int, checked_value: float, peak_value: float, peak_end_us: int,
                     usual_low: float, usual_high: float, basis: str) -> str:
        """An episode beyond the band: a level shift once closed at a new level, else one window, an open
        episode or a closed one."""
        high, side = ("high", "above") if rising else ("low", "below")
        noun = AGG_NOUN[self.aggregation]
        usual = self.range(usual_low, usual_high)
        assess = self.assessment_clause(rising)
        if level_shift:
            pct_text = f" ({pct:+.1f}%)" if pct is not None else ""
            return (f"{self.label} moved to a new level from {stamp(onset_us)}: its {noun} was "
                    f"{self.value(shown_value)} {self.period(shown_start_us)}, against a usual range of {usual} "
                    f"before{pct_text} ({basis}); that level became the baseline{assess}.")
        if end_us is None and windows == 1:
            return (f"{self.label} was unusually {high} {self.period(checked_start_us)}: its {noun} of "
                    f"{self.value(peak_value)} was {side} the usual range of {usual} ({basis}){assess}.")
        if end_us is None:
            return (f"{self.label} has been unusually {high} since {stamp(onset_us)}: its {noun} was "
                    f"{self.value(checked_value)} {self.period(checked_start_us)}, against a usual range of "
                    f"{usual} ({basis}), peaking at {self.value(peak_value)} in the {window_noun(self.window)} "
                    f"ending {stamp(peak_end_us)}{assess}.")
        return (f"{self.label} was unusually {high} from {stamp(onset_us)} to {stamp(end_us)} ({duration}), "
                f"peaking at {self.value(peak_value)} in the {window_noun(self.window)} ending "
                f"{stamp(peak_end_us)}, against a usual range of {usual} ({basis}){assess}.")

    def shift(self, *, rising: bool, onset_us: int, end_us: int | None, duration: str, windows: int,
              mean: float, expected: float, basis: str) -> str:
        """A run of windows each a little beyond the baseline (the CUSUM's episode), said by its average."""
        side = "above" if rising else "below"
        averaged = (f"over the {windows_noun(self.window, windows)} with readings it was {self.value(mean)} on "
                    f"average, against {self.value(expected)} expected ({basis}){self.assessment_clause(rising)}")
        if end_us is None:
            return f"{self.label} has run {side} its usual level since {stamp(onset_us)}: {averaged}."
        return (f"{self.label} ran {side} its usual level from {stamp(onset_us)} to {stamp(end_us)} ({duration}): "
                f"{averaged}.")

    def spread(self, *, onset_us: int, end_us: int | None, duration: str, windows: int, low: float, high: float,
               peak_start_us: int, usual: float, history: int, daily: float, days: int) -> str:
        """An episode of variability (the CUSUM's and the band's are of the level): the widest window's
        lowest and highest readings against the median range of earlier windows."""
        ranged = (f"its readings ranged from {self.value(low)} to {self.value(high)} "
                  f"{self.period(peak_start_us)}, a range of {self.value(high - low)} against a usual "
                  f"{self.value(usual)} (the median range of the previous {windows_noun(self.window, history)}) "
                  f"and at most {self.value(daily)} in the same {window_noun(self.window)} on the previous {days} days")
        if windows == 1 and end_us is None:
            return f"{self.label} varied far more than usual: {ranged}."
        if end_us is None:
            return f"{self.label} has varied far more than usual since {stamp(onset_us)}: {ranged}."
        return (f"{self.label} varied far more than usual from {stamp(onset_us)} to {stamp(end_us)} ({duration}): "
                f"{ranged}.")

    def threshold_breach(self, *, side: Side, threshold: float, readings: int, of: int, worst: float,
                         onset_us: int, end_us: int | None, duration: str, windows: int) -> str:
        reach = "reaching" if side == "above" else "falling to"
        limit = self.value(threshold)
        if windows == 1:
            return (f"{self.label} was {side} its {limit} threshold in {readings} of {of} readings "
                    f"{self.period(onset_us)}, {reach} {self.value(worst)}.")
        if end_us is None:
            return (f"{self.label} has been {side} its {limit} threshold since {stamp(onset_us)}: {readings} "
                    f"of {of} readings, {reach} {self.value(worst)}.")
        return (f"{self.label} was {side} its {limit} threshold from {stamp(onset_us)} to {stamp(end_us)} "
                f"({duration}): {readings} of {of} readings, {reach} {self.value(worst)}.")

    def missing_data(self, *, got: int, expected: int, single_window: bool, onset_us: int, end_us: int | None,
                     duration: str) -> str:
        if single_window:
            if got == 0:
                return f"No readings of {self.label} were recorded {self.period(onset_us)}; {expected} were expected."
            return (f"Only {got} of the {expected} expected readings of {self.label} were recorded "
                    f"{self.period(onset_us)}, too few to judge the {window_noun(self.window)}.")
        if end_us is None:
            return (f"Too few readings of {self.label} have been recorded since {stamp(onset_us)}: {got} of the "
                    f"{expected} expected in {duration}.")
        return (f"Too few readings of {self.label} were recorded from {stamp(onset_us)} to {stamp(end_us)}: {got} "
                f"of the {expected} expected in {duration}.")

    def stale_data(self, *, last_us: int, silent_windows: int, clock_end_us: int) -> str:
        span = (f"the {window_noun(self.window)}" if silent_windows == 1
                else f"the {windows_noun(self.window, silent_windows)}")
        return (f"The last reading of {self.label} is from {to_datetime(last_us):%Y-%m-%d %H:%M} UTC; none were "
                f"recorded in {span} up to {to_datetime(clock_end_us):%Y-%m-%d %H:%M} UTC.")
