"""Deleting the document rows whose documents left the source, never all of them by accident."""

from __future__ import annotations

from dataclasses import dataclass

from nexus_query.landing import INGEST_TYPES
from nexus_query.store import SpaceTable
from nexus_query.store.filters import sql_string


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    refused_empty_source: bool  # the source was empty, so nothing was deleted (see ``prune_departed``)


def prune_departed(space: SpaceTable, keep_ids: set[str], *, allow_empty_source: bool = False) -> PruneResult:
    """Delete the document rows whose ids are not in ``keep_ids`` (documents that left the source, tail
    chunks of documents that got shorter). Only rows the ingest pipeline owns (types it lands) are
    candidates: KPI facts belong to ``kpi_fact_docs``, which replaces its own. An empty source usually
    means a broken mount or a wrong path rather than a wish to wipe the space, so it deletes nothing
    unless ``allow_empty_source``."""
    if not keep_ids and not allow_empty_source:
        return PruneResult(0, refused_empty_source=space.count() > 0)
    if space.count() == 0:
        return PruneResult(0, False)
    owned = ", ".join(sql_string(t) for t in INGEST_TYPES)
    stale = [i for batch in space.table.search().where(f"type IN ({owned})").select(["id"]).limit(None)
             .to_batches(65536) for i in batch.column("id").to_pylist() if i not in keep_ids]
    return PruneResult(space.delete_ids(stale), False)
