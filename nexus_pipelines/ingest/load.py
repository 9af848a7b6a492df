"""Embedding and writing records into a space: the one path every domain (documents, KPI facts,
conversation bricks) uses, so re-runs embed nothing that is already stored."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.store import Record, SpaceTable, build_rows, content_hash
from nexus_query.store.space import sql_string

_IN_LIST = 500


@dataclass
class IngestStats:
    records: int = 0
    embedded: int = 0
    reused: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    embed_seconds: float = 0.0
    version: int = 0

    @property
    def embed_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {**asdict(self), "embed_per_second": round(self.embed_per_second, 1)}


def stored_vectors(space: SpaceTable, hashes: Iterable[str], embedder_id: str) -> dict[str, np.ndarray]:
    """Vectors already in the space for these content hashes, built by this embedder."""
    wanted = sorted(set(hashes))
    found: dict[str, np.ndarray] = {}
    if not wanted or space.count() == 0:
        return found
    for i in range(0, len(wanted), _IN_LIST):
        in_list = ", ".join(sql_string(h) for h in wanted[i:i + _IN_LIST])
        table = (space.table.search()
                 .where(f"embedder = {sql_string(embedder_id)} AND content_hash IN ({in_list})")
                 .select(["content_hash", "vector"])
                 .limit(None)
                 .to_arrow())
        vectors = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        dim = space.table.schema.field("vector").type.list_size
        for h, v in zip(table.column("content_hash").to_pylist(), vectors.reshape(-1, dim)):
            found[h] = v
    return found


def embed_records(space: SpaceTable | None, records: Sequence[Record], provider: EmbeddingProvider,
                  ctx: RequestContext | None = None) -> tuple[np.ndarray, IngestStats]:
    """Vectors for ``records``: reused from the space when the same text was embedded by the same
    embedder, computed (once per distinct text) otherwise."""
    stats = IngestStats(records=len(records))
    hashes = [content_hash(r.text) for r in records]
    known = stored_vectors(space, hashes, provider.info.id) if space is not None else {}
    missing: dict[str, str] = {}
    for h, r in zip(hashes, records):
        if h not in known:
            missing.setdefault(h, r.text)
    started = time.perf_counter()
    fresh = provider.embed(list(missing.values()), ctx) if missing else np.zeros((0, provider.info.dimension))
    stats.embed_seconds = time.perf_counter() - started
    known.update(zip(missing.keys(), fresh))
    stats.embedded, stats.reused = len(missing), len(records) - sum(1 for h in hashes if h in missing)
    vectors = np.stack([known[h] for h in hashes]) if records else np.zeros((0, provider.info.dimension))
    return vectors.astype(np.float32), stats


def upsert_records(space: SpaceTable, ctx: RequestContext, records: Sequence[Record],
                   provider: EmbeddingProvider) -> IngestStats:
    vectors, stats = embed_records(space, records, provider, ctx)
    result = space.upsert(build_rows(ctx, records, vectors, provider.info), provider.info)
    stats.inserted, stats.updated, stats.unchanged, stats.version = (
        result.inserted, result.updated, result.unchanged, result.version)
    return stats
