"""A picture per series for the Dagster UI: readings, window values, thresholds, and what the facts speak
for shaded by fact type: episodes as spans from onset to end (a dotted edge while they last), other facts
their window."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime

import dagster as dg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nexus_pipelines.pictures import (
    PictureLinks,
    figure_png,
    markdown_text,
    png_markdown,
    store_picture,
    thumbnail_png,
)
from nexus_query.kpi import Fact, SeriesReport
from nexus_query.kpi.windows import from_datetime, to_datetime, window_code
from nexus_query.paths import TenantFiles

COLORS = {"change": "#d62728", "trend": "#9467bd", "outside_band": "#ff7f0e", "threshold_breach": "#8c564b",
          "new_extreme": "#e377c2", "missing_data": "#7f7f7f", "stale_data": "#bcbd22", "spike": "#17becf"}
SHOWN_WINDOWS = 168  # the chart shows at most the last week of hourly windows


def chart_png(report: SeriesReport) -> bytes:
    return figure_png(chart_figure(report))


def chart_figure(report: SeriesReport) -> Figure:
    fig = Figure(figsize=(9, 3.2), dpi=90)
    ax = fig.add_subplot()
    first = int(report.starts_us[max(0, report.starts_us.size - SHOWN_WINDOWS)]) if report.starts_us.size else 0
    ts, values = report.series.timestamps_us, report.series.values
    keep = ts >= first
    readings = [to_datetime(t) for t in ts[keep]]
    ax.plot(readings, values[keep], lw=0.6, color="#9ecae1", label="readings")  # type: ignore[arg-type]  # matplotlib's stubs omit the datetimes its date converter takes
    shown = report.starts_us >= first
    window_starts = [to_datetime(t) for t in report.starts_us[shown]]
    ax.step(window_starts, report.values[shown], where="post", lw=1.4,  # type: ignore[arg-type]  # matplotlib's stubs omit the datetimes its date converter takes
            color="#1f77b4", label=f"{report.spec.aggregation} per {window_code(report.window)}")
    for side, limit in (("above", report.spec.above), ("below", report.spec.below)):
        if limit is not None:
            ax.axhline(limit, color="#8c564b", ls="--", lw=0.8, label=f"threshold ({side} {limit:g})")
    flagged = set()
    for fact in report.facts:
        if fact.type == "status":  # the latest window, said in words: no span to shade
            continue
        start, end = fact_span(fact)
        start = max(start, first)
        if end <= start:
            continue
        ax.axvspan(to_datetime(start), to_datetime(end), color=COLORS[fact.type], alpha=0.25,  # type: ignore[arg-type]  # matplotlib's stubs omit the datetimes its date converter takes
                   lw=0)
        if fact.episode_start is not None and fact.episode_end is None:  # still going: an open right edge
            ax.axvline(to_datetime(end), color=COLORS[fact.type], lw=1.2, ls=":")  # type: ignore[arg-type]  # matplotlib's stubs omit the datetimes its date converter takes
        flagged.add(fact.type)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    unit = report.spec.unit or report.series.unit
    ax.set_ylabel(unit)
    ax.set_title(f"{report.spec.label} — {report.series.key} (UTC)".replace("$", r"\$"), fontsize=10)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=COLORS[t], alpha=0.4, label=t) for t in sorted(flagged)]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.margins(x=0.01)
    return fig


def chart_file_name(series_key: str) -> str:
    """A safe, stable file name per series (any series key maps to one name, distinct keys to distinct names)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", series_key).strip("._")[:80] or "series"
    return f"{readable}-{hashlib.sha256(series_key.encode()).hexdigest()[:8]}.png"


def charts_metadata(files: TenantFiles, links: PictureLinks, space_id: str, reports: Sequence[SeriesReport]) -> dict:
    """Each report's chart stored in the projection store at ``kpi/{space}/charts/`` (each run replaces the
    space's charts: they always show the latest run), each linked from its own URL entry (``chart: <series>``)
    that opens with a click; only the first chart is inline, as a thumbnail, so a run adds tens of KB to the
    event log, not a dozen pictures."""
    lines: list[str] = []
    entries: dict[str, dg.MetadataValue] = {}
    for number, report in enumerate(reports):
        png = chart_png(report)
        url = store_picture(files, links, png, "kpi", space_id, "charts", chart_file_name(report.series.key))
        entries[f"chart: {report.series.key}"] = dg.MetadataValue.url(url)
        if number == 0:
            lines += [png_markdown(thumbnail_png(png), markdown_text(report.series.key), link=url), ""]
        lines.append(f"- [{markdown_text(report.series.key)}]({url}): {len(report.facts)} fact(s)")
    return {"charts": dg.MetadataValue.md("\n".join(lines) or "_no series_"), **entries}


def fact_span(fact: Fact) -> tuple[int, int]:
    """(start, end) in µs of what a fact speaks for: an episode from its onset to its end (or to the window
    it was last checked on while it lasts), any other fact its window."""
    if fact.episode_start is not None:
        start = from_datetime(datetime.fromisoformat(fact.episode_start))
        end = fact.episode_end or fact.window_end
        return start, from_datetime(datetime.fromisoformat(end))
    return (from_datetime(datetime.fromisoformat(fact.window_start)),
            from_datetime(datetime.fromisoformat(fact.window_end)))

