"""Scores that say how good an answer is: relevances in [0, 1] in every mode and search path, the same on
every page, a nonsense query far below a real question, ``min_score`` cutting before paging, and the
global merge on the one calibrated scale."""

import json
import math

import httpx
import jsonschema
import numpy as np
import pytest

from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.context import RequestContext
from nexus_query.errors import CursorInvalid, InvalidRequest
from nexus_query.query import query
from nexus_query.scoring import (
    SUGGESTED_MIN_SCORE,
    TEXT_LIFT,
    capped,
    hybrid_relevance,
    query_terms,
    terms_of,
    text_coverage,
    vector_relevance,
)
from nexus_query.store import Record, build_rows
from nexus_query.store.lance_indexes import ensure_indexes
from nexus_query.store.snapshots import snapshot_cache
from tests.helpers import REPO

ACME = RequestContext("acme")
GEAR = {
    "tent-return": "To return a tent, pack it dry in its bag and bring the receipt to any store within 60 days.",
    "tent-pitch": "Pitch the tent on flat ground, stake the corners first, then raise the poles.",
    "stove-fuel": "Our stoves burn propane or butane canisters; never use unleaded gasoline in them.",
    "boot-care": "Clean hiking boots with a soft brush and let them dry away from a heater.",
    "refund-time": "Refunds reach the original payment method within 5 business days of the return.",
    "lantern": "The lantern mantle glows when the gas is lit; replace torn mantles.",
    "sleeping-bag": "Store sleeping bags loose, never compressed, so the insulation keeps its loft.",
}
GLOSSARY = {
    "p95": "p95 latency is the 95th percentile: 95 of 100 requests are faster than it.",
    "refund-glossary": "A refund returns money to the payment method a purchase was made with.",
}
NONSENSE = "qwzx vlorp snargle fnord"


def write_global(store, provider, texts):
    system = store.open_global_for_system("dev", provider.info)
    records = [Record(text=t, source=s, metadata={"topic": "glossary"}) for s, t in texts.items()]
    system.upsert(build_rows(None, records, provider.embed([r.text for r in records]), provider.info), provider.info)


def load_gear(store, provider):
    records = [Record(text=t, source=s, metadata={"topic": "tents" if s.startswith("tent") else "other"})
               for s, t in GEAR.items()]
    space = store.open_or_create(ACME, "main", provider.info)
    space.upsert(build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    return space


def every_page(store, provider, q, top_k, **kwargs):
    hits, cursor = [], None
    for _ in range(50):
        page = query(ACME, "main", q, top_k=top_k, cursor=cursor, store=store, provider=provider, **kwargs)
        if page.next_cursor is not None:
            assert len(page.hits) == top_k, "only the last page may be short"
        hits += page.hits
        cursor = page.next_cursor
        if cursor is None:
            return hits
    raise AssertionError("more pages than rows")


def signature(hits):
    return [(h.space, h.doc_id, round(h.score, 6), h.score_details) for h in hits]


# --- the score functions --------------------------------------------------------------------------

def test_the_hybrid_score_is_the_cosine_lifted_by_text_coverage_and_stays_in_the_unit_interval():
    assert hybrid_relevance(0.7, None) == pytest.approx(0.7)  # no text evidence: the vector score
    assert hybrid_relevance(0.7, 1.0) == pytest.approx(0.7 + 0.3 * TEXT_LIFT)
    assert hybrid_relevance(-0.4, 0.0) == 0.0 and hybrid_relevance(1.2, 1.0) == 1.0
    assert hybrid_relevance(0.1, 0.0) < 0.2  # neither signal supports it: it scores low
    grid = [(v, t) for v in np.linspace(-1, 1, 21) for t in (None, 0.0, 0.25, 0.5, 1.0)]
    assert all(0.0 <= hybrid_relevance(v, t) <= 1.0 for v, t in grid)
    assert vector_relevance(-0.3) == 0.0 and vector_relevance(0.42) == pytest.approx(0.42)
    assert vector_relevance(float("nan")) == 0.0


def test_text_coverage_reads_terms_like_the_full_text_index():
    terms = query_terms("How do I return a tent?")
    assert terms == {"return", "tent"}  # stop words dropped, stemmed, lower case
    assert text_coverage(terms, "Returning tents is easy.") == 1.0
    assert text_coverage(terms, "Tents are waterproof.") == 0.5
    assert text_coverage(terms, "Stoves burn propane.") == 0.0
    assert text_coverage(query_terms("how do I"), "anything") is None  # nothing searchable


def test_terms_read_in_one_tokenizer_call_are_each_texts_own(monkeypatch):
    import uuid

    import lancedb

    from nexus_query.store.lance_indexes import FTS_TOKENIZER

    def alone(text):
        return frozenset(token.text for token in lancedb.tokenize(text, **FTS_TOKENIZER))

    run = uuid.uuid4().hex  # texts no earlier test cached
    texts = [f"How do I return a tent? {run}", "", "the and of", f"Café crème, tents! {run}",
             f"Returning tents is easy {run}.", f"Returning tents is easy {run}."]
    assert terms_of(texts) == [alone(t) for t in texts]
    holding = [f"a text that says nexusqxzseparator {run}", f"and another {run}"]  # the joining word itself
    assert terms_of(holding) == [alone(t) for t in holding]
    fresh = [f"{word} {run}" for word in ("boots", "stoves", "lanterns")]
    expected = [alone(t) for t in fresh]
    real, calls = lancedb.tokenize, []
    monkeypatch.setattr(lancedb, "tokenize", lambda text, **options: calls.append(text) or real(text, **options))
    assert terms_of(fresh) == expected and len(calls) == 1  # three texts, one call
    assert terms_of(fresh) and len(calls) == 1  # then from the cache


def test_weighted_text_coverage_is_the_share_of_the_query_terms_weight_a_text_holds():
    terms = query_terms("How do I return a tent?")
    weights = {"return": 1.0, "tent": 3.0}
    assert text_coverage(terms, "Tents are waterproof.", weights) == 0.75
    assert text_coverage(terms, "Returns within 30 days.", weights) == 0.25
    assert text_coverage(terms, "Returning tents is easy.", weights) == 1.0
    assert text_coverage(query_terms("how do I"), "anything", {}) is None


def test_capped_scores_never_rise_and_never_exceed_their_own_evidence():
    own = [0.9, 0.5, 0.7, 0.2, 0.4]
    assert capped(own) == [0.9, 0.5, 0.5, 0.2, 0.2]
    assert all(c <= o for c, o in zip(capped(own), own, strict=True))


# --- every mode and path --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["snapshot", "lancedb"])
@pytest.mark.parametrize("mode", ["vector", "hybrid"])
@pytest.mark.parametrize("include_global", [False, True])
@pytest.mark.parametrize("filters", [None, {"topic": {"$ne": "tents"}}])
def test_scores_are_relevances_in_the_unit_interval_identical_on_every_page(store, provider, monkeypatch,
                                                                           path, mode, include_global, filters):
    ensure_indexes(load_gear(store, provider))
    write_global(store, provider, GLOSSARY)
    if path == "lancedb":
        monkeypatch.setattr(snapshot_cache, "max_bytes", 1024)  # no space fits in memory
    kwargs = {"mode": mode, "include_global": include_global, "filters": filters}
    whole = query(ACME, "main", "how do I return a tent for a refund?", top_k=50, store=store, provider=provider,
                  **kwargs).hits
    paged = every_page(store, provider, "how do I return a tent for a refund?", 2, **kwargs)
    assert signature(paged) == signature(whole)
    scores = [h.score for h in whole]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    for h in whole:
        d = h.score_details
        assert d.vector is not None and 0.0 <= d.vector <= 1.0
        if mode == "vector":
            assert h.score == pytest.approx(d.vector) and d.text is None and d.rank_text is None
        else:
            assert h.score <= hybrid_relevance(d.vector, d.text) + 1e-9  # never above its own evidence
            assert d.text is not None  # every row is in the pool: each has its own text evidence
    expected = len(GEAR) + (len(GLOSSARY) if include_global else 0) - (2 if filters else 0)
    assert len(whole) == expected
    if filters:
        assert all(h.metadata["topic"] != "tents" for h in whole)


def test_hybrid_puts_the_row_holding_the_asked_identifier_first_among_near_duplicates(store, provider):
    """Five order notes that differ only in their number: the vector ranking puts another one first, and
    rank fusion kept it there (its ranks summed higher); ranking by each hit's own evidence does not."""
    orders = ["A-7731", "A-7713", "A-3771", "B-7731", "A-1377"]
    records = [Record(text=f"Order {o} shipped late because the warehouse ran out of boxes.", source=o) for o in orders]
    space = store.open_or_create(ACME, "main", provider.info)
    space.upsert(build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    by_vector = query(ACME, "main", "B-7731", mode="vector", store=store, provider=provider).hits
    hybrid = query(ACME, "main", "B-7731", mode="hybrid", store=store, provider=provider).hits
    assert by_vector[0].source != "B-7731"  # the premise: the model alone misses it
    assert hybrid[0].source == "B-7731" and hybrid[0].score_details.text == 1.0
    assert hybrid[0].score > hybrid[1].score


def test_both_search_paths_give_the_same_scores(store, provider, monkeypatch):
    ensure_indexes(load_gear(store, provider))
    q = "return a tent and get a refund"
    in_memory = query(ACME, "main", q, store=store, provider=provider).hits
    monkeypatch.setattr(snapshot_cache, "max_bytes", 1024)
    through_lancedb = query(ACME, "main", q, store=store, provider=provider).hits
    assert [h.doc_id for h in in_memory] == [h.doc_id for h in through_lancedb]
    assert [h.score for h in in_memory] == pytest.approx([h.score for h in through_lancedb], abs=1e-5)


def test_a_vector_opposite_to_the_query_scores_zero_not_a_negative_number(store, provider):
    q = provider.embed(["propane canisters"])[0]
    records = [Record(text="opposite", source="opposite"), Record(text="same", source="same")]
    space = store.open_or_create(ACME, "main", provider.info)
    space.upsert(build_rows(ACME, records, np.stack([-q, q]), provider.info), provider.info)
    hits = query(ACME, "main", q, store=store, provider=provider).hits
    assert [(h.source, round(h.score, 4)) for h in hits] == [("same", 1.0), ("opposite", 0.0)]


def test_a_nonsense_query_scores_far_below_a_real_question_in_every_mode(store, provider):
    load_gear(store, provider)
    for mode in ("vector", "hybrid"):
        real = query(ACME, "main", "how do I return a tent?", mode=mode, store=store, provider=provider).hits
        nonsense = query(ACME, "main", NONSENSE, mode=mode, store=store, provider=provider).hits
        assert real[0].source == "tent-return"
        assert real[0].score >= SUGGESTED_MIN_SCORE
        assert nonsense[0].score < 0.6 * real[0].score, mode
        assert all(h.score_details.text in (None, 0.0) for h in nonsense)  # no term of it is in any row


# --- min_score ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_min_score_drops_exactly_the_hits_below_it_before_paging(store, provider, mode):
    load_gear(store, provider)
    write_global(store, provider, GLOSSARY)
    q = "how do I return a tent for a refund?"
    every = query(ACME, "main", q, mode=mode, top_k=50, include_global=True, store=store, provider=provider).hits
    last = next(i for i in range(2, len(every) - 1) if every[i].score > every[i + 1].score)
    cut = (every[last].score + every[last + 1].score) / 2  # between two hits, past the second page's start
    kept = every_page(store, provider, q, 2, mode=mode, include_global=True, min_score=cut)
    assert signature(kept) == signature(every[:last + 1])
    at_a_score = every_page(store, provider, q, 2, mode=mode, include_global=True, min_score=every[last + 1].score)
    assert signature(at_a_score) == signature([h for h in every if h.score >= every[last + 1].score])  # strict "below"
    assert len(at_a_score) > len(kept)
    assert query(ACME, "main", q, mode=mode, min_score=1.0, store=store, provider=provider).hits == []


def test_a_cursor_is_bound_to_its_min_score(store, provider):
    load_gear(store, provider)
    page = query(ACME, "main", "tent", top_k=1, min_score=0.1, store=store, provider=provider)
    assert page.next_cursor
    with pytest.raises(CursorInvalid):
        query(ACME, "main", "tent", top_k=1, min_score=0.2, cursor=page.next_cursor, store=store, provider=provider)


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5", float("nan"), float("inf")])
def test_a_min_score_outside_zero_to_one_is_400(store, provider, bad):
    load_gear(store, provider)
    with pytest.raises(InvalidRequest) as info:
        query(ACME, "main", "tent", min_score=bad, store=store, provider=provider)
    assert info.value.status == 400 and info.value.details.get("field") == "min_score"


# --- the global merge -----------------------------------------------------------------------------

def test_the_global_merge_orders_tenant_and_global_hits_by_the_same_score(store, provider):
    load_gear(store, provider)
    write_global(store, provider, GLOSSARY)
    q = "what does p95 latency mean"
    alone = query(ACME, "main", q, top_k=20, store=store, provider=provider).hits
    merged = query(ACME, "main", q, top_k=20, include_global=True, store=store, provider=provider).hits
    assert merged[0].space == "global" and merged[0].source == "p95"
    assert [h.score for h in merged] == sorted((h.score for h in merged), reverse=True)
    # a tenant hit scores what it scores without the global space: one scale, not two indexes' BM25
    tenant = [(h.doc_id, h.score, h.score_details) for h in merged if h.space == "tenant"]
    assert tenant == [(h.doc_id, h.score, h.score_details) for h in alone]


# --- the check, over HTTP with the real model and the bundled example documents -------------

def example_records(tenant: str) -> list[Record]:
    records = []
    for path in sorted((REPO / "examples" / "data" / tenant).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                records.append(Record(text=item["content"], source=item["id"], metadata=item.get("metadata", {})))
    return records


@pytest.mark.slow
def test_over_http_a_real_question_scores_high_nonsense_low_and_min_score_tells_them_apart(store, provider):
    records = example_records("acme")
    space = store.open_or_create(ACME, "main", provider.info)
    space.upsert(build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    ensure_indexes(space)
    with (background_server(create_app(store.registry)) as base_url,
          httpx.Client(base_url=base_url, timeout=60) as client):
        spec = client.get("/openapi.json").json()
        # the answer as the OpenAPI document describes it (a JSON Schema, resolved against the document)
        contract = {"$ref": "#/components/schemas/QueryResponse", "components": spec["components"]}

        def top(q: str, **body) -> list[dict]:
            response = client.post("/nexus/spaces/main/query", headers={"Authorization": "Bearer acme-demo-key"},
                                   json={"q": q, "top_k": 5, **body})
            assert response.status_code == 200, response.text
            jsonschema.validate(response.json(), contract)
            return response.json()["hits"]

        real, nonsense = top("how do I return a tent?"), top(NONSENSE)
        assert real[0]["source"] == "ret-how-to-return-tent" and real[0]["score"] >= 0.5
        assert nonsense[0]["score"] < 0.6 * real[0]["score"]
        assert set(real[0]["score_details"]) == {"vector", "text", "rank_vector", "rank_text"}
        assert all(0.0 <= h["score"] <= 1.0 and not math.isnan(h["score"]) for h in real + nonsense)
        kept = top("how do I return a tent?", min_score=SUGGESTED_MIN_SCORE)
        assert kept and kept[0]["source"] == "ret-how-to-return-tent"
        assert all(h["score"] >= SUGGESTED_MIN_SCORE for h in kept)
        assert top(NONSENSE, min_score=SUGGESTED_MIN_SCORE) == []
        hit_schema = spec["components"]["schemas"]["HitModel"]["properties"]
        assert (hit_schema["score"]["minimum"], hit_schema["score"]["maximum"]) == (0.0, 1.0)
        refused = client.post("/nexus/spaces/main/query", headers={"Authorization": "Bearer acme-demo-key"},
                              json={"q": "tent", "min_score": 2})
        assert refused.status_code == 422 and refused.json()["error"]["code"]
