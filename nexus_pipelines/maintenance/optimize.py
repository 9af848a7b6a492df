"""Per-space maintenance: compact small fragments, fold new rows into the indexes (creating the ones a
space has grown into) and delete old versions, but never a version a live cursor may still read.

A cursor pins the versions that were latest when page 1 ran, and lives ``cursor.ttl_seconds``. A version
can be pinned from its creation until its successor is created, so it stays readable until ``retention``
(at least the cursor lifetime) after it stopped being the latest: Lance's own ``older_than`` measures age
from creation, which would drop a long-lived version the moment it is superseded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from nexus_query.errors import InvalidRequest
from nexus_query.store import SpaceTable
from nexus_query.store.commits import retry_commit
from nexus_query.store.lance_indexes import ensure_indexes

# Workers' clocks differ a little; versions are kept this much beyond the cursor lifetime.
CLOCK_MARGIN = timedelta(hours=1)
# Small fragments a table may gather from appends before a write compacts it (``compact_if_fragmented``).
SMALL_FRAGMENTS_BEFORE_COMPACTION = 8


@dataclass(frozen=True)
class OptimizeReport:
    rows: int
    version_before: int
    version_after: int
    fragments_before: int
    fragments_after: int
    versions_removed: int
    versions_kept: int
    oldest_kept_version: int
    retention_seconds: int
    indexes_created: tuple[str, ...]
    unindexed_rows: int
    conflicts_retried: int
    seconds: float

    def as_metadata(self) -> dict[str, Any]:
        return {"rows": self.rows, "table_version": self.version_after,
                "fragments_before": self.fragments_before, "fragments_after": self.fragments_after,
                "versions_removed": self.versions_removed, "versions_kept": self.versions_kept,
                "oldest_kept_version": self.oldest_kept_version, "retention_hours": self.retention_seconds / 3600,
                "indexes_created": ", ".join(self.indexes_created) or "none", "unindexed_rows": self.unindexed_rows,
                "commit_conflicts_retried": self.conflicts_retried, "seconds": round(self.seconds, 3)}


def default_retention(cursor_ttl_seconds: int) -> timedelta:
    return timedelta(seconds=cursor_ttl_seconds) + CLOCK_MARGIN


def cleanup_age(versions: Sequence[dict[str, Any]], retention: timedelta, now: datetime) -> tuple[timedelta, int]:
    """Lance's ``older_than`` that keeps every version which was the latest within ``retention``, and the
    oldest version it keeps. ``versions`` as ``Table.list_versions()`` gives them (naive local times)."""
    ordered = sorted(versions, key=lambda v: v["version"])
    horizon = now - retention
    keep = ordered[-1]
    for version, successor in pairwise(ordered):
        if successor["timestamp"] > horizon:  # it was still the latest after the horizon
            keep = version
            break
    # Anything created before the oldest version kept may go; a second of slack for timestamp rounding.
    return max(retention, now - keep["timestamp"] + timedelta(seconds=1)), int(keep["version"])


def optimize_space(space: SpaceTable, cursor_ttl_seconds: int, retention: timedelta | None = None) -> OptimizeReport:
    """Compact, refresh indexes and clean up one space. Safe while others write (conflicts are retried)."""
    minimum = timedelta(seconds=cursor_ttl_seconds)
    retention = retention if retention is not None else default_retention(cursor_ttl_seconds)
    if retention < minimum:
        raise InvalidRequest(f"retention {retention} is shorter than a cursor's lifetime ({minimum}): cursors "
                             "issued within it would break", retention_seconds=int(retention.total_seconds()))
    started = time.perf_counter()
    table = space.table
    table.checkout_latest()
    version_before, fragments_before = space.version, _fragments(space)
    versions = table.list_versions()
    older_than, oldest_kept = cleanup_age(versions, retention, datetime.now())  # Lance's clock: local, naive
    _, conflicts = retry_commit(table, lambda: table.optimize(cleanup_older_than=older_than))
    indexes = ensure_indexes(space)
    table.checkout_latest()
    after = table.list_versions()
    return OptimizeReport(
        rows=space.count(), version_before=version_before, version_after=space.version,
        fragments_before=fragments_before, fragments_after=_fragments(space),
        versions_removed=len({v["version"] for v in versions} - {v["version"] for v in after}),
        versions_kept=len(after), oldest_kept_version=oldest_kept,
        retention_seconds=int(retention.total_seconds()), indexes_created=indexes.created,
        unindexed_rows=indexes.unindexed_rows, conflicts_retried=conflicts, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class FragmentCounts:
    fragments: int
    small: int  # fragments with few rows: what compaction merges


def fragment_counts(space: SpaceTable) -> FragmentCounts:
    """The table's fragments, and how many are small. lancedb 0.40 types ``Table.stats()`` as its
    ``TableStatistics`` dataclass but returns a dict; either is read."""
    stats: Any = space.table.stats()
    found = stats["fragment_stats"] if isinstance(stats, dict) else vars(stats.fragment_stats)
    return FragmentCounts(int(found["num_fragments"]), int(found["num_small_fragments"]))


def _fragments(space: SpaceTable) -> int:
    return fragment_counts(space).fragments


def compact_if_fragmented(space: SpaceTable, cursor_ttl_seconds: int,
                          small_fragments: int = SMALL_FRAGMENTS_BEFORE_COMPACTION) -> OptimizeReport | None:
    """Once writes have fragmented the table (many small appends made search several times slower until
    ``optimize()`` ran) or left rows outside its indexes, run the space's maintenance: compaction, index
    refresh, and a cleanup that spares every version a live cursor may read. None when not needed. The
    writers (the ingest run) call it, so a space stays fast between two nightly maintenance runs."""
    small = fragment_counts(space).small
    stale_index = any(index.num_unindexed_rows for index in space.table.list_indices())
    if small < small_fragments and not stale_index:
        return None
    return optimize_space(space, cursor_ttl_seconds)
