"""What the Dagster UI shows about every definition beside its code: who owns it and what the space
table's columns are. One place, so every domain says the same."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

# Who answers for the pipelines (Dagster's owner format: an e-mail or ``team:<name>``).
OWNERS = ["team:nexus-platform"]

# The space table's columns, in the words a data engineer reading the UI needs.
COLUMN_DESCRIPTIONS = {
    "id": "row key (document id, chunk index); upserts match on it",
    "vector": "unit-length embedding of `text` by the space's model (recorded in the table's schema metadata)",
    "text": "the chunk: exactly text[char_start:char_end] of its document; full-text indexed",
    "type": "text | image | kpi",
    "metadata": "JSON object: the document's metadata plus provenance (heading, embedded_from, ...)",
    "timestamp": "when the row was written (UTC)",
    "tenant_id": "owner of the row (`_global` in the global space)",
    "source": "the document the row came from; citations and deletes use it",
    "chunk_index": "position of the chunk in its document",
    "char_start": "first character of the chunk in its document",
    "char_end": "end (exclusive) of the chunk in its document",
    "content_hash": "SHA-256 of the embedded text: unchanged rows are skipped",
    "embedder": "model@dimension that embedded the row",
    "blob_path": "for images: the blob the row points at",
}


def with_owners(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec if spec.owners else spec.replace_attributes(owners=OWNERS)


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """A table's Arrow schema as Dagster's column schema (``dagster/column_schema`` metadata)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(field.name, str(field.type), description=COLUMN_DESCRIPTIONS.get(field.name),
                       constraints=dg.TableColumnConstraints(nullable=field.nullable,
                                                             unique=field.name == "id"))
        for field in schema
    ])
