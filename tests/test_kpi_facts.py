"""The fact worker on series with known, injected events: exactly the expected facts, and nothing else."""

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nexus_query.errors import InvalidRequest
from nexus_query.kpi import Catalogue, MetricSpec, Series, analyse_series
from nexus_query.kpi import facts_for_series as all_facts
from nexus_query.kpi.fact import EPISODE_TYPES
from nexus_query.kpi.source import normalize, parse_table, split_series
from nexus_query.kpi.stats import CALIBRATION
from nexus_query.kpi.windows import choose_window, from_datetime, parse_window
from nexus_query.kpi.wording import format_number
from tests.helpers import END, READINGS_PER_HOUR, noisy, series

# No seasonality: the recent level is the baseline, so two days of history are enough to judge a window
# (with the default ``auto`` a sub-daily series first needs days to tell a daily rhythm from an anomaly).
LATENCY = MetricSpec("checkout_latency_p95", label="p95 latency of checkout", unit="ms",
                     direction="down_is_good", window="1h", seasonality="none")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "acme" / "kpi"
CAUSAL = re.compile(r"\b(because|due to|caused|causes|driven by|as a result|owing to|led to|thanks to)\b", re.I)


def alternating(hours: int, low: float, high: float) -> np.ndarray:
    return np.tile([low, high], hours * READINGS_PER_HOUR // 2)


def facts_for_series(*args, **kwargs):
    """The facts other than the series' status (always there from the second window: test_kpi_status.py)."""
    return [f for f in all_facts(*args, **kwargs) if f.type != "status"]


def types(facts) -> list[str]:
    return [f.type for f in facts]


def test_a_20_percent_step_in_the_last_hour_says_exactly_it_rose_and_is_unusually_high():
    values = np.concatenate([alternating(47, 178, 182), alternating(1, 214, 218)])
    facts = facts_for_series(series(values), LATENCY, tenant="acme")
    assert [f.text for f in facts] == [
        "p95 latency of checkout rose 20.0% in the hour ending 2026-11-16 14:00 UTC compared with the hour "
        "before, from 180 ms to 216 ms, a deterioration.",
        "p95 latency of checkout was unusually high in the hour ending 2026-11-16 14:00 UTC: its average of 216 ms "
        "was above the usual range of 162–198 ms (from the previous 24 hours), a deterioration.",
    ]
    change = facts[0]
    assert (change.window_start, change.window_end) == ("2026-11-16T13:00:00Z", "2026-11-16T14:00:00Z")
    assert change.metadata["numbers"] == {"from": 180.0, "to": 216.0, "absolute_change": 36.0, "percent_change": 20.0}
    assert change.metadata["points"] == {"current": 12, "previous": 12}
    assert change.metadata["method"]["aggregation"] == "mean" and change.metadata["assessment"] == "worse"


def test_a_noisy_20_percent_step_gives_the_same_two_facts_and_history_adds_nothing_earlier():
    values = noisy()
    values[-READINGS_PER_HOUR:] *= 1.2
    latest = facts_for_series(series(values), LATENCY)
    assert types(latest) == ["change", "outside_band"]
    assert 17 < latest[0].metadata["numbers"]["percent_change"] < 23
    history = facts_for_series(series(values), LATENCY, history=True)
    assert [f.id for f in history] == [f.id for f in latest]


def test_a_lone_spike_says_nothing_even_beyond_a_threshold():
    values = noisy()
    values[-5] = 900.0
    spec = MetricSpec("checkout_latency_p95", unit="ms", direction="down_is_good", window="1h", above=250,
                      seasonality="none")
    assert facts_for_series(series(values), spec) == []
    assert facts_for_series(series(values), spec, history=True) == []


def test_a_flat_line_and_plain_noise_say_nothing_in_any_window():
    assert facts_for_series(series(np.full(48 * READINGS_PER_HOUR, 180.0)), LATENCY, history=True) == []
    for seed in range(3):
        assert facts_for_series(series(noisy(seed=seed)), LATENCY, history=True) == []


def test_three_weeks_of_plain_noise_or_small_counts_stay_within_the_false_alarm_budget():
    rng = np.random.default_rng(9)
    budget = CALIBRATION.false_alarms_per_month * 21 / 30
    for values in (noisy(hours=21 * 24, noise=0.03, seed=9), rng.poisson(3, 21 * 24 * READINGS_PER_HOUR)):
        for seasonality in ("none", "daily"):
            spec = MetricSpec("checkout_latency_p95", unit="ms", window="1h", seasonality=seasonality)
            said = facts_for_series(series(values), spec, history=True)
            assert len([f for f in said if f.type in EPISODE_TYPES]) <= budget / 2


def test_a_creep_to_a_new_high_is_one_open_episode_that_says_it_is_a_record():
    values = noisy(hours=5 * 24, noise=0.005, seed=4)
    values[-8 * READINGS_PER_HOUR:] *= np.linspace(1.0, 1.2, 8 * READINGS_PER_HOUR)
    facts = [f for f in facts_for_series(series(values), LATENCY) if f.type != "trend"]
    assert types(facts) == ["outside_band"]
    episode = facts[0]
    assert episode.text.startswith("p95 latency of checkout has been unusually high since 2026-11-16 1")
    assert "its average was 214 ms in the hour ending 2026-11-16 14:00 UTC" in episode.text
    assert episode.episode_end is None and episode.metadata["episode"]["record"] is True
    assert episode.metadata["episode"]["peak"] == pytest.approx(214, abs=1)
    slow = noisy(hours=5 * 24, noise=0.005, seed=4)
    slow[-24 * READINGS_PER_HOUR:] *= np.linspace(1.0, 1.08, 24 * READINGS_PER_HOUR)
    assert facts_for_series(series(slow), LATENCY, history=True) == []  # never min_change_pct beyond a day ago


def test_a_gap_in_the_last_hour_gives_one_missing_data_fact():
    values = noisy()
    s = series(values)
    keep = np.ones(values.size, dtype=bool)
    keep[-10:-2] = False  # 8 of the last hour's 12 readings never arrived
    facts = facts_for_series(Series(s.metric, (), s.timestamps_us[keep], s.values[keep]), LATENCY)
    assert [f.text for f in facts] == [
        "Only 4 of the 12 expected readings of p95 latency of checkout were recorded in the hour ending "
        "2026-11-16 14:00 UTC, too few to judge the hour."]
    assert facts[0].metadata["numbers"] == {"readings": 4, "expected": 12, "required": 6}


def test_too_few_points_say_nothing():
    assert facts_for_series(series([180, 181, 250, 260, 400]), LATENCY, history=True) == []
    assert facts_for_series(series(noisy(hours=1)), LATENCY, history=True) == []


def test_a_sustained_rise_over_six_hours_is_a_trend_and_small_steps_are_not_changes():
    values = noisy(noise=0.005)
    values[-72:] *= np.repeat(np.linspace(1.0, 1.3, 6), READINGS_PER_HOUR)  # +6% an hour
    facts = facts_for_series(series(values), LATENCY)
    assert "change" not in types(facts)
    trend = next(f for f in facts if f.type == "trend")
    assert trend.text.startswith("p95 latency of checkout trended up over the 6 hours ending 2026-11-16 14:00 UTC")
    assert trend.window_start == "2026-11-16T08:00:00Z" and trend.text.endswith("a deterioration.")


def test_readings_beyond_a_threshold_three_in_a_row_are_a_breach():
    values = noisy()
    values[-4:] = 260.0
    spec = MetricSpec("checkout_latency_p95", label="p95 latency of checkout", unit="ms", window="1h", above=250,
                      seasonality="none")
    facts = [f for f in facts_for_series(series(values), spec) if f.type == "threshold_breach"]
    assert [f.text for f in facts] == [
        "p95 latency of checkout was above its 250 ms threshold in 4 of 12 readings in the hour ending "
        "2026-11-16 14:00 UTC, reaching 260 ms."]
    values[-4] = 200.0  # only three in a row now, still a breach; two in a row are not
    assert "threshold_breach" in types(facts_for_series(series(values), spec))
    values[-3] = 200.0
    assert "threshold_breach" not in types(facts_for_series(series(values), spec))


def test_a_series_that_stopped_gets_a_stale_data_fact_when_checked_later():
    check = END + timedelta(hours=3, minutes=5)
    facts = facts_for_series(series(noisy()), LATENCY, as_of=check)
    assert [f.text for f in facts] == [
        "The last reading of p95 latency of checkout is from 2026-11-16 13:55 UTC; none were recorded in the "
        "3 hours up to 2026-11-16 17:00 UTC."]
    assert facts[0].source == "kpi/checkout_latency_p95/stale"
    assert facts_for_series(series(noisy()), LATENCY, as_of=END + timedelta(minutes=5)) == []


def test_direction_decides_better_or_worse_and_percent_metrics_speak_in_points():
    values = np.concatenate([alternating(47, 3.1, 3.3), alternating(1, 2.5, 2.7)])
    spec = MetricSpec("conversion_rate", label="conversion rate", unit="%", direction="up_is_good", window="1h",
                      seasonality="none")
    change = facts_for_series(series(values, metric="conversion_rate"), spec)[0]
    assert change.text == ("conversion rate fell 0.600 percentage points (18.7%) in the hour ending 2026-11-16 "
                           "14:00 UTC compared with the hour before, from 3.20% to 2.60%, a deterioration.")
    neutral = MetricSpec("conversion_rate", unit="%", window="1h", seasonality="none")
    assert not facts_for_series(series(values, metric="conversion_rate"), neutral)[0].text.endswith("deterioration.")
    rising = np.concatenate([alternating(47, 3.1, 3.3), alternating(1, 3.9, 4.1)])
    assert facts_for_series(series(rising, metric="conversion_rate"), spec)[0].text.endswith("an improvement.")


def test_a_daily_rhythm_is_not_news_when_compared_with_the_same_hour_a_day_earlier():
    rng = np.random.default_rng(3)
    hours = np.arange(14 * 24 * READINGS_PER_HOUR) / READINGS_PER_HOUR
    orders = (400 + 250 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)) * (1 + 0.03 * rng.standard_normal(hours.size))
    daily = MetricSpec("orders_per_hour", label="orders per hour", unit="orders/h", direction="up_is_good",
                       window="1h", seasonality="daily")
    found = MetricSpec("orders_per_hour", label="orders per hour", unit="orders/h", direction="up_is_good")
    for spec in (daily, found):  # told, or found in the data (the default)
        assert facts_for_series(series(orders, metric="orders_per_hour"), spec, history=True) == []
    orders[-READINGS_PER_HOUR:] *= 0.75
    for spec in (daily, found):
        facts = facts_for_series(series(orders, metric="orders_per_hour"), spec)
        assert types(facts) == ["change", "outside_band"]
        assert "compared with the same hour a day earlier" in facts[0].text
        assert facts[1].metadata["baseline"]["kind"] == "daily" and facts[1].metadata["baseline"]["seasonal"]


def test_fact_ids_are_deterministic_per_tenant_series_type_and_window():
    values = np.concatenate([alternating(47, 178, 182), alternating(1, 214, 218)])
    first = facts_for_series(series(values), LATENCY, tenant="acme")
    again = facts_for_series(series(values), LATENCY, tenant="acme")
    assert [(f.id, f.text, f.metadata) for f in first] == [(f.id, f.text, f.metadata) for f in again]
    other = facts_for_series(series(values), LATENCY, tenant="globex")
    assert {f.id for f in first}.isdisjoint(f.id for f in other)
    values[-1] = 230.0  # a late correction changes the numbers, not which fact it is
    corrected = facts_for_series(series(values), LATENCY, tenant="acme")
    assert [f.id for f in corrected] == [f.id for f in first] and corrected[0].text != first[0].text


def test_history_judges_each_window_only_on_what_came_before_it():
    values = noisy(hours=96)
    values[48 * READINGS_PER_HOUR:49 * READINGS_PER_HOUR] *= 1.3  # one bad hour, two days in
    history = facts_for_series(series(values), LATENCY, history=True)
    report = analyse_series(series(values[:49 * READINGS_PER_HOUR], end=END - timedelta(hours=47)), LATENCY)
    then = [f.id for f in report.facts if f.type != "status"]
    assert then and set(then) <= {f.id for f in history}
    assert {f.episode_start or f.window_start for f in history} == {"2026-11-14T14:00:00Z"}


def test_the_window_adapts_to_the_sampling_when_none_is_given():
    def stamps(minutes: int) -> np.ndarray:
        return series(np.zeros(100), minutes=minutes).timestamps_us
    assert [choose_window(stamps(m), 6) for m in (1, 5, 15, 60, 1440)] == [  # an hour at least: the seed's unit
        parse_window("1h"), parse_window("1h"), parse_window("6h"), parse_window("6h"), parse_window("1w")]
    rng = np.random.default_rng(5)
    daily = 100 * (1 + 0.02 * rng.standard_normal(120))
    daily[-7:] *= 1.25
    facts = facts_for_series(series(daily, minutes=1440, end=datetime(2026, 11, 16, tzinfo=UTC),
                                    metric="signups"), MetricSpec("signups", unit="signups"))
    assert types(facts) == ["change", "outside_band"]
    assert facts[0].text.startswith("signups rose") and "in the week 2026-11-09 to 2026-11-15 (UTC)" in facts[0].text


def test_measurements_files_accept_mixed_timestamps_dimensions_and_reject_bad_rows():
    csv = (b"timestamp,metric,value,unit,region\n"
           b"2026-11-16T13:00:00Z,latency,180,ms,eu\n"
           b"2026-11-16T15:05:00+02:00,latency,181,ms,eu\n"
           b"2026-11-16 13:10:00,latency,182,ms,us\n"
           b"2026-11-16T13:10:00Z,latency,184,ms,us\n")
    found = split_series(normalize(parse_table(csv, "m.csv"), source="m.csv"))
    assert [s.key for s in found] == ["latency{region=eu}", "latency{region=us}"]
    assert found[0].timestamps_us.tolist() == [from_datetime(datetime(2026, 11, 16, 13, m, tzinfo=UTC))
                                               for m in (0, 5)]
    assert found[1].values.tolist() == [183.0] and found[1].unit == "ms"  # same instant: averaged
    with pytest.raises(InvalidRequest, match="not a number"):
        normalize(parse_table(b"timestamp,value\n2026-11-16T13:00:00Z,fast\n", "x.csv"), source="x.csv", metric="m")
    with pytest.raises(InvalidRequest, match="not ISO 8601"):
        normalize(parse_table(b"timestamp,value\n2026-11-16T13:00:00Z,1\nyesterday,2\n", "x.csv"), source="x.csv",
                  metric="m")
    with pytest.raises(InvalidRequest, match="missing column"):
        normalize(pl.DataFrame({"timestamp": ["2026-11-16T13:00:00Z"]}), source="x.csv", metric="m")


def test_the_catalogue_is_validated_and_typos_are_refused():
    catalogue = Catalogue.from_yaml((EXAMPLES / "catalogue.yaml").read_text())
    assert catalogue.get("orders_per_hour").seasonality == "daily" and catalogue.retention_days == 90
    assert catalogue.get("checkout_latency_p95").above == 250
    for bad in ("metrics: [{name: x, directon: up_is_good}]", "metrics: [{name: x, direction: sideways}]",
                "metrics: [{name: x, window: 90s}]", "metrics: [{name: x}, {name: x}]", "metrics: [{name: '../x'}]",
                "metrics: [{name: x, thresholds: {above: 1, below: 2}}]", "retention_days: -1"):
        with pytest.raises(InvalidRequest):
            Catalogue.from_yaml(bad)


def test_numbers_are_written_with_three_significant_digits():
    assert [format_number(v) for v in (216.4, 3.2, 0.04123, 12480.2, 0.0, -18.75)] == [
        "216", "3.20", "0.0412", "12,480", "0", "-18.8"]


def test_the_bundled_acme_measurements_say_what_was_injected_and_no_causes():
    catalogue = Catalogue.from_yaml((EXAMPLES / "catalogue.yaml").read_text())
    data = (EXAMPLES / "measurements.csv").read_bytes()
    found = {s.metric: s for s in split_series(normalize(parse_table(data, "m.csv"), source="m.csv"))}
    latest = {m: types(facts_for_series(s, catalogue.get(m))) for m, s in found.items()}
    assert latest == {"checkout_latency_p95": ["change", "outside_band"], "conversion_rate": [],
                      "orders_per_hour": []}
    history = {m: facts_for_series(s, catalogue.get(m), history=True) for m, s in found.items()}
    assert types(history["checkout_latency_p95"]) == ["change", "outside_band"]  # the lone spike: nothing
    # the three-hour dip is one closed episode (and the change at its start), not a fact per hour
    dip = [f for f in history["conversion_rate"] if f.type == "outside_band"]
    assert types(history["conversion_rate"]) == ["change", "outside_band"] and len(dip) == 1
    assert (dip[0].episode_start, dip[0].episode_end) == ("2026-11-14T11:00:00Z", "2026-11-14T14:00:00Z")
    assert dip[0].text.startswith("checkout conversion rate was unusually low from 2026-11-14 11:00 UTC to "
                                  "2026-11-14 14:00 UTC (3 hours), peaking at 2.4")
    assert types(history["orders_per_hour"]) == ["missing_data"]
    assert not [f.text for fs in history.values() for f in fs if CAUSAL.search(f.text)]


def test_the_committed_example_file_is_what_its_generator_writes(tmp_path):
    out = tmp_path / "measurements.csv"
    subprocess.run([sys.executable, str(EXAMPLES / "generate.py"), "--out", str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == (EXAMPLES / "measurements.csv").read_bytes()
