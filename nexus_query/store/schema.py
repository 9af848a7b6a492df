"""The Arrow schema of a space: the contract's minimal columns plus the ones that earn their place."""

from __future__ import annotations

import json

import pyarrow as pa

from nexus_query.embeddings.base import EmbedderInfo

EMBEDDER_KEY = b"nexus.embedder"
# LanceDB's embedding-function registry reads this key: plain ``lancedb`` then embeds a text query
# (``table.search("text")``) with the model that built the space.
LANCEDB_EMBEDDING_FUNCTIONS_KEY = b"embedding_functions"
SCHEMA_VERSION_KEY = b"nexus.schema_version"
SCHEMA_VERSION = b"1"
# Lance's unenforced primary key, declared in the schema a table is created with, so no writer ever sees
# the table without it: concurrent ``merge_insert`` on a keyed table inserts no duplicates.
PRIMARY_KEY_FIELD_KEY = b"lance-schema:unenforced-primary-key:position"
DOC_TYPES = ("text", "image", "kpi")
VECTOR_COLUMN = "vector"
FTS_COLUMN = "text"  # the column the full-text index covers
# The columns a hit is built from (every search reads these, plus the vector where it needs it).
ROW_COLUMNS = ("id", "text", "metadata", "type", "source")


def space_schema(embedder: EmbedderInfo) -> pa.Schema:
    return pa.schema(
        [
            # the contract's minimal schema
            pa.field("id", pa.utf8(), nullable=False, metadata={PRIMARY_KEY_FIELD_KEY: b"1"}),
            pa.field("vector", pa.list_(pa.float32(), embedder.dimension), nullable=False),
            pa.field("text", pa.utf8(), nullable=False),
            pa.field("type", pa.utf8(), nullable=False),  # text | image | kpi
            pa.field("metadata", pa.utf8(), nullable=False),  # JSON object
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            # provenance, for incremental runs, deletes and citations
            pa.field("tenant_id", pa.utf8(), nullable=False),
            pa.field("source", pa.utf8(), nullable=False),  # the document the row came from
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("char_start", pa.int32(), nullable=False),
            pa.field("char_end", pa.int32(), nullable=False),
            pa.field("content_hash", pa.utf8(), nullable=False),  # sha256 of the embedded text
            pa.field("embedder", pa.utf8(), nullable=False),
            pa.field("blob_path", pa.utf8(), nullable=True),  # MediaRefs: the blob this row points at
        ],
        metadata={EMBEDDER_KEY: embedder.to_json().encode(), SCHEMA_VERSION_KEY: SCHEMA_VERSION,
                  **lancedb_embedding_functions(embedder)},
    )


def lancedb_embedding_functions(embedder: EmbedderInfo) -> dict[bytes, bytes]:
    """The space's model in LanceDB's registry format (its built-in ``sentence-transformers`` function).

    A bundled model is named by a LanceDB variable whose default is its public name, never by a folder of
    this machine, so the table opens anywhere: plain LanceDB loads the weights where the table is opened,
    from the offline package once the reader sets the variable (``register_offline_model``), else from its
    own model cache. A model of the user's own folder is named by that folder. A remote embedder has no
    LanceDB counterpart: nothing is recorded."""
    from nexus_query.embeddings.local import lancedb_model_name

    if embedder.provider != "local":
        return {}
    name = lancedb_model_name(embedder.model)
    if name is None:
        return {}
    functions = [{"name": "sentence-transformers",
                  "model": {"name": name, "device": "cpu", "normalize": True},
                  "source_column": "text", "vector_column": "vector"}]
    return {LANCEDB_EMBEDDING_FUNCTIONS_KEY: json.dumps(functions).encode()}


def embedder_of(schema: pa.Schema) -> EmbedderInfo | None:
    raw = (schema.metadata or {}).get(EMBEDDER_KEY)
    return EmbedderInfo.from_json(raw) if raw else None
