"""Purging a space's Lance table: a delete only marks rows deleted; their text stays in the data file, in
the full-text index and in every older version. So the surviving rows of the touched fragments are rewritten
(the fragments then hold no live row and leave the table), the indexes are rebuilt, and every older version
is cleaned up at once. This overrides the cursor retention: a cursor pinned to a removed version gets
``nexus.cursor_invalid`` (410). Idempotent, as every purge: a re-run finishes the job or reports zeros.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from functools import partial

from nexus_query.erasure.model import ErasurePlan
from nexus_query.erasure.target import ErasureTarget
from nexus_query.store.commits import retry_commit
from nexus_query.store.filters import sql_string
from nexus_query.store.lance_indexes import fts_index_config, vector_index_config
from nexus_query.store.schema import FTS_COLUMN, VECTOR_COLUMN
from nexus_query.store.space import SpaceTable

_IN_LIST = 500
_FRAGMENT_BITS = 32  # a Lance row address is fragment id << 32 | offset


def _erased_predicate(plan: ErasurePlan) -> list[str]:
    """SQL predicates (in chunks) matching every erased row: by document and by row id."""
    clauses: list[str] = []
    for column, values in (("source", sorted(plan.doc_ids)), ("id", sorted(plan.row_ids))):
        clauses.extend(f"{column} IN ({', '.join(sql_string(v) for v in values[i:i + _IN_LIST])})"
                       for i in range(0, len(values), _IN_LIST))
    return clauses


def versions_holding(space: SpaceTable, plan: ErasurePlan) -> list[int]:
    """Every stored version of the table that still has an erased row (read through LanceDB)."""
    predicates = _erased_predicate(plan)
    if not predicates:
        return []
    table = space.table
    holding: list[int] = []
    try:
        for version in sorted(int(v["version"]) for v in table.list_versions()):
            table.checkout(version)
            if any(table.count_rows(p) for p in predicates):
                holding.append(version)
    finally:
        table.checkout_latest()
    return holding


def purge_rows(space: SpaceTable | None, plan: ErasurePlan) -> dict[str, int]:
    """Delete the erased rows, move the surviving rows of their fragments into new ones, rebuild the
    indexes and remove every older version, when any version still holds an erased row."""
    counts = {"rows_deleted": 0, "rows_rewritten": 0, "versions_removed": 0, "indexes_rebuilt": 0}
    if space is None:
        return counts
    table = space.table
    table.checkout_latest()
    if not versions_holding(space, plan):
        return counts
    predicates = _erased_predicate(plan)
    fragments: set[int] = set()
    for predicate in predicates:
        addresses = table.search().where(predicate).select(["_rowaddr"]).limit(None).to_arrow()
        fragments.update(int(a) >> _FRAGMENT_BITS for a in addresses.column("_rowaddr").to_pylist())
    fragments.update(plan.fragments)  # a re-run after the delete no longer finds them by predicate
    for predicate in predicates:
        counts["rows_deleted"] += table.count_rows(predicate)
        retry_commit(table, partial(table.delete, predicate))
    for fragment in sorted(fragments):
        # Rewriting a row moves it into a new fragment; a fragment left without live rows is dropped,
        # and with it the data file that still held the erased text.
        where = f"_rowaddr >= {fragment << _FRAGMENT_BITS} AND _rowaddr < {(fragment + 1) << _FRAGMENT_BITS}"
        result, _ = retry_commit(table, partial(table.update, where=where, values_sql={"chunk_index": "chunk_index"}))
        counts["rows_rewritten"] += int(getattr(result, "rows_updated", 0) or 0)
    counts["indexes_rebuilt"] = rebuild_indexes(space)
    before = {int(v["version"]) for v in table.list_versions()}
    with warnings.catch_warnings():  # "removes every version except the latest": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        retry_commit(table, partial(table.optimize, cleanup_older_than=timedelta(0), delete_unverified=True))
    table.checkout_latest()
    counts["versions_removed"] = len(before - {int(v["version"]) for v in table.list_versions()})
    return counts


def rebuild_indexes(space: SpaceTable) -> int:
    """Build the table's indexes anew from its current rows (an index keeps the tokens and vectors of
    rows deleted after it was built until it is replaced)."""
    table, rebuilt = space.table, 0
    columns = {config.columns[0] for config in table.list_indices()}
    if FTS_COLUMN in columns:
        retry_commit(table, partial(table.create_index, FTS_COLUMN, config=fts_index_config(), replace=True))
        rebuilt += 1
    if VECTOR_COLUMN in columns:
        rows = table.count_rows()
        if rows:
            retry_commit(table, partial(table.create_index, VECTOR_COLUMN, config=vector_index_config(rows),
                                        replace=True))
        else:
            table.drop_index(f"{VECTOR_COLUMN}_idx")
        rebuilt += 1
    return rebuilt


def drop_table(target: ErasureTarget) -> dict[str, int]:
    """A whole space: the table goes with every version."""
    space = target.open_table()
    if space is None:
        return {"rows_deleted": 0, "rows_rewritten": 0, "versions_removed": 0, "indexes_rebuilt": 0}
    rows, versions = space.count(), len(space.table.list_versions())
    target.drop_table()
    return {"rows_deleted": rows, "rows_rewritten": 0, "versions_removed": versions, "indexes_rebuilt": 0}
