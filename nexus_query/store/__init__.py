"""The LanceDB space store."""

from nexus_query.store.rows import Record, build_rows, canonical_json, content_hash, row_id
from nexus_query.store.space import SpaceStore, SpaceTable, UpsertResult

__all__ = ["Record", "SpaceStore", "SpaceTable", "UpsertResult", "build_rows", "canonical_json",
           "content_hash", "row_id"]
