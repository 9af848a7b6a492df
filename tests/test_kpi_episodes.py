"""Episodes, seasonal baselines and the false-alarm budget, on hand-made series with known shapes."""

from datetime import datetime, timedelta

import numpy as np

from nexus_query.kpi import MetricSpec, analyse_series, facts_for_series
from nexus_query.kpi.source import Series
from nexus_query.kpi.stats import Calibration, alarm_z
from nexus_query.kpi.windows import HOUR, from_datetime
from nexus_query.kpi.wording import format_value
from tests.helpers import END, READINGS_PER_HOUR, noisy, series

ANOMALY_TYPES = {"outside_band", "new_extreme", "threshold_breach", "spike"}
LATENCY = MetricSpec("checkout_latency_p95", label="p95 latency of checkout", unit="ms", direction="down_is_good")
WEEK_OF_HOURS = 7 * 24


def claims(facts):
    return [f for f in facts if f.type in ANOMALY_TYPES]


def up_to(values: np.ndarray, hours_before_end: int) -> Series:
    """The series as the worker would have seen it ``hours_before_end`` hours before END."""
    cut = values.size - hours_before_end * READINGS_PER_HOUR
    return series(values[:cut], end=END - timedelta(hours=hours_before_end))


def excursion() -> np.ndarray:
    """A week at about 180 ms, then 30% higher for three hours, back to normal for the last five."""
    values = noisy(hours=WEEK_OF_HOURS, seed=11)
    values[-8 * READINGS_PER_HOUR:-5 * READINGS_PER_HOUR] *= 1.3
    return values


def test_a_daily_rhythm_without_anomalies_gives_no_anomaly_claim_once_three_days_show_it():
    rng = np.random.default_rng(21)
    hours = np.arange(21 * 24 * READINGS_PER_HOUR) / READINGS_PER_HOUR
    evening = np.where((hours % 24 >= 17) & (hours % 24 < 23), 2.5, 1.0)  # busy every evening
    values = 120 * evening * (1 + 0.05 * rng.standard_normal(hours.size))
    facts = facts_for_series(series(values), LATENCY, history=True)
    # the first evenings are news (judged on the recent level); from the fourth day the daily baseline knows them
    rhythm_known = (END - timedelta(days=21 - 3)).isoformat().replace("+00:00", "Z")
    assert [f for f in facts if f.type != "status" and f.window_end > rhythm_known] == []
    report = analyse_series(series(values), LATENCY)
    assert report.lag == 24  # the data chose the same hour a day earlier


def test_a_three_hour_excursion_is_one_episode_updated_then_closed():
    values = excursion()
    first = facts_for_series(up_to(values, 7), LATENCY)  # an hour into it
    second = facts_for_series(up_to(values, 6), LATENCY)  # two hours into it
    closed = facts_for_series(up_to(values, 4), LATENCY)  # an hour after it ended
    (opened,) = [f for f in first if f.type == "outside_band"]
    (going,) = [f for f in second if f.type == "outside_band"]
    (ended,) = [f for f in closed if f.type == "outside_band"]
    assert opened.id == going.id == ended.id  # one fact, updated in place
    assert opened.episode_start == going.episode_start == ended.episode_start == "2026-11-16T06:00:00Z"
    assert opened.episode_end is None and going.episode_end is None
    assert opened.text.startswith("p95 latency of checkout was unusually high in the hour ending 2026-11-16 07:00 UTC")
    assert going.text.startswith("p95 latency of checkout has been unusually high since 2026-11-16 06:00 UTC")
    assert ended.episode_end == "2026-11-16T09:00:00Z" and ended.window_end == "2026-11-16T10:00:00Z"
    assert ended.text.startswith("p95 latency of checkout was unusually high from 2026-11-16 06:00 UTC to "
                                 "2026-11-16 09:00 UTC (3 hours), peaking at ")
    episode = ended.metadata["episode"]
    peak_hour = int(np.argmax([values[-(8 - h) * READINGS_PER_HOUR:][:READINGS_PER_HOUR].mean() for h in range(3)]))
    assert episode["windows"] == 3 and episode["peak_at"] == f"2026-11-16T{7 + peak_hour:02d}:00:00Z"
    assert abs(episode["peak"] - 1.3 * 180) < 10 and not episode["level_shift"]
    history = facts_for_series(series(values), LATENCY, history=True)
    assert [f.id for f in claims(history)] == [ended.id]  # the backfill says it once
    later = facts_for_series(series(values), LATENCY)  # five hours later: the same closed fact, nothing new
    assert [(f.id, f.text) for f in claims(later)] == [(ended.id, ended.text)]


def test_the_episode_fact_carries_its_evidence():
    (ended,) = [f for f in facts_for_series(up_to(excursion(), 4), LATENCY) if f.type == "outside_band"]
    meta = ended.metadata
    assert meta["baseline"]["kind"] in {"recent", "daily", "weekly"}
    assert meta["baseline"]["residual_history_windows"] >= 24
    assert meta["severity"]["robust_z"] > meta["severity"]["alarm_z"] == round(alarm_z(HOUR), 5)
    assert 0 <= meta["severity"]["p_value"] < 1e-3 and meta["window_complete"] is True
    assert meta["points"]["current"] == READINGS_PER_HOUR
    assert meta["numbers"]["band_low"] < 180 < meta["numbers"]["band_high"] < meta["episode"]["peak"]


def test_a_level_shift_is_one_fact_and_then_silence_at_the_new_level():
    values = noisy(hours=10 * 24, seed=5)
    values[-3 * 24 * READINGS_PER_HOUR:] *= 1.25  # 25% higher for the last three days
    history = facts_for_series(series(values), LATENCY, history=True)
    (shift,) = claims(history)
    assert shift.episode_start == "2026-11-13T14:00:00Z" and shift.metadata["episode"]["level_shift"] is True
    assert shift.text.startswith("p95 latency of checkout moved to a new level from 2026-11-13 14:00 UTC")
    assert "that level became the baseline" in shift.text and shift.episode_end is not None
    others = [f.type for f in history if f.id != shift.id and f.type != "status"]
    assert others in ([], ["change"])  # at most the step itself
    quiet_since = shift.window_end
    assert all(f.window_end <= quiet_since for f in history if f.type != "status")
    now = facts_for_series(series(values), LATENCY)
    assert [f.type for f in now] == ["status"]  # the new level is the baseline now


def test_a_gap_is_one_missing_data_episode():
    values = noisy(hours=3 * 24, seed=8)
    s = series(values)
    stamps = s.timestamps_us
    gap_start, gap_end = from_datetime(END - timedelta(hours=20)), from_datetime(END - timedelta(hours=15))
    keep = (stamps < gap_start) | (stamps >= gap_end)
    facts = facts_for_series(Series(s.metric, (), stamps[keep], s.values[keep]), LATENCY, history=True)
    (gap, status) = facts
    assert status.type == "status"
    assert gap.type == "missing_data"
    assert (gap.episode_start, gap.episode_end) == ("2026-11-15T18:00:00Z", "2026-11-15T23:00:00Z")
    expected = gap.metadata["numbers"]["expected"]
    assert gap.text == ("Too few readings of p95 latency of checkout were recorded from 2026-11-15 18:00 UTC to "
                        f"2026-11-15 23:00 UTC: 0 of the {expected} expected in 5 hours.")
    assert 50 <= expected <= 60 and gap.metadata["episode"]["windows"] == 5


def test_the_false_alarm_threshold_follows_the_windows_checked_in_a_month():
    # 720 hourly windows a month, the default budget of 0.05 false alarms: p = 6.9e-5, Laplace tails
    assert 6.7 < alarm_z(HOUR) < 6.9
    assert 5.0 < alarm_z(HOUR, Calibration(false_alarms_per_month=0.5)) < 5.3  # p = 6.9e-4
    assert alarm_z(HOUR, Calibration(false_alarms_per_month=30)) == 3.0  # never under three robust sigmas
    assert alarm_z(6 * HOUR) < alarm_z(HOUR) < alarm_z(timedelta(minutes=5))
    rng = np.random.default_rng(17)
    heavy = 100 + 5 * rng.standard_t(3, 30 * 24 * READINGS_PER_HOUR)  # a month of heavy-tailed noise
    assert len(claims(facts_for_series(series(heavy), LATENCY, history=True))) <= 1


def test_a_run_of_hours_each_inside_the_band_is_one_shift_episode_said_by_its_average():
    spec = MetricSpec("checkout_latency_p95", label="p95 latency of checkout", unit="ms", min_change_pct=1)
    values = noisy(hours=WEEK_OF_HOURS, seed=5)
    values[-10 * READINGS_PER_HOUR:-2 * READINGS_PER_HOUR] += 4.5  # +2.5% for 8 hours: about 4 sigma an hour
    facts = facts_for_series(series(values), spec, history=True)
    (shift,) = claims(facts)
    assert shift.type == "outside_band"
    assert shift.episode_start == "2026-11-16T04:00:00Z"
    assert shift.text.startswith("p95 latency of checkout ran above its usual level from 2026-11-16 04:00 UTC")
    run = values[-10 * READINGS_PER_HOUR:].reshape(10, READINGS_PER_HOUR).mean(axis=1)
    windows = shift.metadata["points"]["windows"]
    assert abs(shift.metadata["numbers"]["value"] - run[:windows].mean()) <= 1e-5 * run.mean()  # 6 digits
    assert shift.metadata["method"]["band"].startswith("CUSUM")
    # no band episode saw it: without the CUSUM the same hours are silent
    quiet = facts_for_series(series(values), spec, history=True,
                             calibration=Calibration(shift_threshold=float("inf")))
    assert claims(quiet) == []


def test_hours_that_vary_far_more_than_usual_at_the_usual_level_are_one_spread_episode():
    values = noisy(hours=WEEK_OF_HOURS, seed=7)
    swing = np.tile([1.0, -1.0], 4 * READINGS_PER_HOUR // 2) * 60  # ±60 ms in pairs: every hour's mean unchanged
    values[-6 * READINGS_PER_HOUR:-2 * READINGS_PER_HOUR] += swing
    facts = facts_for_series(series(values), LATENCY, history=True)  # spread z 9: the default
    (spread,) = claims(facts)
    assert spread.type == "outside_band" and spread.episode_start == "2026-11-16T08:00:00Z"
    assert spread.text.startswith("p95 latency of checkout varied far more than usual from 2026-11-16 08:00 UTC "
                                  "to 2026-11-16 12:00 UTC")
    numbers = spread.metadata["numbers"]
    hour = datetime.fromisoformat(numbers["range_window_start"].replace("Z", "+00:00"))
    first = values.size - int((END - hour) / timedelta(minutes=5))
    readings = values[first:first + READINGS_PER_HOUR]
    for said, actual in ((numbers["low"], readings.min()), (numbers["high"], readings.max())):
        assert abs(said - actual) <= 1e-5 * actual  # the readings' own lowest and highest, to 6 digits
    assert (f"ranged from {format_value(readings.min(), 'ms')} to {format_value(readings.max(), 'ms')}"
            in spread.text)
    assert numbers["range"] > max(2 * numbers["usual_range"], numbers["widest_daily_range"])
    # the level never left its band: without spread episodes the same week is silent
    assert claims(facts_for_series(series(values), LATENCY, history=True,
                                   calibration=Calibration(spread_z=float("inf")))) == []


def test_a_steady_series_opens_no_spread_episode():
    steady = noisy(hours=3 * WEEK_OF_HOURS, seed=3)
    assert claims(facts_for_series(series(steady), LATENCY, history=True,
                                   calibration=Calibration(spread_z=6.0))) == []


def test_an_episode_starts_where_its_readings_moved_not_at_an_earlier_stray_reading():
    values = noisy(hours=WEEK_OF_HOURS, seed=5)

    def at(hour: int, minute: int) -> int:  # the index of the reading at that time on the last day
        return values.size - int((END - END.replace(hour=hour, minute=minute)) / timedelta(minutes=5))

    values[at(8, 30):at(11, 0)] *= 1.4  # the step starts at 08:30 and lasts two and a half hours
    values[at(8, 5)] *= 1.25  # one stray reading before it, beyond the band on its own
    (episode,) = claims(facts_for_series(series(values), LATENCY, history=True))
    # the likeliest change point in the first hour (a step of the hour's mean excess), not the stray reading
    assert episode.type == "outside_band" and episode.episode_start == "2026-11-16T08:30:00Z"
    assert episode.text.startswith("p95 latency of checkout was unusually high from 2026-11-16 08:30 UTC")


def test_one_wild_reading_is_not_a_window_that_varies():
    values = noisy(hours=WEEK_OF_HOURS, seed=7)
    values[-5 * READINGS_PER_HOUR] *= 5  # one reading five times the level: the hour's range is that reading's
    assert claims(facts_for_series(series(values), LATENCY, history=True)) == []
    values[-5 * READINGS_PER_HOUR + 3] *= 0.2  # and one far below in the same hour: the range stays wide without
    (spread,) = claims(facts_for_series(series(values), LATENCY, history=True))  # either one, so it varied
    assert spread.text.startswith("p95 latency of checkout varied far more than usual")
