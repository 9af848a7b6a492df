"""The KPI fact worker: typed, exact, few, calibrated so that a quiet series claims nothing, and with one
status per series so that it still answers "how is …?".

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
  probability ``false_alarms_per_month / windows per month`` (Bonferroni over the windows checked in a
  month), under Laplace tails: real KPI residuals have exponential, not Gaussian, tails, and P(|X| > z) =
  exp(-z·√2) says so. The budget and how long an episode lasts (``Calibration`` in ``stats``) are chosen
  by cross-validation over the development set's folders (``bench/kpi_eval.py --folds``): 0.05 nominal
  false episodes a series-month (z 6.8 for hourly windows, 5.5 for 6-hour ones, at least 3); an episode
  continues while |z| stays above 2.1 (p < 0.05) on the same side, and never opens for a move smaller
  than ``min_change_pct`` of the baseline. A window is judged once ``MIN_HISTORY`` (12) windows came
  before it, on the recent level; seasonal baselines join once the data holds their days.
* **Episodes, not windows.** A condition that holds over consecutive windows is one fact whose id is
  (tenant, series, type, onset): updated while it lasts, closed when it ends, ``episode_start``,
  ``episode_end``, its peak and duration in the metadata. ``window_start``/``window_end`` name the window
  it was last checked on.

==================  ==========================================================================
``outside_band``    an episode of windows beyond the baseline's band (a level shift is one too: it
                    closes once the new level has become the baseline, and says so), or a run of windows
                    each a little beyond it whose CUSUM of z passes the calibration's shift threshold, or
                    (the level quiet) windows whose range of readings is far wider than usual (spread)
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
``stale_data``      (with a check time) no reading in the latest complete window of the clock; an episode
                    still open then closes at the last reading ("ended with the data at …")
``status``          one per series, always (``status``): the latest window, its changes, its usual range
==================  ==========================================================================

Sentences state numbers with units, never causes; rising is called better or worse by the metric's
direction. ``new_extreme`` stays a known type (older spaces hold such facts); an episode's metadata now
says whether its peak was a record.

This module cuts a series into windows and keeps what a run speaks for; the parts live apart, one concern
each: ``stats`` (robust scale, tail quantiles, the small tests), ``baselines`` (what a window is judged
against), ``episodes`` (the pass that finds episodes, changes and trends), ``episode_facts`` (what an episode
says), ``wording`` (the sentences), ``fact`` and ``builder`` (the stored fact, its id, source and metadata).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

from nexus_query.kpi.catalogue import Catalogue, MetricSpec
from nexus_query.kpi.episode_facts import EpisodeFacts, stopped_at
from nexus_query.kpi.episodes import MIN_COVERAGE, Judge
from nexus_query.kpi.fact import EPISODE_TYPES, FACT_TYPES, Fact
from nexus_query.kpi.report import SeriesReport
from nexus_query.kpi.source import Series
from nexus_query.kpi.stats import CALIBRATION, Calibration, aggregate
from nexus_query.kpi.status import status_fact
from nexus_query.kpi.windows import (
    DAY,
    choose_window,
    from_datetime,
    season_lag,
    to_us,
    typical_spacing_us,
    window_of,
    window_start_us,
)

REEMIT = DAY  # a latest-window run also re-says episodes closed this recently (a skipped tick still closes them)


def analyse_series(series: Series, spec: MetricSpec, *, tenant: str = "local", history: bool = False,
                   as_of: datetime | None = None, since: datetime | None = None,
                   calibration: Calibration = CALIBRATION) -> SeriesReport:
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
    values = np.array([aggregate(vals[bounds[i]:bounds[i + 1]], spec.aggregation) if counts[i] >= required
                       else np.nan for i in range(starts.size)])
    report = SeriesReport(series, spec, window, lag, expected, required, starts, counts, values,
                          last_reading_us=int(ts[-1]))
    judge = Judge(report, tenant, ts, vals, bounds, calibration)
    found = judge.run()
    say = EpisodeFacts(judge, stopped_at(judge, as_of_us) if as_of_us is not None else None)
    said = found.facts + [(e.shown, say.fact(e)) for e in found.episodes]
    first_judged = int(np.searchsorted(starts, from_datetime(since))) if since is not None else 0
    latest = starts.size - 1
    if history:
        report.judged = [int(s) for s in starts[first_judged:]]
        kept = [fact for checked, fact in said if checked >= first_judged]
    else:
        report.judged = [int(starts[latest])]
        recent = latest - max(1, REEMIT // window)
        kept = [fact for checked, fact in said
                if checked == latest or (fact.type in EPISODE_TYPES and checked > recent and checked >= first_judged)]
    report.lag = judge.lag_at(latest)
    status = status_fact(judge)
    kept += [status] if status is not None else []
    report.facts = sorted(kept, key=lambda f: (f.window_start, FACT_TYPES.index(f.type)))
    if as_of_us is not None:
        report.stale_checked = True
        report.facts.extend(say.staleness(as_of_us))
    return report


def facts_for_series(series: Series, spec: MetricSpec, **kwargs: Any) -> list[Fact]:
    return analyse_series(series, spec, **kwargs).facts


def analyse_source(series: Iterable[Series], catalogue: Catalogue, *, tenant: str, history: bool = False,
                   as_of: datetime | None = None, since: datetime | None = None,
                   calibration: Calibration = CALIBRATION) -> tuple[list[SeriesReport], list[str]]:
    """Reports for every catalogued series, and the names of metrics the catalogue does not list."""
    reports, uncatalogued = [], set()
    for one in series:
        spec = catalogue.get(one.metric)
        if spec is None:
            uncatalogued.add(one.metric)
            continue
        reports.append(analyse_series(one, spec, tenant=tenant, history=history, as_of=as_of, since=since,
                                      calibration=calibration))
    return reports, sorted(uncatalogued)
