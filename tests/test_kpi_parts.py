"""The KPI fact worker's parts on their own: typed breaches, the fact builder, wording and the retention."""

from datetime import UTC, datetime, timedelta

import numpy as np

from nexus_query.kpi import Catalogue, MetricSpec, Series
from nexus_query.kpi.baselines import Baselines
from nexus_query.kpi.builder import EpisodeSummary, FactBuilder, FactDraft
from nexus_query.kpi.episodes import Breach
from nexus_query.kpi.report import SeriesReport
from nexus_query.kpi.retirement import retention_start
from nexus_query.kpi.stats import Severity
from nexus_query.kpi.windows import HOUR, from_datetime, to_us
from nexus_query.kpi.wording import Wording

START = from_datetime(datetime(2026, 11, 16, tzinfo=UTC))
LATENCY = MetricSpec("checkout_latency_p95", label="p95 latency of checkout", unit="ms", direction="down_is_good",
                     window="1h")


def report(spec: MetricSpec = LATENCY, windows: int = 3) -> SeriesReport:
    starts = np.array([START + k * to_us(HOUR) for k in range(windows)], dtype=np.int64)
    series = Series(spec.name, (("region", "eu"),), starts.copy(), np.ones(windows))
    return SeriesReport(series, spec, HOUR, 1, 12, 6, starts, np.array([12, 12, 5][:windows]), np.ones(windows))


def test_a_breach_joined_over_windows_sums_readings_and_keeps_the_worst_on_its_side():
    above = Breach("above", 250.0, 4, 12, 3, 270.0).joined(Breach("above", 250.0, 5, 12, 5, 260.0))
    assert above == Breach("above", 250.0, 9, 24, 5, 270.0)
    below = Breach("below", 10.0, 3, 12, 3, 8.0).joined(Breach("below", 10.0, 3, 12, 3, 6.0))
    assert (below.worst, below.readings) == (6.0, 6)
    assert Breach("below", 10.0, 3, 12, 3, 6.0).worse_than(Breach("below", 10.0, 3, 12, 3, 8.0))


def test_an_episode_summary_states_peak_and_record_only_where_the_episode_has_them():
    gap = EpisodeSummary(start="a", end=None, windows=2, duration=None)
    assert list(gap.as_dict()) == ["start", "end", "windows", "duration"]
    band = EpisodeSummary(start="a", end="b", windows=2, duration="2 hours", peak=1.0, peak_at="b",
                          level_shift=False, record=True)
    assert list(band.as_dict()) == ["start", "end", "peak", "peak_at", "windows", "duration", "level_shift",
                                    "record"]


def test_the_builder_gives_a_fact_the_same_id_whatever_it_says_and_a_new_one_for_a_new_onset():
    r = report()
    builder = FactBuilder(r, "acme", Wording.of(r.series, r.spec, r.window))
    draft = FactDraft(kind="change", checked=2, onset_us=START, text="rose", numbers={"to": 1 / 3}, points={},
                      method={}, assessment="worse", severity=Severity.of(float("inf"), 5, "residuals", 5.1))
    fact = builder.build(draft)
    reworded = builder.build(FactDraft(**{**draft.__dict__, "text": "rose again"}))
    later = builder.build(FactDraft(**{**draft.__dict__, "onset_us": START + to_us(HOUR)}))
    assert fact.id == reworded.id != later.id
    assert fact.source == "kpi/checkout_latency_p95{region=eu}/2026-11-16T00:00:00Z"
    assert (fact.window_start, fact.window_end) == ("2026-11-16T02:00:00Z", "2026-11-16T03:00:00Z")
    meta = fact.metadata
    assert meta["label"] == "p95 latency of checkout (region=eu)" and meta["numbers"] == {"to": 0.333333}
    assert meta["window_complete"] is False  # 5 of the 12 readings the sampling promises
    assert meta["severity"]["robust_z"] is None and meta["severity"]["p_value"] == 0.0


def test_wording_calls_a_rise_better_or_worse_by_the_metrics_direction():
    r = report()
    down = Wording.of(r.series, r.spec, r.window)
    up = Wording.of(r.series, MetricSpec("orders", direction="up_is_good"), r.window)
    assert (down.assessment(True), up.assessment(True), up.assessment(None)) == ("worse", "better", "neutral")
    assert down.value(1234.5) == "1,234 ms" and down.range(-1, 2) == "-1.00–2.00 ms"


def test_seasonal_baselines_are_offered_only_where_the_window_divides_the_season():
    hourly = Baselines(np.ones(200), HOUR, "auto", 10.0)
    daily = Baselines(np.ones(30), timedelta(days=1), "auto", 10.0)
    assert list(hourly.candidates) == ["recent", "daily", "weekly"]
    assert list(daily.candidates) == ["recent", "weekly"]
    assert list(Baselines(np.ones(30), timedelta(days=1), "daily", 10.0).candidates) == ["recent"]


def test_retention_starts_the_catalogues_days_before_now_or_keeps_everything():
    now = datetime(2026, 11, 16, 14, 5, tzinfo=UTC)
    assert retention_start(Catalogue.from_yaml("retention_days: 90\nmetrics: []\n"), now) == now - timedelta(days=90)
    assert retention_start(Catalogue.from_yaml("retention_days: null\nmetrics: []\n"), now) is None
