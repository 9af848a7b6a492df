"""What an episode says: the fact of an excursion beyond the band, a threshold breach or a gap, and the
one fact about the present (no reading in the clock's latest complete window)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nexus_query.kpi.baselines import Verdict
from nexus_query.kpi.builder import EpisodeSummary, FactDraft
from nexus_query.kpi.episodes import MIN_COVERAGE, SPREAD_MIN_RATIO, SUSTAIN_POINTS, Episode, Judge, Spread
from nexus_query.kpi.fact import Fact
from nexus_query.kpi.stats import percent_change
from nexus_query.kpi.windows import DAY, duration_phrase, iso, stamp, window_of, window_start_us

BAND_METHOD = "expected ± max(z_alarm × 1.4826 × MAD of the residuals, min_change_pct)"
SPREAD_METHOD = "range (max - min) of the window's readings beyond spread_z robust sigmas of earlier ranges"
SHIFT_METHOD = "CUSUM of the windows' robust z: sum of (|z| - shift_drift) over a run beyond shift_threshold"


class EpisodeFacts:
    """Says the episodes a ``Judge`` found, with the judge's verdicts, wording and builder."""

    def __init__(self, judge: Judge, data_ended_us: int | None = None) -> None:
        self.j, self.r, self.words, self.builder = judge, judge.r, judge.words, judge.builder
        self.data_ended_us = data_ended_us  # the last reading, when the readings stopped before the check time

    def fact(self, e: Episode) -> Fact:
        if e.kind == "outside_band":
            fact = self.outside_band(e)
        elif e.kind == "threshold_breach":
            fact = self.threshold_breach(e)
        else:
            fact = self.missing_data(e)
        if not self.ended_with_data(e):
            return fact
        assert self.data_ended_us is not None
        text = f"{fact.text} It ended with the data at {stamp(self.data_ended_us)}: no reading came after it."
        episode = {**fact.metadata["episode"], "ended_with_data": True}
        return replace(fact, text=text, metadata={**fact.metadata, "episode": episode})

    def ended_with_data(self, e: Episode) -> bool:
        """An episode still open at the last reading of a series whose readings stopped: it closes there,
        since nothing is known of the time after it."""
        return e.closed_at is None and self.data_ended_us is not None

    def span(self, e: Episode) -> tuple[int, int | None, str]:
        """(onset µs, end µs or None while open, duration words); an episode the data ended closes at the
        last reading."""
        end = self.r.end_us(e.checked)
        if self.ended_with_data(e):
            assert self.data_ended_us is not None
            end = self.data_ended_us
        windows = e.checked - e.onset + 1
        closed = e.closed_at is not None or self.ended_with_data(e)
        return self.r.start_us(e.onset), (end if closed else None), duration_phrase(windows * self.r.window)

    def outside_band(self, e: Episode) -> Fact:
        if e.spread is not None:
            return self.spread(e, e.spread)
        first, last = e.verdict, e.last
        assert first is not None and last is not None
        if e.shift:
            return self.shift(e, first)
        _, end, duration = self.span(e)
        onset = self.onset_reading(e.onset, first, e.sign)
        rising = e.sign > 0
        r, values = self.r, self.r.values
        band_low, band_high = first.expected - first.half_width, first.expected + first.half_width
        before = self.j.vals[:self.j.bounds[e.onset]]
        if before.size and before.min() >= 0:
            band_low = max(band_low, 0.0)  # a range below zero is not one a count or a latency can be in
        peak_value = float(values[e.peak])
        peak_end = r.end_us(e.peak)
        shown = e.shown
        now = float(values[shown]) if self.j.ok[shown] else float(values[e.checked])
        level_shift = bool(e.closed_at is not None and e.sign * (now - first.expected) > first.half_width)
        text = self.words.outside_band(
            rising=rising, onset_us=onset, end_us=end, duration=duration, windows=e.windows,
            level_shift=level_shift, pct=percent_change(first.expected, now), shown_start_us=r.start_us(shown),
            shown_value=now, checked_start_us=r.start_us(e.checked), checked_value=float(values[e.checked]),
            peak_value=peak_value, peak_end_us=peak_end, usual_low=band_low, usual_high=band_high,
            basis=self.words.baseline_phrase(first.baseline, first.baseline_windows))
        peak_verdict = self.j.verdicts[e.peak] or first
        numbers: dict[str, float | None] = {"value": now, "peak": peak_value, "baseline": first.expected,
                                            "band_low": band_low, "band_high": band_high}
        if level_shift:
            numbers["percent_change"] = percent_change(first.expected, now)
        episode = EpisodeSummary(start=iso(onset), end=iso(end) if end is not None else None, windows=e.windows,
                                 duration=duration if end else None, peak=peak_value, peak_at=iso(peak_end),
                                 level_shift=level_shift, record=self.is_record(e))
        return self.builder.build(FactDraft(
            kind="outside_band", checked=shown, onset_us=r.start_us(e.onset), text=text, numbers=numbers,
            points={"current": int(r.counts[shown]), "baseline_windows": first.baseline_windows,
                    "residual_history": first.history},
            method={"aggregation": self.j.spec.aggregation, "band": BAND_METHOD},
            assessment=self.words.assessment(rising),
            severity=self.j.severity(peak_verdict.z, peak_verdict.history, "residuals of the baseline"),
            episode=episode, baseline=self.j.baselines.evidence(first, e.onset, r.starts_us)))

    def shift(self, e: Episode, first: Verdict) -> Fact:
        """A run of windows the CUSUM found: its average against the average expected value, and the run's
        combined z (the sum of its windows' z over √windows)."""
        r = self.r
        _, end, duration = self.span(e)
        run = [j for j in range(e.onset, e.checked + 1) if self.j.ok[j] and self.j.verdicts[j] is not None]
        verdicts = [v for j in run if (v := self.j.verdicts[j]) is not None]
        mean = float(np.mean(r.values[run]))
        expected = float(np.mean([v.expected for v in verdicts]))
        combined = float(sum(v.z for v in verdicts) / np.sqrt(len(verdicts)))
        rising = e.sign > 0
        onset = r.start_us(e.onset)
        text = self.words.shift(rising=rising, onset_us=onset, end_us=end, duration=duration, windows=len(run),
                                mean=mean, expected=expected,
                                basis=self.words.baseline_phrase(first.baseline, first.baseline_windows))
        peak_value = float(r.values[e.peak])
        episode = EpisodeSummary(start=iso(onset), end=iso(end) if end is not None else None, windows=len(run),
                                 duration=duration if end else None, peak=peak_value, peak_at=iso(r.end_us(e.peak)),
                                 level_shift=False, record=self.is_record(e))
        calibration = self.j.calibration
        return self.builder.build(FactDraft(
            kind="outside_band", checked=e.shown, onset_us=onset, text=text,
            numbers={"value": mean, "peak": peak_value, "baseline": expected},
            points={"windows": len(run), "baseline_windows": first.baseline_windows,
                    "residual_history": first.history},
            method={"aggregation": self.j.spec.aggregation, "band": SHIFT_METHOD,
                    "shift_drift": calibration.shift_drift, "shift_threshold": calibration.shift_threshold},
            assessment=self.words.assessment(rising),
            severity=self.j.severity(combined, first.history, "residuals of the baseline, combined over the run"),
            episode=episode, baseline=self.j.baselines.evidence(first, e.onset, r.starts_us)))

    def spread(self, e: Episode, onset: Spread) -> Fact:
        """An episode of variability: the widest window's lowest and highest readings, against the median
        range of the windows before the episode."""
        r = self.r
        _, end, duration = self.span(e)
        peak = self.j.points(e.peak)
        low, high = float(peak.min()), float(peak.max())
        start = r.start_us(e.onset)
        text = self.words.spread(onset_us=start, end_us=end, duration=duration, windows=e.windows, low=low,
                                 high=high, peak_start_us=r.start_us(e.peak), usual=onset.usual,
                                 history=onset.history, daily=onset.daily, days=onset.days)
        episode = EpisodeSummary(start=iso(start), end=iso(end) if end is not None else None, windows=e.windows,
                                 duration=duration if end else None, peak=high - low, peak_at=iso(r.end_us(e.peak)),
                                 level_shift=False, record=False)
        return self.builder.build(FactDraft(
            kind="outside_band", checked=e.shown, onset_us=start, text=text,
            numbers={"range": high - low, "low": low, "high": high, "usual_range": onset.usual,
                     "widest_daily_range": onset.daily,
                     "range_window_start": iso(r.start_us(e.peak))},
            points={"current": int(r.counts[e.peak]), "range_history": onset.history, "range_days": onset.days},
            method={"aggregation": "range", "band": SPREAD_METHOD, "spread_z": self.j.calibration.spread_z,
                    "min_ratio": SPREAD_MIN_RATIO},
            assessment="neutral",
            severity=self.j.severity(onset.z, onset.history, "ranges of earlier windows"),
            episode=episode))

    def onset_reading(self, i: int, verdict: Verdict, sign: int) -> int:
        """When an excursion began inside its first window: the likeliest change point of a step as large as
        the window's mean excess over the expected value (the reading k that maximises the sum over readings
        from k of excess - step/2, the log-likelihood ratio of a step at k), so one stray reading early in the
        window does not start the episode. The fact's id and source keep the window's start, so a re-run finds
        the same fact."""
        now = self.j.points(i)
        excess = sign * (now - verdict.expected)
        step = float(np.mean(excess)) if now.size else 0.0
        if step <= 0:
            return self.r.start_us(i)
        before = np.concatenate(([0.0], np.cumsum(excess - step / 2)))[:-1]  # the sum over readings before k
        return int(self.j.ts[self.j.bounds[i] + int(np.argmin(before))])

    def threshold_breach(self, e: Episode) -> Fact:
        breach = e.breach
        assert breach is not None
        onset, end, duration = self.span(e)
        text = self.words.threshold_breach(side=breach.side, threshold=breach.threshold, readings=breach.readings,
                                           of=breach.of, worst=breach.worst, onset_us=onset, end_us=end,
                                           duration=duration, windows=e.windows)
        episode = EpisodeSummary(start=iso(onset), end=iso(end) if end is not None else None, windows=e.windows,
                                 duration=duration if end else None, peak=breach.worst,
                                 peak_at=iso(self.r.end_us(e.peak)))
        return self.builder.build(FactDraft(
            kind="threshold_breach", checked=e.shown, onset_us=onset, text=text,
            numbers={"threshold": breach.threshold, "readings_beyond": breach.readings,
                     "longest_run": breach.run, "worst": breach.worst},
            points={"current": breach.of}, method={"side": breach.side, "sustain_readings": SUSTAIN_POINTS},
            assessment="worse", episode=episode))

    def missing_data(self, e: Episode) -> Fact:
        r = self.r
        onset, end, duration = self.span(e)
        windows = e.checked - e.onset + 1
        got = int(r.counts[e.onset:e.checked + 1].sum())
        single = e.windows == 1 and e.checked == e.onset
        text = self.words.missing_data(got=got, expected=r.expected * windows, single_window=single,
                                       onset_us=onset, end_us=end, duration=duration)
        numbers = {"readings": got, "expected": r.expected * windows, "required": r.required * windows}
        episode = EpisodeSummary(start=iso(onset), end=iso(end) if end is not None else None, windows=e.windows,
                                 duration=duration if end else None)
        return self.builder.build(FactDraft(
            kind="missing_data", checked=e.shown, onset_us=onset, text=text, numbers=numbers,
            points={"current": got}, method={"min_points": self.j.spec.min_points, "min_coverage": MIN_COVERAGE},
            assessment="neutral", episode=episode))

    def is_record(self, e: Episode) -> bool:
        """Whether the episode's peak is beyond every earlier window of at least three days of history."""
        past = self.r.values[:e.onset]
        past = past[~np.isnan(past)]
        if past.size == 0 or (e.onset * self.r.window) < 3 * DAY:
            return False
        peak = self.r.values[e.peak]
        return bool(peak > past.max() if e.sign > 0 else peak < past.min())

    def staleness(self, as_of_us: int) -> list[Fact]:
        """A series that was judged before but has no reading in the clock's latest complete window."""
        window = self.r.window
        clock_last = window_of(as_of_us, window) - 1
        clock_end = window_start_us(clock_last + 1, window)
        last = stopped_at(self.j, as_of_us)
        if last is None:
            return []
        silent = clock_last - window_of(last, window)
        text = self.words.stale_data(last_us=last, silent_windows=silent, clock_end_us=clock_end)
        numbers = {"last_reading_at": iso(last), "empty_windows": silent, "checked_at": iso(as_of_us)}
        return [self.builder.stale(text=text, numbers=numbers, window_start=iso(last), window_end=iso(clock_end))]


def stopped_at(judge: Judge, as_of_us: int) -> int | None:
    """The last reading of a judged series that has none in the clock's latest complete window, else None."""
    window, ts = judge.r.window, judge.ts
    clock_last = window_of(as_of_us, window) - 1
    if ts.size == 0 or not judge.ok.any() or ts[-1] >= window_start_us(clock_last, window):
        return None
    return int(ts[-1])
