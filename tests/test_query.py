"""The Python query API: modes, the global merge, query vectors, DataFrames, and the two search paths
(in-memory snapshots and LanceDB's indexes) giving the same answers."""

import numpy as np
import pytest
import yaml

from nexus_query.config import DEFAULT_CONFIG_PATH, NexusConfig
from nexus_query.context import RequestContext
from nexus_query.erasure.purge_table import rebuild_indexes
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest, MissingRoute, SpaceNotFound
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from nexus_query.scoring import hybrid_relevance, query_terms
from nexus_query.store import Record, SpaceStore, build_rows
from nexus_query.store.filters import Condition
from nexus_query.store.lance_indexes import ensure_indexes
from nexus_query.store.snapshots import SnapshotCache, snapshot_cache
from tests.helpers import load_texts

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
STOVES = {
    "valve-notice": "Embercore valve recall: units with serial prefix QX7 must stop using the regulator valve.",
    "stove-care": "Clean your camping stove after every trip and check the fuel line for leaks.",
    "stove-fuel": "Our stoves burn propane or butane canisters; never use unleaded gasoline in them.",
    "stove-safety": "Never run a stove inside a tent: carbon monoxide builds up quickly.",
    "lantern": "The lantern mantle glows when the gas is lit; replace torn mantles.",
}
GLOSSARY = {
    "p95": "p95 latency is the 95th percentile: 95 of 100 requests are faster than it.",
    "iso8601": "ISO 8601 writes dates as year-month-day, for example 2024-03-31.",
}


def write_global(store, provider, texts):
    system = store.open_global_for_system("dev", provider.info)
    records = [Record(text=t, source=s) for s, t in texts.items()]
    system.upsert(build_rows(None, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    return system


def test_hybrid_lifts_an_exact_keyword_match_by_reciprocal_rank_fusion(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    vector = query(ACME, "main", "stove serial prefix", mode="vector", store=store, provider=provider).hits
    hybrid = query(ACME, "main", "stove serial prefix", mode="hybrid", store=store, provider=provider).hits
    vector_rank = [h.source for h in vector].index("valve-notice")
    assert vector_rank > 0, "the model alone ranks the serial-number notice below a generic stove page"
    assert hybrid[0].source == "valve-notice"
    details = hybrid[0].score_details
    assert (details.rank_text, details.rank_vector) == (1, vector_rank + 1)
    assert details.vector == pytest.approx(vector[vector_rank].score)
    assert query_terms("stove serial prefix") == {"stove", "serial", "prefix"}
    assert details.text == pytest.approx(2 / 3)  # the notice says serial prefix, not "stove"
    assert hybrid[0].score == pytest.approx(hybrid_relevance(details.vector, details.text))
    assert {h.source for h in hybrid} == set(STOVES)


def test_vector_mode_scores_are_cosine_similarities(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    hits = query(ACME, "main", "propane canisters", mode="vector", store=store, provider=provider).hits
    q = provider.embed(["propane canisters"])[0]
    expected = sorted(((float(provider.embed([t])[0] @ q), s) for s, t in STOVES.items()), reverse=True)
    assert [h.source for h in hits] == [s for _, s in expected]
    assert [h.score for h in hits] == pytest.approx([score for score, _ in expected], abs=1e-5)


def test_include_global_merges_both_spaces_by_score_and_labels_each_hit(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    write_global(store, provider, GLOSSARY)
    alone = query(ACME, "main", "what does p95 latency mean", mode="vector", store=store, provider=provider)
    merged = query(ACME, "main", "what does p95 latency mean", mode="vector", include_global=True, top_k=7,
                   store=store, provider=provider)
    assert {h.space for h in alone.hits} == {"tenant"}
    assert merged.hits[0].space == "global" and merged.hits[0].source == "p95"
    assert {h.space for h in merged.hits} == {"tenant", "global"} and len(merged.hits) == 7
    assert [h.score for h in merged.hits] == sorted((h.score for h in merged.hits), reverse=True)
    assert set(merged.table_versions) == {"tenant", "global"}


def test_include_global_reads_the_global_space_through_its_own_route(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    del raw["environments"]["dev"]["global"]  # this deployment has no global route at all
    no_global = SpaceStore(RoutingRegistry(NexusConfig.from_dict(raw)))
    assert query(ACME, "main", "stove", store=no_global, provider=provider).hits  # tenant reads still work
    with pytest.raises(MissingRoute) as info:
        query(ACME, "main", "stove", include_global=True, store=no_global, provider=provider)
    assert info.value.status == 503 and info.value.code == "nexus_store.missing_route"


def test_include_global_before_any_global_data_exists_returns_tenant_hits(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    result = query(ACME, "main", "stove", include_global=True, store=store, provider=provider)
    assert len(result.hits) == len(STOVES) and result.table_versions["global"] is None


def test_tenants_cannot_write_the_global_space(store, provider):
    write_global(store, provider, GLOSSARY)
    with pytest.raises(GlobalSpaceReadOnly):
        ensure_indexes(store.open_global("dev"))


def test_query_vectors_are_accepted_and_checked(store, provider):
    load_texts(store, provider, ACME, "main", STOVES)
    q = provider.embed(["never use gasoline"])[0]
    by_vector = query(ACME, "main", q * 3.0, store=store, provider=provider)  # normalized, so scale is irrelevant
    by_text = query(ACME, "main", "never use gasoline", mode="vector", store=store, provider=provider)
    assert by_vector.mode == "vector"
    assert [h.doc_id for h in by_vector.hits] == [h.doc_id for h in by_text.hits]
    for bad in (np.zeros(provider.info.dimension), np.ones(3), [[1.0, 2.0]], ["a", "b"], "   "):
        with pytest.raises(InvalidRequest):
            query(ACME, "main", bad, store=store, provider=provider)
    with pytest.raises(InvalidRequest):
        query(ACME, "main", q, mode="hybrid", store=store, provider=provider)


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"top_k": 1001}, {"top_k": True}, {"mode": "bm25"},
                                    {"include_global": "yes"}, {"cursor": 5}])
def test_bad_arguments_are_400(store, provider, kwargs):
    load_texts(store, provider, ACME, "main", STOVES)
    with pytest.raises(InvalidRequest) as info:
        query(ACME, "main", "stove", store=store, provider=provider, **kwargs)
    assert info.value.status == 400


def test_a_space_that_does_not_exist_is_404(store, provider):
    with pytest.raises(SpaceNotFound):
        query(ACME, "nothing-here", "stove", store=store, provider=provider)


def test_results_convert_to_polars_and_pandas(store, provider):
    records = [Record(text=t, source=s, metadata={"topic": "stoves", "rank": i})
               for i, (s, t) in enumerate(STOVES.items())]
    store.open_or_create(ACME, "main", provider.info).upsert(
        build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    result = query(ACME, "main", "stove", top_k=3, store=store, provider=provider)
    frame = result.to_polars()
    assert frame.columns == ["doc_id", "score", "content", "metadata", "type", "source", "space", "score_details"]
    assert frame.height == 3 and frame["source"].to_list() == [h.source for h in result.hits]
    assert frame["score_details"].struct.field("rank_vector").to_list()[0] == result.hits[0].score_details.rank_vector
    wide = result.to_pandas(expand_metadata=True)
    assert list(wide.columns[-2:]) == ["meta_rank", "meta_topic"] and set(wide["meta_topic"]) == {"stoves"}


def many_rows(n, dim, seed=3):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_rows(space, provider, vectors, start=0, ctx=ACME):
    records = [Record(text=f"row number {i}", source=f"row-{i}", metadata={"group": f"g{i % 4}"})
               for i in range(start, start + len(vectors))]
    space.upsert(build_rows(ctx, records, vectors, provider.info), provider.info)


def test_large_spaces_go_through_the_lancedb_index_and_still_find_unindexed_rows(store, provider, monkeypatch):
    dim = provider.info.dimension
    space = store.open_or_create(ACME, "main", provider.info)
    vectors = many_rows(600, dim)
    write_rows(space, provider, vectors)
    report = ensure_indexes(space, vector_min_rows=500)
    assert report.vector_index and report.fts_index and set(report.created) == {"vector"}  # text: at write
    newcomer = many_rows(1, dim, seed=99)
    write_rows(space, provider, newcomer, start=600)  # appended after the index was built
    q = newcomer[0]
    in_memory = query(ACME, "main", q, top_k=10, filters={"group": "g0"}, store=store, provider=provider)
    monkeypatch.setattr(snapshot_cache, "max_bytes", 1024)  # too small for any space: LanceDB's index path
    through_index = query(ACME, "main", q, top_k=10, filters={"group": "g0"}, store=store, provider=provider)
    assert through_index.hits[0].source == "row-600"
    assert [h.doc_id for h in through_index.hits] == [h.doc_id for h in in_memory.hits]
    assert all(h.metadata["group"] == "g0" for h in through_index.hits) and len(through_index.hits) == 10
    hybrid = query(ACME, "main", "row number 600", mode="hybrid", top_k=3, store=store, provider=provider)
    assert hybrid.hits[0].source == "row-600"


def test_ensure_indexes_is_idempotent_and_folds_in_a_large_unindexed_tail(store, provider):
    dim = provider.info.dimension
    space = store.open_or_create(ACME, "main", provider.info)
    write_rows(space, provider, many_rows(300, dim))
    first = ensure_indexes(space, vector_min_rows=10_000)
    assert first.created == () and first.fts_index and not first.vector_index  # the first write built it
    again = ensure_indexes(space, vector_min_rows=10_000)
    assert again.created == () and not again.optimized
    write_rows(space, provider, many_rows(100, dim, seed=5), start=300)
    tail = ensure_indexes(space, vector_min_rows=10_000)
    assert tail.optimized and tail.unindexed_rows == 0


def test_an_index_rebuilt_after_erasure_matches_words_as_the_first_build_did(store, provider):
    space = load_texts(store, provider, ACME, "main", {"plural": "tents for winter", "singular": "a tent for summer",
                                                       "other": "stoves for cooking"})
    ensure_indexes(space)

    def full_text(words: str) -> list[str]:
        hits = space.table.search(words, query_type="fts").select(["source"]).limit(10).to_arrow()
        return sorted(hits.column("source").to_pylist())

    first_build = full_text("tents")
    rebuild_indexes(space)
    assert full_text("tents") == first_build == ["plural", "singular"]


def test_an_inflected_query_word_matches_its_stem_in_indexed_and_unindexed_rows_alike(store, provider):
    # the first write builds the full-text index; the second write's rows are not in it yet
    load_texts(store, provider, ACME, "main", {"indexed": "I pitched the tent at the Café du Lac",
                                               "filler": "stoves burn propane"})
    space = load_texts(store, provider, ACME, "main", {"unindexed": "I pitched the tent at the Café du Lac"})
    assert {c.columns[0]: c for c in space.table.list_indices()}["text"].num_unindexed_rows == 1
    hits = space.table.search("pitching tents cafe", query_type="fts").select(["source"]).to_arrow()
    assert set(hits.column("source").to_pylist()) == {"indexed", "unindexed"}
    found = query(ACME, "main", "pitching tents cafe", mode="hybrid", top_k=2, store=store, provider=provider)
    assert {h.source for h in found.hits} == {"indexed", "unindexed"}
    assert all(h.score_details.text == 1.0 for h in found.hits)  # scoring reads terms as the index does


def test_snapshots_of_new_versions_reuse_rows_and_equal_a_fresh_read(store, provider):
    dim = provider.info.dimension
    space = store.open_or_create(ACME, "main", provider.info)
    write_rows(space, provider, many_rows(1000, dim))
    cache = SnapshotCache()
    uri = space.location.dataset_uri
    before = cache.get(space.table, uri)
    write_rows(space, provider, many_rows(50, dim, seed=11), start=980)  # 20 updated, 30 new
    space.delete_sources([f"row-{i}" for i in range(10)])
    incremental = cache.get(space.table, uri)
    fresh = SnapshotCache().get(space.table, uri)
    assert incremental.version > before.version
    assert incremental.blocks[0] is before.blocks[0] and len(incremental.blocks) == 2  # only new rows were read
    assert incremental.live_rows == fresh.live_rows == fresh.num_rows == 1020

    def live_rows_by_id(snap):
        vectors = np.concatenate([b.vectors for b in snap.blocks])
        live = snap.mask([])
        in_g1 = snap.mask([Condition("group", "eq", ("s:g1",), ("g1",))])
        return {r["id"]: (r["text"], tuple(vectors[i]), bool(in_g1[i]))
                for i, r in enumerate(snap.rows.to_pylist()) if live is None or live[i]}

    assert live_rows_by_id(incremental) == live_rows_by_id(fresh)
    q = many_rows(1, dim, seed=12)[0]
    positions_a, scores_a = incremental.top(q, 25, incremental.mask([]))
    positions_b, scores_b = fresh.top(q, 25, fresh.mask([]))
    assert incremental.addrs[positions_a].tolist() == fresh.addrs[positions_b].tolist()
    assert np.allclose(scores_a, scores_b)


def test_a_heavily_rewritten_table_is_read_afresh(store, provider):
    dim = provider.info.dimension
    space = store.open_or_create(ACME, "main", provider.info)
    write_rows(space, provider, many_rows(100, dim))
    cache = SnapshotCache()
    cache.get(space.table, space.location.dataset_uri)
    write_rows(space, provider, many_rows(100, dim, seed=4))  # every row replaced
    rebuilt = cache.get(space.table, space.location.dataset_uri)
    assert len(rebuilt.blocks) == 1 and rebuilt.live is None and rebuilt.num_rows == 100
