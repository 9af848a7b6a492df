"""Read-only recall of conversation bricks: the only way assembly touches the index.

Bricks are found by both of the space's signals: the full-text index (BM25 over stemmed terms, a brick's
speaker, date and conversation title included) and an exact vector scan (of the block's own words: the
who/when line is not embedded, ``bricks.vector_text``; so the scan reads the query without the speakers'
names it holds, ``without_speakers``), each read ``FUSION_DEPTH`` deep. They are fused by
score, not by rank: every brick found is ranked by its own evidence on ``nexus_query.scoring``'s
calibrated scale, its cosine ``v`` lifted by its text evidence ``t`` (``hybrid_relevance``,
``v + (1 - v) * LIFT * t``), so the order and the score agree. ``t`` is the share of the query's terms the
brick holds, half counting every term alike and half weighting each by its rarity among the bricks found
(``term_weights``): a name that two bricks hold outweighs words that most of them share, so a brick
holding the question's rare name rises even when its cosine is low (where keyword search is strong),
while a speaker's name still counts, on the text side. A term the brick lacks is held in part by the
nearest word of its block (``near_words``, ``term_credits``): a paraphrase shares meaning, not words,
with the question, and the model's vectors of single words see some of it. Settings were chosen by
leave-one-conversation-out cross-validation over the three styles of the development set
(``bench/cognition_fusion_cv.py``, every fold in docs/cognition.md); rank fusion lost at every weight.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nexus_query.cognition.bricks import BRICK_KIND, own_text
from nexus_query.cognition.near_words import nearest_word_cosines, words_of
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider, provider_for_space
from nexus_query.errors import InvalidRequest
from nexus_query.scoring import hybrid_relevance, query_terms, terms_of, vector_relevance
from nexus_query.store import SpaceStore
from nexus_query.store.filters import parse_filters
from nexus_query.store.lance_search import lance_vector_top, text_top
from nexus_query.store.snapshots import snapshot_cache

DEFAULT_K = 15
MAX_K = 200
# How brick recall fuses its two signals (``ranked``), chosen by leave-one-conversation-out cross-validation
# over the development set's 20 conversations of three styles (``bench/cognition_fusion_cv.py``, turn recall
# at k = 15; the folds in docs/cognition.md): how far text evidence closes the gap between a brick's
# cosine and 1 (the query path's ``scoring.TEXT_LIFT`` is 0.5), and how much of that evidence weighs a
# query term by its rarity among the bricks found rather than counting it alike.
LIFT = 0.75
RARITY = 0.5
# How near a word must come to a query term it stands in for before it counts (``term_credits``): a
# cosine between the two words' vectors, chosen with ``LIFT`` and ``RARITY`` by the same cross-validation.
NEAR_FLOOR: float | None = 0.25
# How deep each signal's ranking is read: a brick beyond it in both is not recalled.
FUSION_DEPTH = 100
# The minimum scores of a match, on ``scoring.hybrid_relevance``'s scale at ``LIFT`` and ``RARITY``:
# a topic is matched when its best brick scores ``TOPIC_MIN_SCORE`` or more, and then a brick is recalled
# when it scores ``MIN_SCORE`` or more. Measured with all-MiniLM-L6-v2 (``bench/cognition_fusion_cv.py
# --unrelated``): every one of the development set's 1,330 questions matches, and 53.9% of 309 unrelated
# topics (the example documents' titles) asked of its 20 conversations get none (NO_RECALL_MATCHES). A per-brick
# cut as high as the topic's cost turn recall@15 0.887 -> 0.825 on the first 442 questions: short turns say
# little, and cosines of 0.2-0.3 are common for the very turn that answers.
TOPIC_MIN_SCORE = 0.3
MIN_SCORE = 0.2
_BRICK_KEYS = ("source_file", "message_id", "block_index", "role", "conversation_id")
_BRICKS_ONLY = parse_filters({"kind": BRICK_KIND})


@dataclass(frozen=True)
class Brick:
    brick_id: str
    score: float
    text: str
    source_file: str
    message_id: str
    block_index: int
    role: str
    conversation_id: str
    name: str | None = None  # the speaker's name, where the export gave one
    title: str | None = None  # the conversation's title
    created_at: str | None = None  # the message's time, or its conversation's


@dataclass(frozen=True)
class Rankings:
    """One query's two rankings of a space's bricks, best first, each read ``FUSION_DEPTH`` deep; every
    row carries its cosine with the query as ``cosine``. ``near`` holds, per brick id, each query term's
    cosine with the nearest word of the brick's block (``near_words``; the speakers' names left out)."""

    text: list[dict[str, Any]]
    vector: list[dict[str, Any]]
    terms: frozenset[str]
    near: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def validate_k(k: object) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be an integer between 1 and {MAX_K}", field="k")
    return k


def brick_rankings(ctx: RequestContext, space_id: str, query: str, *, store: SpaceStore | None = None,
                   provider: EmbeddingProvider | None = None, depth: int = FUSION_DEPTH) -> Rankings:
    """The full-text and vector rankings of the space's bricks for ``query``. The table is checked out at
    its current version: a LanceDB handle on which every write fails, so recall cannot change the index."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("query must be a non-empty string", field="query")
    store = store or SpaceStore()
    space = store.open(ctx, space_id)
    provider = provider or provider_for_space(store.registry.config, space.embedder)
    space.require_embedder(provider.info)
    table, version = space.table, space.version
    table.checkout(version)
    terms = query_terms(query)
    by_text = text_top(table, query, depth, _BRICKS_ONLY, with_vectors=True) if terms else []
    speakers = {name for row in by_text if (name := json.loads(row["metadata"]).get("name"))}
    vector = provider.embed([without_speakers(query, speakers)], ctx)[0]
    # The same exact, version-keyed search the query path uses; ties go to the lower row address.
    snapshot = snapshot_cache.get(table, space.location.dataset_uri, version)
    if snapshot is not None:
        positions, scores = snapshot.top(vector, depth, snapshot.mask(_BRICKS_ONLY))
        by_vector = [{**snapshot.row(p), "cosine": float(s)} for p, s in zip(positions, scores, strict=True)]
    else:
        by_vector = lance_vector_top(table, vector, depth, _BRICKS_ONLY)
        for row in by_vector:
            row["cosine"] = row.pop("score")
    for row in by_text:
        row["cosine"] = float(np.dot(np.asarray(row.pop("vector"), dtype=np.float32), vector))
    rows = {row["id"]: row for row in (*by_vector, *by_text)}
    blocks = [own_text(row["text"], json.loads(row["metadata"])) for row in rows.values()]
    near = nearest_word_cosines(asked_words(query, terms, speakers), blocks, provider, ctx)
    return Rankings(by_text, by_vector, terms, dict(zip(rows, near, strict=True)))


def asked_words(query: str, terms: frozenset[str], speakers: Iterable[str]) -> dict[str, str]:
    """Each query term a brick's words can stand in for, with the query's word that gave it: the
    speakers' names are left out (a name is held exactly, on the who/when line, or not at all)."""
    names = set().union(*terms_of(sorted(speakers)))
    words = words_of(query)
    asked: dict[str, str] = {}
    for word, found in zip(words, terms_of(words), strict=True):
        if len(found) == 1 and (term := next(iter(found))) in terms and term not in names:
            asked.setdefault(term, word)
    return asked


def without_speakers(query: str, speakers: Iterable[str]) -> str:
    """``query`` as the vector scan reads it: each of the conversations' speakers it names becomes "they"
    ("their" for "Priya's"). A brick's vector is of the block's own words, never its speaker's name, so a
    name in the query cannot match a brick's vector; it only pulls the query's vector away from the words
    that can (the bundled model weighs names heavily). Who said it still counts on the text side, where
    the brick's who/when line holds the name."""
    names = sorted({name.strip() for name in speakers if name.strip()}, key=len, reverse=True)
    if not names:
        return query
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b('s|’s|')?", re.IGNORECASE)
    return pattern.sub(lambda m: "their" if m.group(1) else "they", query)


def term_weights(terms: frozenset[str], texts: Sequence[str]) -> dict[str, float]:
    """Each query term's weight among the bricks both signals found: its inverse document frequency
    ``log((n + 1) / (df + 0.5))`` over those ``n`` bricks (always > 0), so a name that two bricks hold
    counts far more than a word that most of them share (a speaker's name, "think"), and a term none holds
    weighs most of all (it lowers every brick's share alike). From the rankings alone: exact and
    deterministic, and it needs no statistics of the whole space."""
    held = [found & terms for found in terms_of(texts)]
    n = len(texts)
    return {t: math.log((n + 1) / (sum(t in h for h in held) + 0.5)) for t in terms}


def ranked(rankings: Rankings, lift: float = LIFT, rarity: float = RARITY,
           near_floor: float | None = NEAR_FLOOR) -> list[tuple[dict[str, Any], float]]:
    """Every brick of both rankings with its score, best first: ``hybrid_relevance`` at ``lift`` of its
    cosine and its text evidence, the share of the query's terms it holds counted alike (weight
    ``1 - rarity``) and by ``term_weights`` (weight ``rarity``). A term it lacks is held in part by its
    nearest word (``term_credits``; none with ``near_floor`` None). Ties go to the better text rank, then
    vector rank, then id, so the order is fixed by the data."""
    rank_t = {row["id"]: i for i, row in enumerate(rankings.text)}
    rank_v = {row["id"]: i for i, row in enumerate(rankings.vector)}
    rows = {row["id"]: row for row in (*rankings.vector, *rankings.text)}
    held = dict(zip(rows, terms_of([row["text"] for row in rows.values()]), strict=True))
    weights = term_weights(rankings.terms, [row["text"] for row in rows.values()])
    total = sum(weights.values())

    def text_evidence(brick_id: str) -> float | None:
        if not rankings.terms:
            return None
        credit = term_credits(rankings.terms, held[brick_id], rankings.near.get(brick_id, {}), near_floor)
        alike = sum(credit.values()) / len(credit)
        weighted = sum(weights[t] * c for t, c in credit.items()) / total
        return (1 - rarity) * alike + rarity * weighted

    scores = {b: hybrid_relevance(vector_relevance(row["cosine"]), text_evidence(b), lift) for b, row in rows.items()}
    absent = len(rows)
    order = sorted(rows, key=lambda b: (-scores[b], rank_t.get(b, absent), rank_v.get(b, absent), b))
    return [(rows[b], scores[b]) for b in order]


def term_credits(terms: frozenset[str], held: frozenset[str], near: Mapping[str, float],
                 floor: float | None = NEAR_FLOOR) -> dict[str, float]:
    """How much of each query term a brick holds: 1 when it holds the term, else its nearest word's
    cosine above ``floor``, rescaled to [0, 1) (``(cos - floor) / (1 - floor)``); 0 with ``floor`` None."""
    def lacking(term: str) -> float:
        if floor is None:
            return 0.0
        return max(0.0, (near.get(term, 0.0) - floor) / (1.0 - floor))

    return {t: 1.0 if t in held else lacking(t) for t in terms}


def recall_bricks_readonly(ctx: RequestContext, space_id: str, query: str, k: int = DEFAULT_K, *,
                           store: SpaceStore | None = None, provider: EmbeddingProvider | None = None,
                           min_score: float = 0.0, topic_min_score: float = 0.0) -> list[Brick]:
    """At most ``k`` bricks for ``query``, best first, each scoring at least ``min_score``; none unless the
    topic matches at ``topic_min_score`` (``topic_matches``; assembly asks for ``MIN_SCORE`` and
    ``TOPIC_MIN_SCORE``). Read-only, exact and deterministic."""
    validate_k(k)
    rankings = brick_rankings(ctx, space_id, query, store=store, provider=provider)
    if not topic_matches(rankings, topic_min_score):
        return []
    bricks: list[Brick] = []
    for row, score in ranked(rankings, LIFT, RARITY):
        if score < min_score:
            break  # best first
        meta = json.loads(row["metadata"])
        if all(key in meta for key in _BRICK_KEYS):
            bricks.append(_brick(row, meta, score))
            if len(bricks) == k:
                break
    return bricks


def topic_matches(rankings: Rankings, topic_min_score: float = TOPIC_MIN_SCORE, lift: float = LIFT,
                  rarity: float = RARITY) -> bool:
    """Whether some brick's exact evidence (its cosine and the terms it holds, no nearest words) scores
    ``topic_min_score``: nearest words reorder and lift the bricks of a topic the index matched, but never
    make a topic match (every word has a nearest word, so they would lift an unrelated topic too)."""
    if topic_min_score <= 0:
        return True
    exact = ranked(rankings, lift, rarity, near_floor=None)
    return bool(exact) and exact[0][1] >= topic_min_score


def _brick(row: dict[str, Any], meta: dict[str, Any], score: float) -> Brick:
    extra = {key: str(meta[key]) if meta.get(key) is not None else None for key in ("name", "title", "created_at")}
    return Brick(brick_id=row["id"], score=score, text=row["text"], source_file=str(meta["source_file"]),
                 message_id=str(meta["message_id"]), block_index=int(meta["block_index"]), role=str(meta["role"]),
                 conversation_id=str(meta["conversation_id"]), **extra)
