"""Request and response bodies of the HTTP API, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus_query.cursors import MAX_CURSOR_CHARS
from nexus_query.landing import MAX_ITEMS_PER_BATCH
from nexus_query.query import MAX_TOP_K
from nexus_query.scoring import SUGGESTED_MIN_SCORE


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"q": "how do I return a tent?", "filters": {"topic": "returns"}, "top_k": 5, "include_global": True,
         "min_score": SUGGESTED_MIN_SCORE}
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
    min_score: float | None = Field(
        None, ge=0.0, le=1.0,
        description="drop hits scoring below this before paging (none by default); "
                    f"{SUGGESTED_MIN_SCORE} is the measured cut for 'no answer'")


class ScoreDetailsModel(BaseModel):
    vector: float | None = Field(None, ge=0.0, le=1.0, description="cosine similarity, clipped to [0, 1]")
    text: float | None = Field(None, ge=0.0, le=1.0,
                               description="share of the query's terms the hit contains (hybrid; null: "
                                           "not among the full-text hits)")
    rank_vector: int | None = Field(None, ge=1, description="rank by vector in the hit's own space")
    rank_text: int | None = Field(None, ge=1, description="rank by full text (BM25) in the hit's own space")


class HitModel(BaseModel):
    doc_id: str
    score: float = Field(ge=0.0, le=1.0, description="relevance: higher is better, the same meaning in "
                                                     "every mode, space and page")
    score_details: ScoreDetailsModel
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
