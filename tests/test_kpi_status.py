"""The status fact: one per series from the second window on, with exact numbers, replaced in place each run;
and what a series says from its first day and after its data stops."""

from datetime import UTC, datetime, timedelta

import numpy as np

from nexus_query.kpi import MetricSpec, facts_for_series
from nexus_query.kpi.source import Series
from tests.helpers import END, READINGS_PER_HOUR, noisy, series

ANOMALY_TYPES = {"outside_band", "new_extreme", "threshold_breach", "spike"}
LATENCY = MetricSpec("p95_latency", label="p95 latency", unit="ms", direction="down_is_good")
DAY_START = datetime(2026, 11, 16, tzinfo=UTC)


def one_day_by_minute(seed: int, raised_minutes: int = 0) -> Series:
    """The seed's example: one day of one-minute p95 latency, the last ``raised_minutes`` 20% higher."""
    values = 190 * (1 + 0.03 * np.random.default_rng(seed).standard_normal(1440))
    if raised_minutes:
        values[-raised_minutes:] *= 1.2
    return series(values, minutes=1, end=DAY_START + timedelta(days=1), metric="p95_latency")


def status_of(facts):
    (status,) = [f for f in facts if f.type == "status"]
    return status


def test_one_day_whose_last_two_hours_are_20_percent_higher_says_so_from_the_first_day():
    facts = facts_for_series(one_day_by_minute(1, raised_minutes=120), LATENCY, history=True)
    status = status_of(facts)
    numbers = status.metadata["numbers"]
    assert status.window_end == "2026-11-17T00:00:00Z" and status.metadata["position"] == "above"
    assert status.text.startswith(f"p95 latency was {round(numbers['value'])} ms in the hour ending "
                                  "2026-11-17 00:00 UTC, about the same as the hour before")
    since = numbers["outside_since"]
    assert since["since"] == "2026-11-16T22:00:00Z" and 17 < since["percent_change"] < 23
    assert f"since 2026-11-16 22:00 UTC, up {since['percent_change']:.1f}% from " in status.text
    (episode,) = [f for f in facts if f.type in ANOMALY_TYPES]  # less than a day of history is enough
    assert episode.type == "outside_band" and episode.episode_start == "2026-11-16T22:00:00Z"


def test_a_healthy_day_gives_a_status_and_no_anomaly_claim():
    for seed in range(2, 5):
        facts = facts_for_series(one_day_by_minute(seed), LATENCY, history=True)
        assert [f.type for f in facts if f.type != "change"] == ["status"]
        status = status_of(facts)
        assert status.metadata["position"] == "within" and "about the same as the hour before" in status.text
        assert status.metadata["assessment"] == "neutral"


def test_the_status_names_the_latest_hour_its_change_and_the_same_hour_a_day_and_a_week_earlier():
    values = noisy(hours=8 * 24, noise=0.005, seed=3)
    values[-READINGS_PER_HOUR:] *= 1.2
    status = status_of(facts_for_series(series(values), LATENCY))
    numbers = status.metadata["numbers"]
    assert set(numbers) >= {"value", "previous", "day", "week", "usual_low", "usual_high"}
    for name in ("previous", "day", "week"):
        assert 19 < numbers[name]["percent_change"] < 21 and not numbers[name]["about_the_same"]
    assert numbers["day"]["window_start"] == "2026-11-15T13:00:00Z"
    assert numbers["week"]["window_start"] == "2026-11-09T13:00:00Z"
    assert f"up {numbers['previous']['percent_change']:.1f}% from " in status.text
    assert "the same hour a day earlier" in status.text and "the same hour a week earlier" in status.text
    assert status.metadata["position"] == "above" and status.metadata["assessment"] == "worse"


def test_a_change_within_the_usual_variation_is_about_the_same_and_a_rhythms_big_step_is_not():
    values = noisy(hours=3 * 24, noise=0.03, seed=6)
    values[-READINGS_PER_HOUR:] *= 1.01
    status = status_of(facts_for_series(series(values), LATENCY))
    assert status.metadata["numbers"]["previous"]["about_the_same"] and "rose" not in status.text
    hours = np.arange(21 * 24 * READINGS_PER_HOUR) / READINGS_PER_HOUR
    evening = np.where((hours % 24 >= 17) & (hours % 24 < 23), 2.5, 1.0)  # the last hour ends a busy evening
    rhythm = 120 * evening * (1 + 0.05 * np.random.default_rng(21).standard_normal(hours.size))
    status = status_of(facts_for_series(series(rhythm), LATENCY))
    previous = status.metadata["numbers"]["previous"]
    assert not previous["about_the_same"] and previous["percent_change"] < -50
    assert f"down {abs(previous['percent_change']):.1f}% from " in status.text


def test_the_status_is_one_fact_per_series_replaced_each_run_and_starts_at_the_second_window():
    values = noisy(hours=48, seed=7)
    ids = {status_of(facts_for_series(series(values[:cut], end=END - timedelta(hours=h)), LATENCY)).id
           for h, cut in ((0, values.size), (5, values.size - 5 * READINGS_PER_HOUR))}
    assert len(ids) == 1
    assert status_of(facts_for_series(series(values[:2 * READINGS_PER_HOUR]), LATENCY)).window_end == \
        "2026-11-16T14:00:00Z"
    one_hour = facts_for_series(series(values[:READINGS_PER_HOUR]), LATENCY)
    assert [f for f in one_hour if f.type == "status"] == []
    status = status_of(facts_for_series(series(values), LATENCY))
    assert status.source == "kpi/checkout_latency_p95/status" and status.metadata["fact_type"] == "status"
    assert status.metadata["kind"] == "kpi_fact" and status.metadata["as_of"] == "2026-11-16T13:55:00Z"


def test_when_the_data_stops_open_episodes_close_at_the_last_reading_and_nothing_speaks_of_later():
    day = one_day_by_minute(1, raised_minutes=120)
    facts = facts_for_series(day, LATENCY, as_of=datetime(2026, 12, 7, 10, tzinfo=UTC))
    by_type = {f.type: f for f in facts}
    assert set(by_type) == {"outside_band", "status", "stale_data"}
    episode = by_type["outside_band"]
    assert episode.episode_end == "2026-11-16T23:59:00Z" and episode.metadata["episode"]["ended_with_data"]
    assert episode.text.endswith("It ended with the data at 2026-11-16 23:59 UTC: no reading came after it.")
    assert by_type["stale_data"].text.startswith("The last reading of p95 latency is from 2026-11-16 23:59 UTC")
    for fact in facts:
        assert fact.metadata["as_of"] == "2026-11-16T23:59:00Z"
        assert not {"ongoing", "now", "currently"} & set(fact.text.replace(",", " ").split())
        assert "has been" not in fact.text, fact.text
