"""Request and response bodies of the HTTP API, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus_query.cursors import MAX_CURSOR_CHARS
from nexus_query.landing import MAX_ITEMS_PER_BATCH
from nexus_query.query import MAX_TOP_K


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"q": "how do I return a tent?", "filters": {"topic": "returns"}, "top_k": 5, "include_global": True}
    ]})

    q: str = Field(min_length=1, max_length=10_000, description="what to search for")
    filters: dict[str, Any] | None = Field(
        None, description='exact metadata matches, all of which must hold: {"key": value}, or an operator '
                          'object {"key": {"$eq"|"$ne": v}}, {"$in"|"$nin": [v, ...]}, {"$exists": bool}')
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    include_global: bool = Field(False, description="merge hits from the shared, read-only global space")
    cursor: str | None = Field(None, max_length=MAX_CURSOR_CHARS,
                               description="next_cursor of the previous page, with the same query")
    mode: Literal["vector", "hybrid"] | None = Field(None, description="ranking; default: the measured best")


class HitModel(BaseModel):
    doc_id: str
    score: float
    content: str
    metadata: dict[str, Any]
    type: str
    source: str
    space: Literal["tenant", "global"]


class QueryResponse(BaseModel):
    hits: list[HitModel]
    next_cursor: str | None = None


class IngestItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image"]
    content: str | None = None
    blob_path: str | None = Field(None, description="an image's path in the tenant's blob store")
    metadata: dict[str, Any] | None = None
    id: str | None = Field(None, description="a stable id; re-sending it replaces the document")


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": [{"type": "text", "content": "Tents can be returned within 60 days.",
                    "metadata": {"source": "returns"}}]}
    ]})

    items: list[IngestItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_BATCH)


class IngestAccepted(BaseModel):
    task_id: str


class TaskModel(BaseModel):
    task_id: str
    space_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    created_at: str
    updated_at: str
    kind: str
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="the contract's error code, e.g. nexus.cursor_invalid")
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
