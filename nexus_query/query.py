"""Semantic search over a space: what analysts call from notebooks and the HTTP API serves."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider, get_provider
from nexus_query.errors import InvalidRequest
from nexus_query.store import SpaceStore

MAX_TOP_K = 1000


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
    table_versions: dict[str, int] = field(default_factory=dict)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.hits]

    def to_polars(self):
        import polars as pl

        rows = [{**asdict(h), "metadata": json.dumps(h.metadata, sort_keys=True)} for h in self.hits]
        schema = {"doc_id": pl.Utf8, "score": pl.Float64, "content": pl.Utf8, "metadata": pl.Utf8,
                  "type": pl.Utf8, "source": pl.Utf8, "space": pl.Utf8}
        return pl.DataFrame(rows, schema=schema)

    def to_pandas(self):
        return self.to_polars().to_pandas()


def query(
    ctx: RequestContext,
    space_id: str,
    q: str,
    *,
    top_k: int = 10,
    store: SpaceStore | None = None,
    provider: EmbeddingProvider | None = None,
) -> QueryResult:
    """Rank the space's rows by cosine similarity to ``q`` (vectors are unit length)."""
    if not isinstance(q, str) or not q.strip():
        raise InvalidRequest("q must be a non-empty string", field="q")
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be an integer between 1 and {MAX_TOP_K}", field="top_k")
    store = store or SpaceStore()
    space = store.open(ctx, space_id)
    provider = provider or get_provider()
    space.require_embedder(provider.info)
    vector = provider.embed([q], ctx)[0]
    found = (
        space.table.search(vector, vector_column_name="vector")
        .distance_type("dot")
        .select(["id", "text", "metadata", "type", "source", "_distance"])
        .limit(top_k)
        .to_arrow()
        .to_pylist()
    )
    hits = [
        Hit(doc_id=r["id"], score=1.0 - float(r["_distance"]), content=r["text"],
            metadata=json.loads(r["metadata"]), type=r["type"], source=r["source"])
        for r in found
    ]
    return QueryResult(hits=hits, table_versions={"tenant": space.version})
