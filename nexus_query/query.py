"""Search a space: vector or hybrid ranking, exact metadata filters, the global space merged in, and
cursors that page through one consistent set of table versions. What notebooks call and the HTTP API
serves."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from nexus_query.context import RequestContext, validate_id
from nexus_query.cursors import CURSOR_INVALID, CursorState, query_digest, signer_for
from nexus_query.embeddings import EmbeddingProvider, get_provider
from nexus_query.errors import CursorInvalid, InvalidFilter, InvalidRequest, SpaceNotFound
from nexus_query.store import SpaceStore, SpaceTable
from nexus_query.store.index import (
    Condition,
    Snapshot,
    lance_vector_top,
    metadata_value_key,
    snapshot_cache,
    text_top,
)

MODES = ("vector", "hybrid")
# Chosen with bench/retrieval_eval.py: on the example documents (309 title -> text queries) hybrid scored
# nDCG@10 0.9047 against vector's 0.9037 (the tiny fixture: 1.0 both), so it never lost, and it puts exact
# identifiers (serial numbers, order codes) first where the embedding alone does not. It costs a full-text
# search per query (bench/query_bench.py: about +6 ms at 10k rows, +17 ms at 100k).
DEFAULT_MODE = "hybrid"
MAX_TOP_K = 1000
MAX_DEPTH = 10_000  # a query pages through at most this many hits
MAX_FILTER_KEYS = 64
MAX_FILTER_VALUES = 1000
RRF_K = 60  # reciprocal rank fusion: score = sum of 1 / (RRF_K + rank) over the ranked lists
FUSION_DEPTH = 100  # each ranked list fused is this deep; deeper hits follow in vector order
OPERATORS = {"$eq": "eq", "$ne": "ne", "$in": "in", "$nin": "nin", "$exists": "exists"}
_SPACE_ORDER = {"tenant": 0, "global": 1}


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float
    content: str
    metadata: dict[str, Any]
    type: str = "text"
    source: str = ""
    space: str = "tenant"  # "tenant" or "global": where the hit came from


@dataclass
class QueryResult:
    hits: list[Hit]
    next_cursor: str | None = None
    table_versions: dict[str, int | None] = field(default_factory=dict)
    mode: str = DEFAULT_MODE

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.hits]

    def to_polars(self, *, expand_metadata: bool = False):
        """One row per hit. ``metadata`` is a JSON string; ``expand_metadata=True`` adds one column per
        metadata key (``meta_<key>``) instead, for filtering and grouping in the notebook."""
        import polars as pl

        rows = [{**asdict(h), "metadata": json.dumps(h.metadata, sort_keys=True)} for h in self.hits]
        schema = {"doc_id": pl.Utf8, "score": pl.Float64, "content": pl.Utf8, "metadata": pl.Utf8,
                  "type": pl.Utf8, "source": pl.Utf8, "space": pl.Utf8}
        frame = pl.DataFrame(rows, schema=schema)
        if expand_metadata:
            keys = sorted({k for h in self.hits for k in h.metadata})
            frame = frame.drop("metadata").with_columns(
                pl.Series(f"meta_{k}", [_cell(h.metadata.get(k)) for h in self.hits], dtype=pl.Utf8) for k in keys
            )
        return frame

    def to_pandas(self, *, expand_metadata: bool = False):
        return self.to_polars(expand_metadata=expand_metadata).to_pandas()


def _cell(value: Any) -> str | None:
    return value if isinstance(value, str) or value is None else json.dumps(value, sort_keys=True)


# --- filters --------------------------------------------------------------------------------------

def _check_json(value: Any, key: str, depth: int = 0) -> Any:
    if depth > 16:
        raise InvalidFilter("filter value nests too deeply", key=key)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter("filter numbers must be finite", key=key)
        return value
    if isinstance(value, list):
        return [_check_json(v, key, depth + 1) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _check_json(v, key, depth + 1) for k, v in value.items()}
    raise InvalidFilter(f"filter value of type {type(value).__name__} is not a JSON value", key=key)


def parse_filters(filters: Any) -> tuple[Condition, ...]:
    """``{key: value}`` matches metadata whose ``key`` equals ``value`` exactly; an operator object
    ``{key: {"$eq"|"$ne": v}}``, ``{"$in"|"$nin": [v, ...]}`` or ``{"$exists": true|false}`` says more.
    Every key must hold (AND). Anything else is ``InvalidFilter`` (400)."""
    if filters is None:
        return ()
    if not isinstance(filters, Mapping):
        raise InvalidFilter("filters must be an object of metadata key -> value", field="filters")
    if len(filters) > MAX_FILTER_KEYS:
        raise InvalidFilter(f"at most {MAX_FILTER_KEYS} filter keys", field="filters")
    conditions = []
    for key, spec in filters.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidFilter("filter keys must be metadata keys (non-empty, not starting with '$')",
                                field="filters", key=str(key)[:64])
        if isinstance(spec, Mapping):
            if len(spec) != 1:
                raise InvalidFilter("an operator object holds exactly one operator", key=key)
            ((op, arg),) = spec.items()
            if op not in OPERATORS:
                raise InvalidFilter(f"unknown filter operator {str(op)[:32]!r}; use one of {sorted(OPERATORS)}",
                                    key=key, operator=str(op)[:32])
            conditions.append(_condition(key, OPERATORS[op], arg))
        elif isinstance(spec, list):
            raise InvalidFilter('a list is ambiguous here: use {"$in": [...]} for any of several values, '
                                'or {"$eq": [...]} for a list value', key=key)
        else:
            conditions.append(_condition(key, "eq", spec))
    return tuple(conditions)


def _condition(key: str, op: str, arg: Any) -> Condition:
    if op == "exists":
        if not isinstance(arg, bool):
            raise InvalidFilter("$exists takes true or false", key=key)
        return Condition(key, op, exists=arg)
    if op in ("in", "nin"):
        if not isinstance(arg, list) or not arg or len(arg) > MAX_FILTER_VALUES:
            raise InvalidFilter(f"${op} takes a non-empty list of at most {MAX_FILTER_VALUES} values", key=key)
        values = [_check_json(v, key) for v in arg]
    else:
        values = [_check_json(arg, key)]
    return Condition(key, op, tuple(sorted({metadata_value_key(v) for v in values})), tuple(values))


# --- sources: the tenant space and, when asked, the global space ----------------------------------

@dataclass
class _Candidate:
    score: float
    space: str
    addr: int
    row: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    position: int = -1

    @property
    def key(self) -> tuple[str, int]:
        return self.space, self.addr

    def order(self) -> tuple[float, int, int]:
        return -self.score, _SPACE_ORDER[self.space], self.addr

    def hit(self, score: float) -> Hit:
        row = self.row if self.row is not None else self.snapshot.row(self.position)
        return Hit(doc_id=row["id"], score=float(score), content=row["text"], metadata=json.loads(row["metadata"]),
                   type=row["type"], source=row["source"], space=self.space)


@dataclass
class _Source:
    """One space at one version, searched exactly in memory when it fits, else through LanceDB."""

    space: str
    conditions: tuple[Condition, ...]
    table: Any | None = None  # None: the space does not exist (only ever the global one)
    version: int | None = None
    snapshot: Snapshot | None = None
    mask: np.ndarray | None = None

    @classmethod
    def open(cls, label: str, space: SpaceTable | None, conditions: tuple[Condition, ...],
             pinned: int | None, pin: bool) -> "_Source":
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
                               position=int(p)) for p, s in zip(positions, scores)]
        return [_Candidate(r["score"], self.space, int(r["_rowaddr"]), row=r)
                for r in lance_vector_top(self.table, vector, n, self.conditions)]

    def text(self, text: str, n: int) -> list[_Candidate]:
        if self.table is None:
            return []
        return [_Candidate(r["score"], self.space, int(r["_rowaddr"]), row=r)
                for r in text_top(self.table, text, n, self.conditions)]


def _merged(lists: Sequence[list[_Candidate]], n: int) -> list[_Candidate]:
    return sorted((c for lst in lists for c in lst), key=_Candidate.order)[:n]


def _fuse(vector: list[_Candidate], text: list[_Candidate], n: int) -> list[tuple[_Candidate, float]]:
    """Reciprocal rank fusion of the top ``FUSION_DEPTH`` of each list; the rest follow in vector order
    (score 0), so the order of every hit is fixed by the data and never by the page asked for."""
    fused: dict[tuple[str, int], float] = {}
    chosen: dict[tuple[str, int], _Candidate] = {}
    vector_rank = {c.key: i for i, c in enumerate(vector)}
    for ranked in (vector[:FUSION_DEPTH], text[:FUSION_DEPTH]):
        for rank, cand in enumerate(ranked, start=1):
            fused[cand.key] = fused.get(cand.key, 0.0) + 1.0 / (RRF_K + rank)
            chosen.setdefault(cand.key, cand)
    head = sorted(chosen.values(), key=lambda c: (-fused[c.key], vector_rank.get(c.key, len(vector)),
                                                  _SPACE_ORDER[c.space], c.addr))
    tail = [c for c in vector[FUSION_DEPTH:] if c.key not in fused]
    return ([(c, fused[c.key]) for c in head] + [(c, 0.0) for c in tail])[:n]


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


def _query_input(q: Any) -> tuple[str | None, np.ndarray | None]:
    if isinstance(q, str):
        if not q.strip():
            raise InvalidRequest("q must be a non-empty string", field="q")
        if len(q) > 10_000:
            raise InvalidRequest("q is longer than 10000 characters", field="q")
        return q, None
    try:
        vector = np.asarray(q, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequest("q must be text or a vector of numbers", field="q") from None
    norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
    if not math.isfinite(norm) or norm == 0.0:
        raise InvalidRequest("a query vector must be one-dimensional, finite and not all zero", field="q")
    return None, vector / norm


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
    store: SpaceStore | None = None,
    provider: EmbeddingProvider | None = None,
) -> QueryResult:
    """Rank a space's rows for ``q`` (text, or a vector in the space's embedding space).

    ``mode="vector"`` ranks by cosine similarity; ``"hybrid"`` fuses that ranking with full-text BM25 by
    reciprocal rank (``q`` must be text); None takes ``DEFAULT_MODE`` for text, vector for a vector. ``filters`` select rows by exact metadata match before ranking.
    ``include_global`` merges the shared global space (read through its own route) by score. Pass
    ``cursor=result.next_cursor`` with the same arguments for the next page.
    """
    validate_id(space_id, "space_id")
    text, vector = _query_input(q)
    if mode is None:  # the measured default for text; a vector query can only rank by vector
        mode = DEFAULT_MODE if text is not None else "vector"
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {MODES}", field="mode")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be an integer between 1 and {MAX_TOP_K}", field="top_k")
    if not isinstance(include_global, bool):
        raise InvalidRequest("include_global must be true or false", field="include_global")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidRequest("cursor must be a string", field="cursor")
    if mode == "hybrid" and text is None:
        raise InvalidRequest("hybrid search needs q as text", field="q")
    conditions = parse_filters(filters)

    store = store or SpaceStore()
    provider = provider or get_provider(store.registry.config)
    signer = signer_for(store.registry.config)
    digest = query_digest({
        "q": text if text is not None else hashlib.sha256(vector.tobytes()).hexdigest(),
        "filters": sorted([c.key, c.op, list(c.values), c.exists] for c in conditions),
        "mode": mode, "global": include_global,
    })
    state = signer.open(cursor, ctx, space_id, digest) if cursor else CursorState({}, 0)
    pin = bool(cursor)

    tenant_space = store.open(ctx, space_id)
    tenant_space.require_embedder(provider.info)
    sources = [_Source.open("tenant", tenant_space, conditions, state.versions.get("tenant"), pin)]
    if include_global:
        try:
            global_space = store.open_global(ctx.environment)
            global_space.require_embedder(provider.info)
        except SpaceNotFound:
            global_space = None
        sources.append(_Source.open("global", global_space, conditions, state.versions.get("global"), pin))

    text_search = None
    if mode == "hybrid":  # full text runs while the query is embedded: the two wait on different things
        text_search = _text_pool().submit(
            lambda: _merged([s.text(text, FUSION_DEPTH) for s in sources], FUSION_DEPTH))
    if vector is None:
        vector = provider.embed([text], ctx)[0]
    elif vector.shape[0] != provider.info.dimension:
        raise InvalidRequest(f"a query vector must have {provider.info.dimension} dimensions", field="q")

    offset = state.offset
    want = min(offset + top_k, MAX_DEPTH) + 1  # one more than the page, to know whether another follows
    if mode == "vector":
        ranked = [(c, c.score) for c in _merged([s.vector(vector, want) for s in sources], want)]
    else:
        depth = max(want, FUSION_DEPTH) + FUSION_DEPTH
        by_vector = _merged([s.vector(vector, depth) for s in sources], depth)
        by_text = text_search.result()
        ranked = _fuse(by_vector, by_text, want)

    end = min(offset + top_k, MAX_DEPTH)
    page = ranked[offset:end]
    versions = {s.space: s.version for s in sources}
    next_cursor = None
    if len(ranked) > end and end < MAX_DEPTH:
        next_cursor = signer.issue(ctx, space_id, digest, CursorState(versions, end))
    return QueryResult(hits=[c.hit(score) for c, score in page], next_cursor=next_cursor,
                       table_versions=versions, mode=mode)
