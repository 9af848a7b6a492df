"""Refreshing a space's KPI facts: judge the source, write the facts, retire the ones that no longer hold.

How facts are replaced. A fact's id is a hash of (tenant, series, fact type, onset): an episode's onset,
or a change's window. Its ``source`` names the same onset (``kpi/{series}/{onset}``;
``kpi/{series}/stale`` for the one fact about the present). An episode that is still going is re-said
by every run with the same id, so the hourly run updates it in place ("has been above ... since 14:00")
and closes it in place ("was above ... from 14:00 to 17:00"). A run speaks for every window it judged,
so after upserting its facts it deletes, in that order (readers never see a judged window without its
facts):

1. facts of the judged windows that this run did not produce: a condition that no longer holds once
   late readings arrived, or a stale-data fact once readings resumed;
2. facts of windows that began more than the catalogue's ``retention_days`` before the run;
3. facts of metrics the catalogue no longer lists (the catalogue is the allow-list).

Facts of earlier windows stay: each names its window or its episode's span, so it remains true, and
together they are the history an agent can ask about. An hourly run judges the latest complete window
(and re-says episodes that ended in the last day, so a skipped tick still closes them); a history run
(backfill) judges every complete window within the retention, one fact per episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nexus_pipelines.common.load import IngestStats, upsert_records
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.kpi import KpiSource, SeriesReport, analyse_source
from nexus_query.kpi.windows import from_datetime, iso
from nexus_query.store import SpaceTable


@dataclass
class RefreshResult:
    reports: list[SeriesReport]
    uncatalogued: list[str]
    stats: IngestStats
    retired: dict[str, int] = field(default_factory=dict)  # superseded / expired / uncatalogued

    @property
    def facts(self):
        return [f for r in self.reports for f in r.facts]


def refresh_facts(space: SpaceTable, ctx: RequestContext, source: KpiSource, provider: EmbeddingProvider, *,
                  history: bool = False, now: datetime | None = None) -> RefreshResult:
    """Judge ``source`` as of ``now`` and make the space's KPI facts match what the run found."""
    now = now or datetime.now(UTC)
    since = None
    if source.catalogue.retention_days is not None:
        since = now - timedelta(days=source.catalogue.retention_days)
    reports, uncatalogued = analyse_source(source.series, source.catalogue, tenant=ctx.tenant_id,
                                           history=history, as_of=now, since=since)
    facts = [f for r in reports for f in r.facts]
    stats = upsert_records(space, ctx, [f.to_record() for f in facts], provider)
    retire = plan_retirement(kpi_rows(space), new_ids={f.id for f in facts},
                             judged_sources=set().union(*(r.sources for r in reports)),
                             catalogued=set(source.catalogue.metrics),
                             cutoff=iso(from_datetime(since)) if since else None)
    stats.deleted = space.delete_ids([i for ids in retire.values() for i in ids])
    return RefreshResult(reports, uncatalogued, stats, {k: len(v) for k, v in retire.items()})


def kpi_rows(space: SpaceTable) -> list[tuple[str, str]]:
    """(id, source) of the space's KPI rows."""
    if space.count() == 0:
        return []
    table = (space.table.search().where("type = 'kpi'").select(["id", "source"]).limit(None).to_arrow())
    return list(zip(table.column("id").to_pylist(), table.column("source").to_pylist()))


def parse_source(source: str) -> tuple[str, str] | None:
    """``kpi/{series}/{window start | stale}`` → (metric, suffix); None for anything else."""
    if not source.startswith("kpi/") or "/" not in source[4:]:
        return None
    series, suffix = source[4:].rsplit("/", 1)
    return series.split("{", 1)[0], suffix


def plan_retirement(rows: list[tuple[str, str]], *, new_ids: set[str], judged_sources: set[str],
                    catalogued: set[str], cutoff: str | None) -> dict[str, list[str]]:
    """Which KPI rows go, and why. Pure, so the policy is testable without a table."""
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
        elif cutoff is not None and suffix != "stale" and suffix < cutoff:
            plan["expired"].append(row_id)
    return plan

