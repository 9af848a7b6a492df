"""Metadata filters: exact matching applied before ranking, so a page is never short while matches
exist; malformed filters are 400s."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_query.context import RequestContext
from nexus_query.errors import InvalidFilter
from nexus_query.query import parse_filters, query
from nexus_query.store import Record, build_rows

ACME = RequestContext("acme")
COLORS = ["red", "green", "blue", "teal"]
N_ROWS = 120


def metadata_for(i: int) -> dict:
    meta = {"color": COLORS[i % 4], "size": i % 3, "even": i % 2 == 0}
    if i % 5 == 0:
        meta["tag"] = None
    if i % 7 == 0:
        meta["size"] = float(i % 3)  # 1.0 must match a filter on 1
    return meta


@pytest.fixture
def vector_space(store, provider):
    """120 rows with known unit vectors (random but fixed) and varied metadata, in a real LanceDB space."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N_ROWS, provider.info.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [Record(text=f"row {i}", source=f"row-{i}", metadata=metadata_for(i)) for i in range(N_ROWS)]
    space = store.open_or_create(ACME, "main", provider.info)
    space.upsert(build_rows(ACME, records, vectors, provider.info), provider.info)
    return vectors


def same(a, b) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def matches(meta: dict, filters: dict) -> bool:
    """The filter semantics, written out plainly for comparison."""
    for key, spec in filters.items():
        op, arg = next(iter(spec.items())) if isinstance(spec, dict) else ("$eq", spec)
        present = key in meta
        if op == "$eq" and not (present and same(meta[key], arg)):
            return False
        if op == "$ne" and present and same(meta[key], arg):
            return False
        if op == "$in" and not (present and any(same(meta[key], a) for a in arg)):
            return False
        if op == "$exists" and present != arg:
            return False
    return True


def all_pages(store, provider, q, filters, top_k):
    pages, cursor = [], None
    for _ in range(N_ROWS + 1):
        result = query(ACME, "main", q, filters=filters, top_k=top_k, cursor=cursor, mode="vector",
                       store=store, provider=provider)
        pages.append(result.hits)
        cursor = result.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("paging did not end")


filter_strategy = st.dictionaries(
    st.sampled_from(["color", "size", "even", "tag", "absent"]),
    st.one_of(st.sampled_from(COLORS), st.integers(0, 2), st.booleans(),
              st.builds(lambda v: {"$in": v}, st.lists(st.sampled_from([*COLORS, 0, 1, 2]), min_size=1, max_size=3)),
              st.builds(lambda v: {"$ne": v}, st.sampled_from([*COLORS, 0, 1])),
              st.builds(lambda v: {"$exists": v}, st.booleans())),
    max_size=2,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters=filter_strategy, top_k=st.integers(1, 25), seed=st.integers(0, 10_000))
def test_filtered_pages_are_full_exact_and_complete(store, provider, vector_space, filters, top_k, seed):
    q = np.random.default_rng(seed).normal(size=provider.info.dimension).astype(np.float32)
    q /= np.linalg.norm(q)
    expected_rows = [i for i in range(N_ROWS) if matches(metadata_for(i), filters)]
    expected = sorted(expected_rows, key=lambda i: -float(vector_space[i] @ q))
    pages = all_pages(store, provider, q, filters, top_k)
    got = [int(h.source.split("-")[1]) for page in pages for h in page]
    # every page but the last is full; the last holds the remainder; nothing is repeated or left out
    assert [len(p) for p in pages[:-1]] == [top_k] * (len(pages) - 1)
    assert len(pages[-1]) == (len(expected) - top_k * (len(pages) - 1) if expected else 0)
    assert sorted(got) == sorted(expected_rows)
    scores = [vector_space[i] @ q for i in got]
    assert all(a >= b - 1e-5 for a, b in zip(scores, scores[1:], strict=False))
    assert np.allclose(scores, [vector_space[i] @ q for i in expected], atol=1e-5)


def test_a_rare_match_far_down_the_ranking_still_fills_the_page(store, provider, vector_space):
    q = -vector_space[3]  # row 3 is the worst match of all for this query
    result = query(ACME, "main", q, filters={"color": "teal", "size": 0}, top_k=5, store=store, provider=provider)
    teal_size0 = [i for i in range(N_ROWS) if metadata_for(i)["color"] == "teal" and metadata_for(i)["size"] == 0]
    assert 3 in teal_size0
    assert len(result.hits) == min(5, len(teal_size0))
    assert all(h.metadata["color"] == "teal" and h.metadata["size"] == 0 for h in result.hits)


def test_numbers_match_by_value_and_booleans_stay_booleans(store, provider, vector_space):
    q = vector_space[0]
    ones = query(ACME, "main", q, filters={"size": 1}, top_k=100, store=store, provider=provider).hits
    assert {int(h.source.split("-")[1]) for h in ones} == {i for i in range(N_ROWS) if i % 3 == 1}
    trues = query(ACME, "main", q, filters={"even": True}, top_k=100, store=store, provider=provider).hits
    assert len(trues) == N_ROWS // 2
    assert query(ACME, "main", q, filters={"even": 1}, top_k=100, store=store, provider=provider).hits == []
    nulls = query(ACME, "main", q, filters={"tag": None}, top_k=100, store=store, provider=provider).hits
    assert len(nulls) == N_ROWS // 5


@pytest.mark.parametrize("filters", [
    "color=red", ["color", "red"], {"color": {"$regex": "r.*"}}, {"color": {"$eq": "a", "$ne": "b"}},
    {"$or": [{"color": "red"}]}, {"": "x"}, {"color": ["red", "green"]}, {"color": {"$in": []}},
    {"color": {"$in": "red"}}, {"color": {"$exists": "yes"}}, {"size": float("nan")}, {"color": {"red"}},
])
def test_malformed_filters_and_unknown_operators_are_400(filters):
    with pytest.raises(InvalidFilter) as info:
        parse_filters(filters)
    assert info.value.status == 400 and info.value.code == "nexus.invalid_filter"


def test_filters_on_text_queries_with_the_real_model(store, provider):
    records = [
        Record(text="Return a tent within 60 days with the receipt.", source="returns-tent",
               metadata={"topic": "returns"}),
        Record(text="Stoves can be returned unused within 30 days.", source="returns-stove",
               metadata={"topic": "returns"}),
        Record(text="Tents ship in three to five business days.", source="shipping", metadata={"topic": "shipping"}),
    ]
    vectors = provider.embed([r.text for r in records])
    store.open_or_create(ACME, "main", provider.info).upsert(build_rows(ACME, records, vectors, provider.info),
                                                              provider.info)
    hits = query(ACME, "main", "tent", filters={"topic": "returns"}, store=store, provider=provider).hits
    assert [h.source for h in hits] == ["returns-tent", "returns-stove"]
    hits = query(ACME, "main", "tent", filters={"topic": {"$ne": "returns"}}, store=store, provider=provider).hits
    assert [h.source for h in hits] == ["shipping"]
