"""Read-only recall of conversation bricks: the only way assembly touches the index."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nexus_query.cognition.bricks import BRICK_KIND
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider, get_provider
from nexus_query.errors import InvalidRequest
from nexus_query.store import SpaceStore
from nexus_query.store.filters import parse_filters
from nexus_query.store.lance_search import lance_vector_top
from nexus_query.store.snapshots import snapshot_cache

DEFAULT_K = 15
# Cosine similarity below which assembly does not count a brick as matching the topic. With
# all-MiniLM-L6-v2, topics a space speaks of score 0.35 and up while unrelated ones ("recipe for
# sourdough bread" against support chats) mostly stay under 0.15 (a bare "[file: stove-photo.jpg]"
# reached 0.21), so a neighbour that is merely nearest is not taken for a match.
MIN_SCORE = 0.3
MAX_K = 200
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


def validate_k(k: object) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be an integer between 1 and {MAX_K}", field="k")
    return k


def recall_bricks_readonly(ctx: RequestContext, space_id: str, query: str, k: int = DEFAULT_K, *,
                           store: SpaceStore | None = None, provider: EmbeddingProvider | None = None,
                           min_score: float = 0.0) -> list[Brick]:
    """At most ``k`` bricks nearest to ``query`` with similarity of at least ``min_score`` (assembly asks
    for ``MIN_SCORE``), best first. The
    table is checked out at its current version: a LanceDB handle on which every write fails, so recall
    cannot change the index."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("query must be a non-empty string", field="query")
    validate_k(k)
    store = store or SpaceStore()
    space = store.open(ctx, space_id)
    provider = provider or get_provider(store.registry.config)
    space.require_embedder(provider.info)
    table, version = space.table, space.version
    table.checkout(version)
    vector = provider.embed([query], ctx)[0]
    # The same exact, version-keyed search the query path uses; ties go to the lower row address.
    snapshot = snapshot_cache.get(table, space.location.dataset_uri, version)
    if snapshot is not None:
        positions, scores = snapshot.top(vector, k, snapshot.mask(_BRICKS_ONLY))
        rows = [{**snapshot.row(p), "score": float(s)} for p, s in zip(positions, scores, strict=True)]
    else:
        rows = lance_vector_top(table, vector, k, _BRICKS_ONLY)
    bricks = []
    for row in rows:
        if row["score"] < min_score:
            break  # rows come best first
        meta = json.loads(row["metadata"])
        if any(key not in meta for key in _BRICK_KEYS):
            continue
        bricks.append(Brick(brick_id=row["id"], score=row["score"], text=row["text"],
                            source_file=str(meta["source_file"]), message_id=str(meta["message_id"]),
                            block_index=int(meta["block_index"]), role=str(meta["role"]),
                            conversation_id=str(meta["conversation_id"])))
    return bricks
