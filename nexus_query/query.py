"""Search a space: vector or hybrid ranking, exact metadata filters, the global space merged in, and
cursors that page through one consistent set of table versions. What notebooks call and the HTTP API
serves."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from nexus_query.context import RequestContext, validate_id
from nexus_query.cursors import CURSOR_INVALID, CursorState, query_digest, signer_for
from nexus_query.embeddings import EmbeddingProvider, provider_for_space
from nexus_query.errors import CursorInvalid, InvalidRequest, SpaceNotFound
from nexus_query.results import DEFAULT_MODE, MODES, Hit, QueryMode, QueryResult, SpaceLabel
from nexus_query.scoring import (
    ScoreDetails,
    capped,
    hybrid_relevance,
    query_terms,
    terms_of,
    text_coverage,
    vector_relevance,
)
from nexus_query.store import SpaceStore, SpaceTable
from nexus_query.store.filters import Condition, parse_filters
from nexus_query.store.lance_search import lance_vector_top, text_top
from nexus_query.store.snapshots import Snapshot, snapshot_cache

MAX_TOP_K = 1000
MAX_DEPTH = 10_000  # a query pages through at most this many hits
FUSION_DEPTH = 100  # hybrid ranks the top this many of each ranking; deeper vector hits follow in vector order
_SPACE_ORDER: dict[SpaceLabel, int] = {"tenant": 0, "global": 1}


# --- sources: the tenant space and, when asked, the global space ----------------------------------

@dataclass
class _Candidate:
    score: float  # the ranking's own score: cosine for the vector ranking, BM25 for the text one
    space: SpaceLabel
    addr: int
    cosine: float  # cosine to the query vector (text candidates: computed from the row)
    row: dict[str, Any] | None = None  # the row as LanceDB returned it, or None: at ``position`` in ``snapshot``
    snapshot: Snapshot | None = None
    position: int = -1

    @property
    def key(self) -> tuple[str, int]:
        return self.space, self.addr

    def order(self) -> tuple[float, int, int]:
        return -self.score, _SPACE_ORDER[self.space], self.addr

    def read_row(self) -> dict[str, Any]:
        if self.row is not None:
            return self.row
        if self.snapshot is None:
            raise ValueError("a candidate holds its row or a snapshot position")
        return self.snapshot.row(self.position)

    def hit(self, score: float, details: ScoreDetails) -> Hit:
        row = self.read_row()
        return Hit(doc_id=row["id"], score=float(score), content=row["text"], metadata=json.loads(row["metadata"]),
                   type=row["type"], source=row["source"], space=self.space, score_details=details)


@dataclass
class _Ranked:
    """A candidate with its calibrated score, at ``position`` in its own space's ranking."""

    candidate: _Candidate
    score: float
    details: ScoreDetails
    position: int

    def order(self) -> tuple[float, int, int]:
        # Ties keep each space's own order (capped scores tie often), tenant before global.
        return -self.score, _SPACE_ORDER[self.candidate.space], self.position


@dataclass
class _Source:
    """One space at one version, searched exactly in memory when it fits, else through LanceDB."""

    space: SpaceLabel
    conditions: tuple[Condition, ...]
    table: Any | None = None  # None: the space does not exist (only ever the global one)
    version: int | None = None
    snapshot: Snapshot | None = None
    mask: np.ndarray | None = None

    @classmethod
    def open(cls, label: SpaceLabel, space: SpaceTable | None, conditions: tuple[Condition, ...],
             pinned: int | None, pin: bool) -> _Source:
        if space is None:
            if pin and pinned is not None:  # it existed when page 1 was read
                raise CursorInvalid(CURSOR_INVALID)
            return cls(label, conditions)
        if pin and pinned is None:  # it did not exist when page 1 was read
            return cls(label, conditions)
        version = space.version
        if pin and pinned != version:
            # Listed from storage: the session may still cache a version that cleanup already removed.
            if pinned not in {int(v["version"]) for v in space.table.list_versions()}:
                raise CursorInvalid(CURSOR_INVALID, reason="table version no longer exists")
            space.table.checkout(pinned)
            version = pinned
        snapshot = snapshot_cache.get(space.table, space.location.dataset_uri, version)
        mask = snapshot.mask(conditions) if snapshot is not None else None
        return cls(label, conditions, space.table, version, snapshot, mask)

    def vector(self, vector: np.ndarray, n: int) -> list[_Candidate]:
        if self.table is None:
            return []
        if self.snapshot is not None:
            positions, scores = self.snapshot.top(vector, n, self.mask)
            return [_Candidate(float(s), self.space, int(self.snapshot.addrs[p]), snapshot=self.snapshot,
                               position=int(p), cosine=float(s)) for p, s in zip(positions, scores, strict=True)]
        return [_Candidate(r["score"], self.space, int(r["_rowaddr"]), row=r, cosine=r["score"])
                for r in lance_vector_top(self.table, vector, n, self.conditions)]

    def text_rows(self, text: str, n: int) -> list[dict]:
        """The best ``n`` full-text rows with their vectors (their cosine is taken once the query is embedded)."""
        if self.table is None:
            return []
        return text_top(self.table, text, n, self.conditions, with_vectors=True)

    def text(self, rows: list[dict], vector: np.ndarray) -> list[_Candidate]:
        cosines = (np.asarray([r.pop("vector") for r in rows], np.float32) @ vector).tolist() if rows else []
        return [_Candidate(r["score"], self.space, int(r["_rowaddr"]), row=r, cosine=float(cos))
                for r, cos in zip(rows, cosines, strict=True)]


def _merged(lists: Sequence[list[_Candidate]], n: int) -> list[_Candidate]:
    return sorted((c for lst in lists for c in lst), key=_Candidate.order)[:n]


def _vector_ranking(lists: Sequence[list[_Candidate]], n: int) -> list[_Ranked]:
    """Every space's hits by cosine similarity (one scale: the same model embedded them all)."""
    ranked: list[_Ranked] = []
    per_space: dict[str, int] = {}
    for cand in _merged(lists, n):
        rank = per_space[cand.space] = per_space.get(cand.space, 0) + 1
        relevance = vector_relevance(cand.score)
        ranked.append(_Ranked(cand, relevance, ScoreDetails(vector=relevance, rank_vector=rank), rank))
    return ranked


def _texts(cands: list[_Candidate]) -> dict[tuple[str, int], str]:
    """Each candidate's text: from its row, or from its snapshot in one read per snapshot."""
    texts = {c.key: c.read_row()["text"] for c in cands if c.row is not None}
    by_snapshot: dict[int, tuple[Snapshot, list[_Candidate]]] = {}
    for cand in cands:
        if cand.row is None and cand.snapshot is not None:
            by_snapshot.setdefault(id(cand.snapshot), (cand.snapshot, []))[1].append(cand)
    for snapshot, group in by_snapshot.values():
        texts.update(zip((c.key for c in group), snapshot.texts([c.position for c in group]), strict=True))
    return texts


def _hybrid_ranking(vector: list[_Candidate], text: list[_Candidate], terms: frozenset[str],
                    n: int) -> list[_Ranked]:
    """One space's best ``n`` hits by their own hybrid evidence (``scoring.hybrid_relevance`` of the cosine
    and the share of the query's terms held), over the top ``FUSION_DEPTH`` of both rankings; deeper vector
    hits follow in vector order, capped. So the order and the score agree, and the order of every hit is
    fixed by the data, never by the page (ties go to the text rank, then the vector rank within
    ``FUSION_DEPTH``, then the row)."""
    pool: dict[tuple[str, int], _Candidate] = {}
    for cand in (*vector[:FUSION_DEPTH], *text[:FUSION_DEPTH]):
        pool.setdefault(cand.key, cand)
    vector_rank = {c.key: i for i, c in enumerate(vector, start=1)}
    text_rank = {c.key: i for i, c in enumerate(text[:FUSION_DEPTH], start=1)}
    texts = _texts(list(pool.values()))
    terms_of(list(texts.values()))  # every pooled text's terms in one tokenizer call; the coverages reuse them
    details: dict[tuple[str, int], ScoreDetails] = {}
    own: dict[tuple[str, int], float] = {}
    for key, cand in pool.items():
        rank_v = vector_rank.get(key)
        if rank_v is not None and rank_v > FUSION_DEPTH:
            rank_v = None  # found by its text rank; how deep the vector list was read varies by page
        # Every pooled hit's own text evidence, found by the text search or not: where a speaker's name or
        # a common word is in hundreds of rows, BM25's top rows are not all that hold the query's terms.
        details[key] = ScoreDetails(vector=vector_relevance(cand.cosine),
                                    text=text_coverage(terms, texts[key]),
                                    rank_vector=rank_v, rank_text=text_rank.get(key))
        own[key] = hybrid_relevance(details[key].vector or 0.0, details[key].text)
    absent = FUSION_DEPTH + 1
    head = sorted(pool, key=lambda k: (-own[k], text_rank.get(k, absent), details[k].rank_vector or absent,
                                       _SPACE_ORDER[pool[k].space], pool[k].addr))
    ranked = [(pool[k], own[k], details[k]) for k in head[:n]]
    for cand in vector[FUSION_DEPTH:]:
        if len(ranked) >= n:
            break
        if cand.key not in pool:
            relevance = vector_relevance(cand.cosine)
            ranked.append((cand, relevance, ScoreDetails(vector=relevance, rank_vector=vector_rank[cand.key])))
    scores = capped(score for _, score, _ in ranked)
    return [_Ranked(c, s, d, i) for i, ((c, _, d), s) in enumerate(zip(ranked, scores, strict=True))]


# --- the query ------------------------------------------------------------------------------------

_text_executor: ThreadPoolExecutor | None = None
_text_executor_lock = threading.Lock()


def _text_pool() -> ThreadPoolExecutor:
    """Threads for the full-text half of hybrid queries (LanceDB's search releases the GIL)."""
    global _text_executor
    with _text_executor_lock:
        if _text_executor is None:
            _text_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nexus-fts")
        return _text_executor


def _query_input(q: Any) -> str | np.ndarray:
    """``q`` as text, or as a unit-length vector."""
    if isinstance(q, str):
        if not q.strip():
            raise InvalidRequest("q must be a non-empty string", field="q")
        if len(q) > 10_000:
            raise InvalidRequest("q is longer than 10000 characters", field="q")
        return q
    try:
        vector = np.asarray(q, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequest("q must be text or a vector of numbers", field="q") from None
    norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
    if not math.isfinite(norm) or norm == 0.0:
        raise InvalidRequest("a query vector must be one-dimensional, finite and not all zero", field="q")
    return vector / norm


def _query_mode(mode: str | None, text_query: bool) -> QueryMode:
    if mode is None:  # the measured default for text; a vector query can only rank by vector
        return DEFAULT_MODE if text_query else "vector"
    for known in MODES:
        if mode == known:
            return known
    raise InvalidRequest(f"mode must be one of {MODES}", field="mode")


def _text_rows(sources: Sequence[_Source], text: str) -> list[list[dict]]:
    return [s.text_rows(text, FUSION_DEPTH) for s in sources]


def query(
    ctx: RequestContext,
    space_id: str,
    q: str | Sequence[float] | np.ndarray,
    *,
    filters: Mapping[str, Any] | None = None,
    top_k: int = 10,
    include_global: bool = False,
    cursor: str | None = None,
    mode: str | None = None,
    min_score: float | None = None,
    store: SpaceStore | None = None,
    provider: EmbeddingProvider | None = None,
) -> QueryResult:
    """Rank a space's rows for ``q`` (text, or a vector in the space's embedding space).

    ``mode="vector"`` ranks by cosine similarity; ``"hybrid"`` ranks the hits of that ranking and of
    full-text BM25 by their cosine lifted by the share of the query's terms they hold (``q`` must be
    text); None takes ``DEFAULT_MODE`` for text, vector for a vector.
    Every hit's ``score`` is a relevance in [0, 1] (``nexus_query.scoring``), and ``score_details``
    says why. ``filters`` select rows by exact metadata match before ranking. ``min_score`` drops hits
    scoring below it before paging (``scoring.SUGGESTED_MIN_SCORE`` is a measured cut for "no answer").
    ``include_global`` merges the shared global space (read through its own route) by score. Pass
    ``cursor=result.next_cursor`` with the same arguments for the next page.
    """
    validate_id(space_id, "space_id")
    query_input = _query_input(q)
    text = query_input if isinstance(query_input, str) else None
    chosen_mode = _query_mode(mode, text is not None)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be an integer between 1 and {MAX_TOP_K}", field="top_k")
    if not isinstance(include_global, bool):
        raise InvalidRequest("include_global must be true or false", field="include_global")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidRequest("cursor must be a string", field="cursor")
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float))
                                  or not 0.0 <= min_score <= 1.0):
        raise InvalidRequest("min_score must be a number between 0 and 1", field="min_score")
    if chosen_mode == "hybrid" and text is None:
        raise InvalidRequest("hybrid search needs q as text", field="q")
    conditions = parse_filters(filters)

    store = store or SpaceStore()
    signer = signer_for(store.registry.config)
    digest = query_digest({
        "q": query_input if isinstance(query_input, str) else hashlib.sha256(query_input.tobytes()).hexdigest(),
        "filters": sorted([c.key, c.op, list(c.values), c.exists] for c in conditions),
        "mode": chosen_mode, "global": include_global,
        **({"min_score": float(min_score)} if min_score is not None else {}),  # cursors without one stay valid
    })
    state = signer.open(cursor, ctx, space_id, digest) if cursor else CursorState({}, 0)
    pin = bool(cursor)

    tenant_space = store.open(ctx, space_id)
    provider = provider or provider_for_space(store.registry.config, tenant_space.embedder)
    tenant_space.require_embedder(provider.info)
    sources = [_Source.open("tenant", tenant_space, conditions, state.versions.get("tenant"), pin)]
    if include_global:
        try:
            global_space = store.open_global(ctx.environment)
            global_space.require_embedder(provider.info)
        except SpaceNotFound:
            global_space = None
        sources.append(_Source.open("global", global_space, conditions, state.versions.get("global"), pin))

    text_search: Future[list[list[dict]]] | None = None
    if chosen_mode == "hybrid" and text is not None:  # (hybrid always has text, checked above)
        # full text runs while the query is embedded: the two wait on different things
        text_search = _text_pool().submit(_text_rows, sources, text)
    if isinstance(query_input, str):
        vector = provider.embed([query_input], ctx)[0]
    elif query_input.shape[0] != provider.info.dimension:
        raise InvalidRequest(f"a query vector must have {provider.info.dimension} dimensions", field="q")
    else:
        vector = query_input

    offset = state.offset
    want = min(offset + top_k, MAX_DEPTH) + 1  # one more than the page, to know whether another follows
    if text_search is None or text is None:  # vector mode
        ranked = _vector_ranking([s.vector(vector, want) for s in sources], want)
    else:
        # Each space ranks the hits its own two searches found, then the spaces are merged by the
        # calibrated score, which means the same in both (BM25 scores of two indexes would not).
        depth = max(want, FUSION_DEPTH) + FUSION_DEPTH
        terms = query_terms(text)
        text_rows = text_search.result()
        # _merged: ties go to the lower row address, as on every page
        per_space = [_hybrid_ranking(_merged([s.vector(vector, depth)], depth),
                                     _merged([s.text(rows, vector)], FUSION_DEPTH), terms, want)
                     for s, rows in zip(sources, text_rows, strict=True)]
        ranked = sorted((r for space in per_space for r in space), key=_Ranked.order)[:want]
    if min_score is not None:  # scores never rise down the list: this keeps a prefix, before paging
        ranked = [r for r in ranked if r.score >= min_score]

    end = min(offset + top_k, MAX_DEPTH)
    page = ranked[offset:end]
    versions: dict[str, int | None] = {s.space: s.version for s in sources}
    next_cursor = None
    if len(ranked) > end and end < MAX_DEPTH:
        next_cursor = signer.issue(ctx, space_id, digest, CursorState(versions, end))
    return QueryResult(hits=[r.candidate.hit(r.score, r.details) for r in page], next_cursor=next_cursor,
                       table_versions=versions, mode=chosen_mode)
