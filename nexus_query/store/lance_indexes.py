"""Upkeep of a space's LanceDB indexes: the full-text index from the first row, an IVF_RQ vector index
once the space is large enough to be searched through LanceDB, and ``optimize`` once the unindexed tail
grows. Searching them is ``lance_search``'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from nexus_query.store.commits import retry_commit
from nexus_query.store.schema import FTS_COLUMN, VECTOR_COLUMN

if TYPE_CHECKING:
    import lancedb
    from lancedb.index import FTS, IvfRq

    from nexus_query.store.space import SpaceTable

# Spaces that fit in memory never use the vector index (``snapshots`` is exact and faster); this many
# rows is where a space may not fit (chosen with bench/query_bench.py, see ``lance_search``).
VECTOR_INDEX_MIN_ROWS = 50_000
# Lance's optimize() always cleans up; this age keeps every version (cleanup is maintenance's job).
KEEP_EVERY_VERSION = timedelta(days=36_500)
# Rows not yet in the indexes (appended since the last build) that trigger ``optimize``.
MAX_UNINDEXED_FRACTION = 0.1
MAX_UNINDEXED_ROWS = 20_000
# How the full-text index splits text into terms (``fts_index_config``); ``scoring``'s text evidence splits
# with the same options, so a term it credits is one the index finds.
FTS_TOKENIZER: dict[str, Any] = {"base_tokenizer": "simple", "language": "English", "lower_case": True,
                                 "stem": True, "remove_stop_words": True, "ascii_folding": True}


@dataclass(frozen=True)
class IndexReport:
    """What ``ensure_indexes`` found and did: the maintenance job records it per space."""

    rows: int
    vector_index: bool
    fts_index: bool
    created: tuple[str, ...] = ()
    optimized: bool = False
    unindexed_rows: int = 0


def _indices(table: lancedb.table.Table) -> dict[str, Any]:
    return {config.columns[0]: config for config in table.list_indices()}


def fts_index_config() -> FTS:
    """The one full-text index setting, for the first build and every rebuild (erasure): LanceDB's English
    defaults, stemmed, stop words dropped and accents folded, so "tents" finds "tent" and "cafe" finds
    "café". LanceDB scans the rows an index does not cover yet with that index's own tokenizer, and the index
    is built at a space's first write, so a row matches the same terms indexed or not. Measured with
    bench/retrieval_eval.py: whole unstemmed tokens with stop words kept cost hybrid search 0.026 nDCG@10."""
    from lancedb.index import FTS

    return FTS(**FTS_TOKENIZER)


def vector_index_config(rows: int) -> IvfRq:
    """The IVF_RQ vector index for a table of ``rows`` rows (about sqrt(rows) partitions of 256+ rows)."""
    from lancedb.index import IvfRq

    return IvfRq(distance_type="dot", num_partitions=max(1, min(int(math.sqrt(rows)), rows // 256)))


def has_fts_index(table: lancedb.table.Table) -> bool:
    return FTS_COLUMN in _indices(table)


def ensure_fts_index(table: lancedb.table.Table) -> bool:
    """Create the full-text index when missing (also on an empty table: new rows are searched by a flat
    scan until ``optimize`` folds them in). Returns whether it created one. Writers of a new space race to
    build it: the build that loses (a commit conflict) looks again at the latest version and finds the
    winner's."""
    def create() -> bool:
        if has_fts_index(table):  # on a retry: the writer whose build preempted ours made it
            return False
        try:
            table.create_index(FTS_COLUMN, config=fts_index_config(), replace=False)
        except ValueError:  # "already exists": another writer's build committed after our look
            table.checkout_latest()
            if not has_fts_index(table):
                raise
            return False
        return True

    created, _ = retry_commit(table, create)
    return created


def _create_vector_index(table: lancedb.table.Table, rows: int) -> bool:
    if VECTOR_COLUMN in _indices(table):  # on a retry: a concurrent maintenance run built it
        return False
    table.create_index(VECTOR_COLUMN, config=vector_index_config(rows))
    return True


def ensure_indexes(space: SpaceTable, *, vector_min_rows: int = VECTOR_INDEX_MIN_ROWS) -> IndexReport:
    """Keep a space's LanceDB indexes fit for querying. Idempotent; call it after writes.

    - full-text index on ``text`` (hybrid search) from the first row;
    - IVF_RQ vector index once the space has ``vector_min_rows`` rows;
    - ``optimize`` (index the new rows, compact small fragments) once the unindexed tail is large.
    Old versions are never removed here (cursors may still read them): cleanup is the maintenance
    job's, with a retention counted from when a version stopped being the latest.
    """
    space._check_writable()
    table = space.table
    rows = table.count_rows()
    created: list[str] = []
    if ensure_fts_index(table):
        created.append(FTS_COLUMN)
    indices = _indices(table)
    if VECTOR_COLUMN not in indices and rows >= vector_min_rows:
        if retry_commit(table, lambda: _create_vector_index(table, rows))[0]:
            created.append(VECTOR_COLUMN)
        indices = _indices(table)
    unindexed = max((int(getattr(c, "num_unindexed_rows", 0) or 0) for c in indices.values()), default=0)
    optimized = False
    if unindexed and unindexed >= min(MAX_UNINDEXED_ROWS, max(1, int(rows * MAX_UNINDEXED_FRACTION))):
        retry_commit(table, lambda: table.optimize(cleanup_older_than=KEEP_EVERY_VERSION))
        optimized = True
        unindexed = max((int(getattr(c, "num_unindexed_rows", 0) or 0) for c in _indices(table).values()),
                        default=0)
    return IndexReport(rows=rows, vector_index=VECTOR_COLUMN in indices, fts_index=FTS_COLUMN in indices,
                       created=tuple(created), optimized=optimized, unindexed_rows=unindexed)
