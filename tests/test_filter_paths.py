"""Exact filters on every path: the same filters run through the in-memory snapshot (``Snapshot.mask``)
and through LanceDB (the ``sql_superset`` prefilter, then the exact check) give the same rows as the
plain definition of equality: numbers by value (integers of any size exactly, 0 equals -0.0, 1 equals
1.0), booleans only as booleans, lists and objects element by element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.query import parse_filters
from nexus_query.store import Record, SpaceStore, build_rows
from nexus_query.store.index import _exact, _where, snapshot_cache

ACME = RequestContext("acme")
INFO = EmbedderInfo(model="filter-paths", dimension=8)
POOL = [0, -0.0, 0.0, 1, 1.0, -1, -1.0, 2**53, 2**53 + 1, float(2**53), 2**53 - 1, 2**63, 2**63 + 1, 2**64,
        -(2**63) - 1, 10**30, float(10**30), 1e16, 10**16, 0.5, -0.5, 3, 30, True, False, None, "0", "1", "",
        "-0.0", [1], [1.0], [0, -0.0], [True], {"a": 1}, {"a": 1.0}, {"a": True}]


def equal(a, b) -> bool:
    """The definition: what a filter value matches."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b  # Python compares int and float exactly
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def oracle(meta: dict, op: str, arg) -> bool:
    present = "x" in meta
    if op == "$exists":
        return present == arg
    values = arg if op in ("$in", "$nin") else [arg]
    hit = present and any(equal(meta["x"], v) for v in values)
    return hit if op in ("$eq", "$in") else not hit


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """One row per pool value under key ``x``, and rows without it, in a real LanceDB space."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXUS_HOME", str(tmp_path_factory.mktemp("filters-home")))
        mp.delenv("NEXUS_CONFIG", raising=False)
        store = SpaceStore()
        metas = [{"x": v, "i": i} for i, v in enumerate(POOL)] + [{"y": 1}, {}]
        records = [Record(text=f"row {i}", source=f"row-{i}", metadata=m) for i, m in enumerate(metas)]
        vectors = np.random.default_rng(3).normal(size=(len(records), INFO.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        space = store.open_or_create(ACME, "filters", INFO)
        space.upsert(build_rows(ACME, records, vectors, INFO), INFO)
        rows = space.table.search().select(["id", "metadata", "source"]).limit(None).to_list()
        yield space, {r["id"]: metas[int(r["source"].split("-")[1])] for r in rows}


def memory_path(space, conditions) -> set[str]:
    snapshot = snapshot_cache.get(space.table, space.location.dataset_uri)
    assert snapshot is not None
    mask = snapshot.mask(conditions)
    ids = snapshot.rows.column("id").to_pylist()
    return {i for i, keep in zip(ids, mask if mask is not None else [True] * len(ids), strict=True) if keep}


def lance_path(space, conditions) -> tuple[set[str], set[str]]:
    """(rows the prefilter lets through, rows left after the exact check)."""
    where = _where(conditions)
    search = space.table.search()
    if where:
        search = search.where(where)
    rows = search.select(["id", "metadata"]).limit(None).to_list()
    return {r["id"] for r in rows}, {r["id"] for r in _exact(rows, conditions)}


values = st.sampled_from(POOL)
scalars = st.sampled_from([v for v in POOL if not isinstance(v, (list, dict))])
filters = st.one_of(
    scalars.map(lambda v: ("$eq", v, v)),
    values.map(lambda v: ("$eq", v, {"$eq": v})),
    values.map(lambda v: ("$ne", v, {"$ne": v})),
    st.lists(values, min_size=1, max_size=4).map(lambda vs: ("$in", vs, {"$in": vs})),
    st.lists(values, min_size=1, max_size=4).map(lambda vs: ("$nin", vs, {"$nin": vs})),
    st.booleans().map(lambda b: ("$exists", b, {"$exists": b})),
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(spec=filters)
def test_memory_and_lancedb_paths_agree_with_the_definition_of_equality(space, spec):
    table, metas = space
    op, arg, raw = spec
    conditions = parse_filters({"x": raw})
    expected = {row_id for row_id, meta in metas.items() if oracle(meta, op, arg)}
    prefiltered, lance = lance_path(table, conditions)
    assert expected <= prefiltered  # the prefilter never drops a match
    assert lance == expected
    assert memory_path(table, conditions) == expected


@pytest.mark.parametrize("value,neighbour", [(2**53 + 1, 2**53), (2**63 + 1, 2**63), (10**30 + 1, 10**30)])
def test_large_integers_never_match_their_neighbours(space, value, neighbour):
    table, metas = space
    conditions = parse_filters({"x": neighbour})
    matched = {metas[i]["x"] for i in memory_path(table, conditions)} | {
        metas[i]["x"] for i in lance_path(table, conditions)[1]}
    assert value not in matched and neighbour in matched


def test_zero_matches_negative_zero_on_both_paths(space):
    table, metas = space
    conditions = parse_filters({"x": 0})
    for found in (memory_path(table, conditions), lance_path(table, conditions)[1]):
        assert sorted(repr(metas[i]["x"]) for i in found) == ["-0.0", "0", "0.0"]
