"""What each ingest step does to a stream of Arrow batches; the assets in ``assets.py`` are thin
wrappers around these, so every step can be run and tested without Dagster.

    raw_docs (sources.DOC_SCHEMA) → chunks (CHUNK_SCHEMA) → embeddings (+ changed, vector) → the space
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from nexus_pipelines.common.load import EmbeddedRecords, IngestStats, embed_records, stored_row_keys, write_records
from nexus_pipelines.ingest.chunking import Chunker, Span
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.store import Record, SpaceTable, canonical_json, row_id

CHUNK_SCHEMA = pa.schema([
    pa.field("id", pa.utf8(), nullable=False),
    pa.field("source", pa.utf8(), nullable=False),   # the document's id
    pa.field("type", pa.utf8(), nullable=False),
    pa.field("text", pa.utf8(), nullable=False),     # == document text[char_start:char_end]
    pa.field("metadata", pa.utf8(), nullable=False),
    pa.field("chunk_index", pa.int32(), nullable=False),
    pa.field("char_start", pa.int32(), nullable=False),
    pa.field("char_end", pa.int32(), nullable=False),
    pa.field("n_tokens", pa.int32(), nullable=False),
    pa.field("blob_path", pa.utf8(), nullable=True),
    pa.field("doc_hash", pa.utf8(), nullable=False),  # the document version the chunk was cut from
])
CHUNKER_KEY = b"nexus.chunker"
EMBED_BATCH_ROWS = 2048
WRITE_BATCH_ROWS = 8192


def embeddings_schema(dimension: int) -> pa.Schema:
    """Chunks plus, for the ones the space does not hold as they are, their vector."""
    return (CHUNK_SCHEMA.append(pa.field("changed", pa.bool_(), nullable=False))
            .append(pa.field("vector", pa.list_(pa.float32(), dimension), nullable=True)))


def chunks_schema(chunker: Chunker) -> pa.Schema:
    """The chunk schema, stamped with the chunker that cut them (what makes earlier chunks reusable)."""
    return CHUNK_SCHEMA.with_metadata({CHUNKER_KEY: chunker.fingerprint.encode()})


@dataclass
class ChunkStats:
    documents: int = 0
    reused_documents: int = 0  # unchanged since the last run: their chunks were copied, not recomputed
    chunks: int = 0
    tokens: list[int] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        lengths = np.asarray(self.tokens or [0])
        return {"documents": self.documents, "reused_documents": self.reused_documents, "chunks": self.chunks,
                "tokens_p50": int(np.percentile(lengths, 50)), "tokens_p95": int(np.percentile(lengths, 95)),
                "tokens_max": int(lengths.max())}


def _reusable(previous: ds.Dataset | None, chunker: Chunker) -> dict[str, list[int]]:
    """Row numbers of the earlier chunks of each (document id, version), if this chunker cut them."""
    if previous is None or (previous.schema.metadata or {}).get(CHUNKER_KEY) != chunker.fingerprint.encode():
        return {}
    rows: dict[str, list[int]] = {}
    keys = previous.to_table(columns=["source", "doc_hash"])
    sources, hashes = keys.column("source").to_pylist(), keys.column("doc_hash").to_pylist()
    for i, (source, doc_hash) in enumerate(zip(sources, hashes, strict=True)):
        rows.setdefault(f"{source}\x1f{doc_hash}", []).append(i)
    return rows


def chunk_batches(docs: Iterable[pa.RecordBatch], chunker: Chunker, stats: ChunkStats,
                  previous: ds.Dataset | None = None) -> Iterator[pa.RecordBatch]:
    """Text documents become token-sized chunks; an image is one row (its description is not split).
    A document unchanged since ``previous`` (the last chunks, cut by the same chunker) keeps its chunks."""
    reusable = _reusable(previous, chunker)
    schema = chunks_schema(chunker)
    for batch in docs:
        rows, kept = [], []
        for row in batch.to_pylist():
            earlier = reusable.get(f"{row['doc_id']}\x1f{row['doc_hash']}")
            if earlier:
                kept.extend(earlier)
            else:
                rows.append(row)
        stats.reused_documents += batch.num_rows - len(rows)
        if kept and previous is not None:  # only an earlier output has chunks to keep
            copied = previous.take(pa.array(kept)).cast(schema)
            stats.tokens.extend(copied.column("n_tokens").to_pylist())
            stats.chunks += copied.num_rows
            yield from copied.to_batches()
        texts = [r["text"] for r in rows]
        splits = chunker.split_many(texts, [r["format"] == "markdown" for r in rows])
        out = []
        for row, spans in zip(rows, splits, strict=True):
            if row["type"] == "image":
                spans = [Span(0, len(row["text"]), "", sum(s.n_tokens for s in spans))]
            metadata = json.loads(row["metadata"])
            for index, span in enumerate(spans):
                meta = {**metadata, "heading": span.heading} if span.heading else metadata
                out.append({"id": row_id(row["doc_id"], index),
                            "source": row["doc_id"], "type": row["type"], "text": row["text"][span.start:span.end],
                            "metadata": canonical_json(meta), "chunk_index": index, "char_start": span.start,
                            "char_end": span.end, "n_tokens": span.n_tokens, "blob_path": row["blob_path"],
                            "doc_hash": row["doc_hash"]})
                stats.tokens.append(span.n_tokens)
        stats.documents += batch.num_rows
        stats.chunks += len(out)
        yield pa.RecordBatch.from_pylist(out, schema=schema)


def chunk_records(batch: pa.RecordBatch | pa.Table) -> list[Record]:
    return [Record(text=r["text"], source=r["source"], type=r["type"], metadata=json.loads(r["metadata"]),
                   chunk_index=r["chunk_index"], char_start=r["char_start"], char_end=r["char_end"],
                   blob_path=r["blob_path"], id=r["id"])
            for r in batch.select(list(CHUNK_SCHEMA.names)).to_pylist()]


def embed_batches(chunks: ds.Dataset, space: SpaceTable, provider: EmbeddingProvider, ctx: RequestContext | None,
                  stats: IngestStats, progress: Callable[[int, int], None] = lambda done, total: None,
                  batch_rows: int = EMBED_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Each chunk with a vector when the space lacks its row as it is (``changed``), without one when the
    row is already stored (the table's row keys are read once, then every batch is checked against them)."""
    stored = stored_row_keys(space)
    recent: dict[str, np.ndarray] = {}
    schema = embeddings_schema(provider.info.dimension)
    total, done = chunks.count_rows(), 0
    for batch in chunks.to_batches(batch_size=batch_rows):
        if batch.num_rows == 0:
            continue
        embedded = embed_records(space, chunk_records(batch), provider, ctx, stored_keys=stored, recent=recent)
        stats.add(embedded.stats)
        position = {r.row_id: i for i, r in enumerate(embedded.records)}
        rows = [position.get(i, -1) for i in batch.column("id").to_pylist()]
        changed = np.asarray(rows) >= 0
        vectors = np.zeros((batch.num_rows, provider.info.dimension), dtype=np.float32)
        vectors[changed] = embedded.vectors[np.asarray(rows)[changed]]
        yield pa.RecordBatch.from_arrays(
            [*batch.select(CHUNK_SCHEMA.names).columns, pa.array(changed),
             pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), provider.info.dimension,
                                               mask=pa.array(~changed))], schema=schema)
        done += batch.num_rows
        progress(done, total)


def write_batches(embeddings: ds.Dataset, space: SpaceTable, ctx: RequestContext | None,
                  provider: EmbeddingProvider, batch_rows: int = WRITE_BATCH_ROWS) -> tuple[IngestStats, set[str]]:
    """Upsert the changed rows in batches; returns the counts and every id the source still has."""
    stats = IngestStats(version=space.version)
    dimension = provider.info.dimension
    for batch in embeddings.to_batches(filter=pc.field("changed"), batch_size=batch_rows):
        if batch.num_rows == 0:
            continue
        vectors = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension)
        stats.add(write_records(space, ctx, EmbeddedRecords(chunk_records(batch), vectors), provider))
    stats.unchanged += embeddings.count_rows(filter=~pc.field("changed"))
    keep = set(embeddings.to_table(columns=["id"]).column("id").to_pylist())
    return stats, keep

