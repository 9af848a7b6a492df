"""Which stored KPI facts a refresh retires, and why: the replacement policy, without writing anything.

A fact's id is a hash of (tenant, series, fact type, onset): an episode's onset, or a change's window.
Its ``source`` names the same onset (``kpi/{series}/{onset}``; ``kpi/{series}/stale`` for the one fact
about the present). An episode that is still going is re-said by every run with the same id, so the
hourly run updates it in place ("has been above ... since 14:00") and closes it in place ("was above ...
from 14:00 to 17:00"). A run speaks for every window it judged, so after upserting its facts it deletes,
in that order (readers never see a judged window without its facts):

1. facts of the judged windows that this run did not produce: a condition that no longer holds once
   late readings arrived, or a stale-data fact once readings resumed;
2. facts of windows that began more than the catalogue's ``retention_days`` before the run;
3. facts of metrics the catalogue no longer lists (the catalogue is the allow-list).

Facts of earlier windows stay: each names its window or its episode's span, so it remains true, and
together they are the history an agent can ask about. An hourly run judges the latest complete window
(and re-says episodes that ended in the last day, so a skipped tick still closes them); a history run
(backfill) judges every complete window within the retention, one fact per episode. The pipelines'
``kpi_fact_docs`` (nexus_pipelines.kpi.refresh) embeds and writes; this module only decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from nexus_query.kpi.catalogue import Catalogue
from nexus_query.store import SpaceTable


def retention_start(catalogue: Catalogue, now: datetime) -> datetime | None:
    """The start of the oldest window a run at ``now`` keeps facts of; None when the catalogue keeps all."""
    if catalogue.retention_days is None:
        return None
    return now - timedelta(days=catalogue.retention_days)


def kpi_rows(space: SpaceTable) -> list[tuple[str, str]]:
    """(id, source) of the space's KPI rows."""
    if space.count() == 0:
        return []
    table = (space.table.search().where("type = 'kpi'").select(["id", "source"]).limit(None).to_arrow())
    return list(zip(table.column("id").to_pylist(), table.column("source").to_pylist(), strict=True))


def parse_source(source: str) -> tuple[str, str] | None:
    """``kpi/{series}/{window start | stale}`` → (metric, suffix); None for anything else."""
    if not source.startswith("kpi/") or "/" not in source[4:]:
        return None
    series, suffix = source[4:].rsplit("/", 1)
    return series.split("{", 1)[0], suffix


def plan_retirement(rows: list[tuple[str, str]], *, new_ids: set[str], judged_sources: set[str],
                    catalogued: set[str], cutoff: str | None) -> dict[str, list[str]]:
    """Which KPI rows go, and why (superseded / expired / uncatalogued). Pure, so the policy is testable
    without a table."""
    plan: dict[str, list[str]] = {"superseded": [], "expired": [], "uncatalogued": []}
    for row_id, source in rows:
        if row_id in new_ids:
            continue
        parsed = parse_source(source)
        if parsed is None:
            continue
        metric, suffix = parsed
        if source in judged_sources:
            plan["superseded"].append(row_id)
        elif metric not in catalogued:
            plan["uncatalogued"].append(row_id)
        elif cutoff is not None and suffix not in ("stale", "status") and suffix < cutoff:
            plan["expired"].append(row_id)
    return plan
