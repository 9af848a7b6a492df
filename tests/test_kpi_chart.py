"""The chart of a series in the Dagster UI and the Markdown around it: whole episodes, a labelled threshold,
tenant text that stays text."""

from dataclasses import replace
from datetime import timedelta

from matplotlib.dates import num2date

from nexus_pipelines.kpi.chart import COLORS, chart_figure, charts_metadata
from nexus_pipelines.pictures import PictureLinks, markdown_text
from nexus_query.config import default_config
from nexus_query.context import RequestContext
from nexus_query.kpi import MetricSpec, analyse_series
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from tests.helpers import END, READINGS_PER_HOUR, noisy, series

SPEC = MetricSpec("checkout_latency_p95", label="p95 | [latency](http://x) *of* <b>checkout</b>", unit="ms",
                  direction="down_is_good", window="1h", seasonality="none", above=500)


def a_week_with_a_three_hour_excursion():
    values = noisy(hours=7 * 24, seed=11)
    values[-8 * READINGS_PER_HOUR:-5 * READINGS_PER_HOUR] *= 1.3
    return analyse_series(series(values, end=END - timedelta(hours=4)), SPEC)


def test_the_chart_shades_an_episodes_whole_span_and_names_the_threshold_in_its_legend():
    report = a_week_with_a_three_hour_excursion()
    (episode,) = [f for f in report.facts if f.type == "outside_band"]
    ax = chart_figure(report).axes[0]
    spans = [p for p in ax.patches if p.get_facecolor()[:3] == tuple(int(COLORS["outside_band"][i:i + 2], 16) / 255
                                                                     for i in (1, 3, 5))]
    (span,) = spans
    left, width = span.get_x(), span.get_width()
    assert num2date(left).isoformat().replace("+00:00", "Z") == episode.episode_start
    assert num2date(left + width).isoformat().replace("+00:00", "Z") == episode.episode_end
    assert width * 24 == 3  # three hours, not a one-hour sliver
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "threshold (above 500)" in legend and "outside_band" in legend and "status" not in legend


def test_tenant_text_in_the_dagster_markdown_is_escaped(nexus_home):
    assert markdown_text("p95 | [x](http://e) *b* <img>\n# h_1 `c` ~s~ $5") == \
        r"p95 \| \[x\](http://e) \*b\* \<img\> # h\_1 \`c\` \~s\~ \$5"
    report = a_week_with_a_three_hour_excursion()
    key = "checkout_latency_p95{region=eu [a](http://x)}"
    report.series = replace(report.series, dimensions=(("region", "eu [a](http://x)"),))
    assert report.series.key == key
    acme = RequestContext("acme")
    files = TenantFiles.for_tenant(RoutingRegistry.default().blob_route(acme), acme)
    links = PictureLinks(default_config(), "dev", "acme", "default")
    md = charts_metadata(files, links, "main", [report])["charts"].value
    assert "[a](http://x)" not in md and r"\[a\](http://x)" in md
