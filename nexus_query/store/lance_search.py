"""Searches through LanceDB: the vector index for spaces too large to hold in memory, and full text for
hybrid search. Both also flat-scan rows the indexes do not cover yet, so nothing is missed between
``ensure_indexes`` runs. Metadata filters run as a LanceDB pre-filter that keeps a superset of the matches,
then exactly (``filters``), so every path selects the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from lancedb.query import LanceVectorQueryBuilder, MatchQuery

from nexus_query.store.filters import Condition, matching_rows, sql_prefilter
from nexus_query.store.schema import FTS_COLUMN, ROW_COLUMNS, VECTOR_COLUMN

if TYPE_CHECKING:
    import lancedb
    from lancedb.query import LanceQueryBuilder

# Chosen with bench/query_bench.py. Spaces that fit in memory never use the vector index (exact numpy is
# faster), so it serves large spaces: IVF_RQ with 1-bit codes and sqrt(rows) partitions, probing 30% of
# the partitions and re-ranking 40x the asked-for rows exactly, kept recall@10 >= 0.98 at 100k x 384
# (fewer probes or less refinement fell to 0.92-0.97 on clustered data).
REFINE_FACTOR = 40
NPROBES_FRACTION = 0.3


def _filtered_top(build: Callable[[int], LanceQueryBuilder], n: int,
                  conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    """Run ``build(limit)`` with a growing limit until ``n`` rows pass the exact filter or LanceDB has
    no more candidates, so a filtered page is never short while matches exist."""
    limit = max(n, 1)
    for _ in range(32):  # the limit grows fourfold, so this ends long before 32 rounds
        rows = build(limit).to_arrow().to_pylist()
        matching = matching_rows(rows, conditions)
        if len(matching) >= n or len(rows) < limit:
            return matching[:n]
        limit *= 4
    return matching[:n]


def lance_vector_top(table: lancedb.table.Table, query: np.ndarray, n: int,
                     conditions: Sequence[Condition] = ()) -> list[dict[str, Any]]:
    """The ``n`` best rows by dot product through LanceDB: its vector index with exact re-ranking of
    ``REFINE_FACTOR`` x as many candidates where one exists, plus a flat scan of rows not yet indexed."""
    where = sql_prefilter(conditions)

    nprobes = max(20, math.ceil(NPROBES_FRACTION * math.sqrt(table.count_rows())))  # partitions: sqrt(rows)

    def build(limit: int) -> LanceQueryBuilder:
        search = table.search(query, vector_column_name=VECTOR_COLUMN)
        if not isinstance(search, LanceVectorQueryBuilder):  # a vector query always builds one
            raise TypeError(f"LanceDB built a {type(search).__name__} for a vector query")
        search = (search.distance_type("dot").select([*ROW_COLUMNS, "_rowaddr", "_distance"])
                  .nprobes(nprobes).refine_factor(REFINE_FACTOR).limit(limit))
        return search.where(where, prefilter=True) if where else search

    rows = _filtered_top(build, n, conditions)
    for r in rows:
        r["score"] = 1.0 - float(r.pop("_distance"))  # LanceDB's dot distance is 1 - dot
    return rows


def text_top(table: lancedb.table.Table, text: str, n: int,
             conditions: Sequence[Condition] = (), *, with_vectors: bool = False) -> list[dict[str, Any]]:
    """The ``n`` best rows by BM25 on ``text`` (the full-text index, and a flat scan of rows it does not
    cover yet). The query is matched as plain terms: no query syntax, so any input is safe.
    ``with_vectors`` adds each row's ``vector``, so hybrid search can score text hits by cosine too."""
    where = sql_prefilter(conditions)
    # MatchQuery is a pydantic model whose options have defaults; mypy runs without pydantic's plugin
    match = MatchQuery(text, FTS_COLUMN)  # type: ignore[call-arg]
    columns = [*ROW_COLUMNS, "_rowaddr", "_score", *([VECTOR_COLUMN] if with_vectors else [])]

    def build(limit: int) -> LanceQueryBuilder:
        search = table.search(match, query_type="fts").select(columns).limit(limit)
        return search.where(where) if where else search

    rows = _filtered_top(build, n, conditions)
    for r in rows:
        r["score"] = float(r.pop("_score"))
    return rows
