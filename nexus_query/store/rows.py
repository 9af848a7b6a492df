"""Building rows for a space from plain records and their vectors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from nexus_query.context import RequestContext
from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.errors import InvalidRequest
from nexus_query.paths import GLOBAL_TENANT_DIR
from nexus_query.store.schema import DOC_TYPES, space_schema


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_id(source: str, chunk_index: int) -> str:
    """Deterministic, so re-ingesting a document replaces its rows instead of adding copies."""
    return hashlib.sha256(f"{source}\x1f{chunk_index}".encode()).hexdigest()[:32]


@dataclass
class Record:
    """One row to be: a chunk of a document, an image reference or a KPI fact."""

    text: str
    source: str
    type: str = "text"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunk_index: int = 0
    char_start: int = 0
    char_end: int | None = None
    blob_path: str | None = None
    id: str | None = None

    @property
    def row_id(self) -> str:
        return self.id or row_id(self.source, self.chunk_index)

    @property
    def end(self) -> int:
        return self.char_end if self.char_end is not None else self.char_start + len(self.text)

    def __post_init__(self) -> None:
        if self.type not in DOC_TYPES:
            raise InvalidRequest(f"type must be one of {DOC_TYPES}, got {self.type!r}", field="type")
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidRequest("text must be a non-empty string", field="text", source=self.source)
        if not isinstance(self.metadata, Mapping):
            raise InvalidRequest("metadata must be an object", field="metadata", source=self.source)


def build_rows(
    ctx: RequestContext | None,
    records: Iterable[Record],
    vectors: np.ndarray,
    embedder: EmbedderInfo,
    *,
    now: datetime | None = None,
) -> pa.Table:
    records = list(records)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(records), embedder.dimension):
        raise InvalidRequest(
            f"expected {len(records)} vectors of dimension {embedder.dimension}, got {vectors.shape}"
        )
    if not np.isfinite(vectors).all():
        raise InvalidRequest("vectors must be finite")
    stamp = now or datetime.now(UTC)
    schema = space_schema(embedder)
    owner = ctx.tenant_id if ctx is not None else GLOBAL_TENANT_DIR  # None: a system write to the global space
    columns = {
        "id": [r.row_id for r in records],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.dimension),
        "text": [r.text for r in records],
        "type": [r.type for r in records],
        "metadata": [canonical_json(dict(r.metadata)) for r in records],
        "timestamp": [stamp] * len(records),
        "tenant_id": [owner] * len(records),
        "source": [r.source for r in records],
        "chunk_index": [r.chunk_index for r in records],
        "char_start": [r.char_start for r in records],
        "char_end": [r.end for r in records],
        "content_hash": [content_hash(r.text) for r in records],
        "embedder": [embedder.id] * len(records),
        "blob_path": [r.blob_path for r in records],
    }
    return pa.table(columns, schema=schema)
