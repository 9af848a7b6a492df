"""Embedding and writing records into a space: the one path every domain (documents, KPI facts,
conversation bricks) uses, so re-runs embed nothing and rewrite nothing that is already stored.

Two steps, usable together (``upsert_records``) or apart (the ``embeddings`` and ``space_table``
assets run them in separate steps over streamed batches):

1. ``embed_records``: a record whose row is already stored exactly as it would be written is skipped;
   the others get a vector of the text the model reads (``vector_text``: a conversation brick's block
   without its who/when line), taken from the space when the same text was embedded by the same
   embedder, computed (once per distinct text) otherwise.
2. ``write_records``: a keyed upsert of what step 1 kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from nexus_query.cognition.bricks import vector_text
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.store import Record, SpaceTable, build_rows, canonical_json, content_hash
from nexus_query.store.filters import sql_string

_IN_LIST = 500
_KEY_COLUMNS = ["id", "content_hash", "metadata", "type", "embedder", "source", "chunk_index", "char_start",
                "char_end", "blob_path"]
RECENT_VECTORS = 20_000  # ~30 MB of 384-d vectors: texts repeated across one run's batches are embedded once


@dataclass
class IngestStats:
    records: int = 0     # records offered
    embedded: int = 0    # distinct texts sent to the model
    reused: int = 0      # records whose vector came from the space (row unchanged, or same text stored)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0   # rows already stored exactly as offered: skipped
    deleted: int = 0
    conflicts_retried: int = 0  # upsert commits lost to concurrent writers, and retried
    embed_seconds: float = 0.0
    version: int = 0

    @property
    def embed_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0

    def add(self, other: IngestStats) -> None:
        """Accumulate a later batch's counts (the version is the later one's)."""
        for f in fields(self):
            if f.name != "version":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.version = other.version or self.version

    def as_metadata(self) -> dict[str, float | int]:
        return {**asdict(self), "embed_seconds": round(self.embed_seconds, 3),
                "embed_per_second": round(self.embed_per_second, 1)}


@dataclass
class EmbeddedRecords:
    """What ``embed_records`` decided: the records to write, with one vector each."""

    records: list[Record]
    vectors: np.ndarray
    stats: IngestStats = field(default_factory=IngestStats)


def row_key(record: Record, embedder_id: str) -> str:
    """Everything ``SpaceTable.upsert`` compares: equal keys mean writing the record changes nothing."""
    return _key([record.row_id, content_hash(record.text), canonical_json(dict(record.metadata)), record.type,
                 embedder_id, record.source, record.chunk_index, record.char_start, record.end,
                 record.blob_path])


def _key(values: Sequence[object]) -> str:
    return "\x1f".join("" if v is None else str(v) for v in values)


def stored_row_keys(space: SpaceTable, ids: Iterable[str] | None = None) -> set[str]:
    """Keys (``row_key``) of the rows the space holds: of ``ids`` only, or of every row (one scan)."""
    if space.count() == 0:
        return set()
    if ids is None:
        readers = [space.table.search().select(_KEY_COLUMNS).limit(None).to_batches(8192)]
    else:
        wanted = sorted(set(ids))
        readers = [space.table.search()
                   .where(f"id IN ({', '.join(sql_string(i) for i in wanted[i:i + _IN_LIST])})")
                   .select(_KEY_COLUMNS).limit(None).to_batches(8192)
                   for i in range(0, len(wanted), _IN_LIST)]
    keys: set[str] = set()
    for reader in readers:
        for batch in reader:
            keys.update(_key(row) for row in zip(*(batch.column(c).to_pylist() for c in _KEY_COLUMNS), strict=True))
    return keys


def stored_vectors(space: SpaceTable, hashes: Iterable[str], embedder_id: str) -> dict[str, np.ndarray]:
    """Vectors already in the space for these content hashes, built by this embedder."""
    wanted = sorted(set(hashes))
    found: dict[str, np.ndarray] = {}
    if not wanted or space.count() == 0:
        return found
    dim = space.table.schema.field("vector").type.list_size
    for i in range(0, len(wanted), _IN_LIST):
        in_list = ", ".join(sql_string(h) for h in wanted[i:i + _IN_LIST])
        table = (space.table.search()
                 .where(f"embedder = {sql_string(embedder_id)} AND content_hash IN ({in_list})")
                 .select(["content_hash", "vector"])
                 .limit(None)
                 .to_arrow())
        vectors = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        found.update(zip(table.column("content_hash").to_pylist(), vectors.reshape(-1, dim), strict=True))
    return found


def embed_records(space: SpaceTable | None, records: Sequence[Record], provider: EmbeddingProvider,
                  ctx: RequestContext | None = None, *, stored_keys: set[str] | None = None,
                  recent: dict[str, np.ndarray] | None = None) -> EmbeddedRecords:
    """Vectors for the records the space does not already hold as they are.

    A caller that streams many batches passes ``stored_keys`` (from ``stored_row_keys``, so the table's
    keys are read once) and ``recent`` (vectors this run already computed, by content hash, which the
    space does not hold yet; kept to ``RECENT_VECTORS`` entries); without them, the keys of just these
    records' ids are looked up.
    """
    info = provider.info
    if stored_keys is None:
        stored_keys = stored_row_keys(space, [r.row_id for r in records]) if space is not None else set()
    pending = [r for r in records if row_key(r, info.id) not in stored_keys]
    embedded = [vector_text(r.text, r.metadata, r.char_start) for r in pending]
    # Keyed by the text the model reads; a stored row is found by its own text's hash (``content_hash``),
    # which is that text's for every row but a brick's first chunk (so its vector is never reused for
    # the bare block, nor a vector made before bricks were embedded without their line).
    hashes = [content_hash(text) for text in embedded]
    known = {h: recent[h] for h in hashes if recent is not None and h in recent}
    if space is not None:
        known.update(stored_vectors(space, [h for h in hashes if h not in known], info.id))
    missing: dict[str, str] = {}
    for h, text in zip(hashes, embedded, strict=True):
        if h not in known:
            missing.setdefault(h, text)
    stats = IngestStats(records=len(records), unchanged=len(records) - len(pending))
    stats.reused = stats.unchanged + sum(1 for h in hashes if h in known)
    started = time.perf_counter()
    fresh = provider.embed(list(missing.values()), ctx) if missing else np.zeros((0, info.dimension))
    stats.embed_seconds = time.perf_counter() - started
    stats.embedded = len(missing)
    known.update(zip(missing.keys(), fresh, strict=True))
    if recent is not None:
        if len(recent) + len(missing) > RECENT_VECTORS:
            recent.clear()
        recent.update(zip(missing.keys(), fresh, strict=True))
    vectors = np.stack([known[h] for h in hashes]) if pending else np.zeros((0, info.dimension))
    return EmbeddedRecords(pending, vectors.astype(np.float32), stats)


def write_records(space: SpaceTable, ctx: RequestContext | None, embedded: EmbeddedRecords,
                  provider: EmbeddingProvider) -> IngestStats:
    """Keyed upsert of what ``embed_records`` kept; ``ctx`` None writes the global space (system jobs)."""
    stats = embedded.stats
    result = space.upsert(build_rows(ctx, embedded.records, embedded.vectors, provider.info), provider.info)
    stats.inserted, stats.updated, stats.version = result.inserted, result.updated, result.version
    stats.conflicts_retried = result.conflicts_retried
    stats.unchanged += result.unchanged
    return stats


def upsert_records(space: SpaceTable, ctx: RequestContext | None, records: Sequence[Record],
                   provider: EmbeddingProvider) -> IngestStats:
    """Embed what is new or changed and upsert it; running it twice embeds and writes nothing."""
    return write_records(space, ctx, embed_records(space, records, provider, ctx), provider)
