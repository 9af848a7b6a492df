"""Refreshing a space's KPI facts: judge the source, write the facts, retire the ones that no longer hold.

The judging is the fact worker's (nexus_query.kpi) and the retirement policy is
nexus_query.kpi.retirement (read it for how facts are replaced); what is left here is the write: facts
are embedded and upserted through the pipelines' loader, then the retired rows are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from nexus_pipelines.common.load import IngestStats, upsert_records
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.kpi import Fact, KpiSource, SeriesReport, analyse_source
from nexus_query.kpi.retirement import kpi_rows, plan_retirement, retention_start
from nexus_query.kpi.windows import from_datetime, iso
from nexus_query.store import SpaceTable


@dataclass
class RefreshResult:
    reports: list[SeriesReport]
    uncatalogued: list[str]
    stats: IngestStats
    retired: dict[str, int] = field(default_factory=dict)  # superseded / expired / uncatalogued

    @property
    def facts(self) -> list[Fact]:
        return [f for r in self.reports for f in r.facts]


def refresh_facts(space: SpaceTable, ctx: RequestContext, source: KpiSource, provider: EmbeddingProvider, *,
                  history: bool = False, now: datetime | None = None) -> RefreshResult:
    """Judge ``source`` as of ``now`` and make the space's KPI facts match what the run found."""
    now = now or datetime.now(UTC)
    since = retention_start(source.catalogue, now)
    reports, uncatalogued = analyse_source(source.series, source.catalogue, tenant=ctx.tenant_id,
                                           history=history, as_of=now, since=since)
    facts = [f for r in reports for f in r.facts]
    stats = upsert_records(space, ctx, [f.to_record() for f in facts], provider)
    judged: set[str] = set().union(*(r.sources for r in reports))
    retire = plan_retirement(kpi_rows(space), new_ids={f.id for f in facts}, judged_sources=judged,
                             catalogued=set(source.catalogue.metrics),
                             cutoff=iso(from_datetime(since)) if since else None)
    stats.deleted = space.delete_ids([i for ids in retire.values() for i in ids])
    return RefreshResult(reports, uncatalogued, stats, {k: len(v) for k, v in retire.items()})
