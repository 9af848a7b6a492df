"""Request and response bodies of the HTTP API, as the OpenAPI document shows them.

Requests are strict: no type coercion (``"5"`` or ``true`` is not a ``top_k``, ``"yes"`` not a boolean),
unknown fields are refused, and every rule the server enforces on its own (id patterns, bounds, text that
must not be blank) is declared here, so a request the document calls valid is one the server accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Unpack

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from nexus_query.context import ID_PATTERN
from nexus_query.cursors import MAX_CURSOR_CHARS
from nexus_query.landing import MAX_CONTENT_CHARS, MAX_ITEMS_PER_BATCH
from nexus_query.query import MAX_TOP_K
from nexus_query.scoring import SUGGESTED_MIN_SCORE
from nexus_query.store.filters import MAX_FILTER_KEYS, MAX_FILTER_VALUES

ID_REGEX = f"^{ID_PATTERN.pattern}$"
# At least one character that is white space to none of the readers of this pattern: Python's str.strip()
# (the handlers), pydantic's Rust regex (the server) and ECMA regex (clients and schema fuzzers) disagree
# on U+001C-U+001F, U+0085 and U+FEFF, so a bare \S let a request valid by the schema fail in a handler.
NOT_BLANK = r"[^\s\x1c-\x1f\u0085\ufeff]"
# The tenant's media area (``media/...``), or a URL/absolute path inside the tenant's store (checked there).
BLOB_PATH_REGEX = r"^(media/|/|[A-Za-z][A-Za-z0-9+.-]*://)[^\x00\\]+$"


def strict(**extra: Unpack[ConfigDict]) -> ConfigDict:
    return ConfigDict(extra="forbid", strict=True, **extra)


def _whole_number(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; so does the API. "5", true and 5.5 stay refused."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


# --- filters ---------------------------------------------------------------------------------------
class _Operator(BaseModel):
    model_config = strict()


class EqOperator(_Operator):
    eq: Any = Field(alias="$eq", description="metadata equals this JSON value")


class NeOperator(_Operator):
    ne: Any = Field(alias="$ne", description="metadata is absent or differs from this JSON value")


class InOperator(_Operator):
    in_: list[Any] = Field(alias="$in", min_length=1, max_length=MAX_FILTER_VALUES,
                           description="metadata equals one of these values")


class NinOperator(_Operator):
    nin: list[Any] = Field(alias="$nin", min_length=1, max_length=MAX_FILTER_VALUES,
                           description="metadata is absent or equals none of these values")


class ExistsOperator(_Operator):
    exists: bool = Field(alias="$exists", description="the metadata key is present (true) or absent (false)")


FilterScalar = str | int | float | bool | None
FilterValue = FilterScalar | EqOperator | NeOperator | InOperator | NinOperator | ExistsOperator
FilterKey = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^$]")]


def _closed_filter_keys(schema: dict[str, Any]) -> None:
    """Declare what the server enforces: filter keys are non-empty and never start with '$'."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "object":
            option["propertyNames"] = {"minLength": 1, "pattern": "^[^$]"}
            option["additionalProperties"] = False


def raw_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The filters as ``nexus_query.query`` takes them (operator objects back to ``{"$op": value}``)."""
    if filters is None:
        return None
    return {k: v.model_dump(by_alias=True) if isinstance(v, BaseModel) else v for k, v in filters.items()}


# --- query -----------------------------------------------------------------------------------------
class QueryRequest(BaseModel):
    model_config = strict(json_schema_extra={"examples": [
        {"q": "how do I return a tent?", "filters": {"topic": "returns"}, "top_k": 5, "include_global": True,
         "min_score": SUGGESTED_MIN_SCORE}
    ]})

    q: str = Field(min_length=1, max_length=10_000, pattern=NOT_BLANK, description="what to search for")
    filters: dict[FilterKey, FilterValue] | None = Field(
        None, max_length=MAX_FILTER_KEYS, json_schema_extra=_closed_filter_keys,
        description='exact metadata matches, all of which must hold: {"key": value}, or an operator '
                    'object {"key": {"$eq"|"$ne": v}}, {"$in"|"$nin": [v, ...]}, {"$exists": bool}')
    top_k: WholeNumber = Field(10, ge=1, le=MAX_TOP_K)
    include_global: bool = Field(False, description="merge hits from the shared, read-only global space")
    # A bounded string and nothing more: any cursor that cannot be decoded, verified or matched to the
    # request is the contract's 410 nexus.cursor_invalid, never a 422 (the seed's rule).
    cursor: str | None = Field(None, min_length=1, max_length=MAX_CURSOR_CHARS,
                               description="next_cursor of the previous page, with the same query; a cursor "
                                           "that is corrupt, forged, expired or another query's is 410")
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


# --- ingest ----------------------------------------------------------------------------------------
DocId = Annotated[str, StringConstraints(pattern=ID_REGEX)]


class TextItem(BaseModel):
    model_config = strict()

    type: Literal["text"]
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=NOT_BLANK)
    metadata: dict[str, Any] | None = None
    id: DocId | None = Field(None, description="a stable id; re-sending it replaces the document")


class ImageItem(BaseModel):
    model_config = strict()

    type: Literal["image"]
    blob_path: str = Field(min_length=1, max_length=1024, pattern=BLOB_PATH_REGEX,
                           description="the image's path in the tenant's media area, `media/...` of its blob "
                                       "store (what `nexus ingest` copies images into; 422 for any other file "
                                       "of the store, 404 when it is not there)")
    content: str | None = Field(None, max_length=MAX_CONTENT_CHARS, description="a caption")
    metadata: dict[str, Any] | None = None
    id: DocId | None = Field(None, description="a stable id; re-sending it replaces the document")


IngestItem = Annotated[TextItem | ImageItem, Field(discriminator="type")]


class IngestRequest(BaseModel):
    model_config = strict(json_schema_extra={"examples": [
        {"items": [{"type": "text", "content": "Tents can be returned within 60 days.",
                    "metadata": {"source": "returns"}}]}
    ]})

    items: list[IngestItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_BATCH)


class IngestAccepted(BaseModel):
    task_id: str = Field(pattern=ID_REGEX)


TaskState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class TaskModel(BaseModel):
    task_id: str
    space_id: str
    status: TaskState
    created_at: str
    updated_at: str
    kind: str
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    attempts: int = Field(1, description="how often the task was landed (1 + retries)")
    problems: list[str] = Field(default_factory=list,
                                description="what the run that settled the task skipped: files whose names "
                                            "it refused, lines it could not read; the rest was ingested")
    estimated_rows: int | None = Field(None, description="rows an ingest batch is expected to become "
                                                         "(counted against the space's row quota while it waits)")
    reason: str | None = Field(None, description="cancelled: why (`erased`: its batch was erased with its space "
                                                 "or its documents)")
    erasure_id: str | None = Field(None, description="cancelled: the erasure that removed its batch")


class TaskPage(BaseModel):
    tasks: list[TaskModel]
    next_offset: int | None = Field(None, description="pass as offset for the next page; null on the last")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="the contract's error code, e.g. nexus.cursor_invalid")
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
