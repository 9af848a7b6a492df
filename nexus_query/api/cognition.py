"""The cognition endpoints: import a conversation export into a space, assemble a topic's artifact in a
space, read an artifact by id (the caller's tenant only: artifacts live in the tenant's own store)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import anyio
import anyio.to_process
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from nexus_query.api.auth import caller
from nexus_query.api.body_spool import spool
from nexus_query.api.errors import refusal_response
from nexus_query.api.import_body import FAST_MAX_EXPORT_BYTES, ImportJob, land_import_body, land_import_in_worker
from nexus_query.api.ingest_body import OFFLOAD_BYTES, FastLane
from nexus_query.api.models import NOT_BLANK, ErrorEnvelope, WholeNumber
from nexus_query.cognition import ASSEMBLED, NO_RECALL_MATCHES, SOURCES_UNAVAILABLE, ArtifactStore, assemble_topic
from nexus_query.cognition.artifacts import ARTIFACT_ID_PATTERN
from nexus_query.cognition.recall import DEFAULT_K, MAX_K
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidJson, ValidationFailed
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore


class AssembleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"topic": "refund for a tent returned with mildew", "k": 15}]})

    topic: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK, description="what the artifact is about")
    k: WholeNumber = Field(DEFAULT_K, ge=1, le=MAX_K, description="bricks to recall")


class ImportAccepted(BaseModel):
    """An accepted import: what the export holds, its task, where it was kept and landed, and how it is
    ingested (``fast``: by this server within seconds; ``run``: by the sensors' pipeline run)."""

    task_id: str
    space_id: str
    format: str
    conversations: int
    empty_conversations: int
    messages: int
    alternate_messages: int
    blocks: int
    archived: str = Field(description="the original export in the tenant's blob store (write-once)")
    landed: str = Field(description="the copy in the landing zone that the ingest reads")
    path: Literal["fast", "run"]


class BlockModel(BaseModel):
    index: int
    text: str


class MessageModel(BaseModel):
    message_id: str
    parent_id: str | None = Field(None, description="the message this one follows (null: a thread's first); "
                                                    "siblings are edited or regenerated branches")
    role: str
    name: str | None = Field(None, description="the speaker's name, only where the export gives one")
    created_at: str | None
    blocks: list[BlockModel]


class SpanModel(BaseModel):
    message_id: str
    block_index: int


class CoverageModel(BaseModel):
    spans: list[SpanModel]


class ExcerptModel(BaseModel):
    source_file: str = Field(description="the source's path in the tenant's blob store")
    coverage: CoverageModel
    current_message_id: str | None = Field(None, description="the leaf of the thread the user last saw")
    title: str | None = Field(None, description="the conversation's title")
    created_at: str | None = Field(None, description="when the conversation took place: its own time, else its "
                                                     "earliest message's")
    conversation: list[MessageModel] = Field(description="the whole conversation, every branch, never truncated")


class ProvenanceModel(BaseModel):
    brick_ids: list[str]
    source_files: list[str]


class PayloadModel(BaseModel):
    topic: str
    artifact_type: Literal["TOPIC_COGNITION_V1"]
    coverage_status: Literal[ASSEMBLED, NO_RECALL_MATCHES, SOURCES_UNAVAILABLE]  # type: ignore[valid-type]
    provenance: ProvenanceModel
    raw_excerpts: list[ExcerptModel]
    extracted_facts: list[Any]
    decisions: list[Any]
    constraints: list[Any]
    edge_cases: list[Any]


class ArtifactModel(BaseModel):
    artifact_id: str = Field(description='"sha256:" + SHA-256 of the payload\'s canonical JSON', examples=[
        "sha256:" + "0" * 64])
    created_at: str
    query: str
    derived_from: list[str]
    payload: PayloadModel


class TombstoneModel(BaseModel):
    """What an erased artifact's id resolves to: no content (see docs/erasure.md)."""

    artifact_id: str
    coverage_status: Literal["ERASED"]
    erased_at: str
    reason: str


def cognition_router(current: Callable[[], RoutingRegistry], space_id_param: Any = None, *,
                     fast_lane: FastLane | None = None, workers: anyio.CapacityLimiter | None = None,
                     registry_given: bool = False) -> APIRouter:
    """``fast_lane``: the server's warm writer, which ingests small exports; ``workers``: the worker
    processes that land large bodies; ``registry_given``: ``current()`` is a fixed registry, which a worker
    process is then handed (else it reads the configured one)."""
    router = APIRouter()
    space_id_param = space_id_param or Path(description="the space id", examples=["main"])
    workers = workers or anyio.CapacityLimiter(1)

    @router.post("/spaces/{space_id}/cognition/imports", status_code=202, response_model=ImportAccepted,
                 summary="Import a conversation export (ChatGPT, Claude or canonical JSON) into a space",
                 responses={409: {"model": ErrorEnvelope, "description": "nexus.import_in_progress: another "
                                  "import of the space is running; nexus.space_erasing: the space is being erased"}},
                 openapi_extra={"requestBody": {"required": True, "description": "the export file as it is: "
                                                "conversations.json of ChatGPT or Claude, or canonical JSON",
                                                "content": {"application/json": {"schema": {}}}}})
    async def post_import(request: Request, space_id: str = space_id_param,
                          file_name: str = Query("conversations.json", min_length=1, max_length=255,
                                                 description="the export's file name (kept in the stored name)"),
                          ctx: RequestContext = Depends(caller)) -> Any:
        registry = current()
        registry.store_route(ctx)  # a tenant without a vector store: 503 at the door, nothing lands
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ValidationFailed("the body must be the export file, sent as application/json",
                                   field="content-type")
        try:
            body = await spool(request.stream(), limit=registry.config.api.max_body_bytes, memory_bytes=OFFLOAD_BYTES)
        except ClientDisconnect:
            raise InvalidJson("the body ended early: the client left while sending it") from None
        if not body.size:
            raise InvalidJson("the request body is empty; send the export file")
        job = ImportJob(ctx, space_id, file_name, body, registry.config if registry_given else None)
        try:
            if body.size > FAST_MAX_EXPORT_BYTES:  # bulk: parsed in a worker process, run by the pipeline
                landed = await anyio.to_process.run_sync(land_import_in_worker, job, limiter=workers)
            else:
                landed = await anyio.to_thread.run_sync(land_import_body, job, fast_lane)
        finally:
            body.discard()
        if landed.receipt is None:
            return refusal_response(landed.status, landed.envelope, landed.retry_after)
        return landed.receipt

    # exclude_unset: an artifact goes out exactly as stored (one assembled before parent_id existed included),
    # so it still hashes to its id.
    @router.post("/spaces/{space_id}/cognition/assemble", response_model=ArtifactModel,
                 response_model_exclude_unset=True,
                 summary="Assemble (and store, write-once) the cognition artifact of a topic")
    def post_assemble(body: AssembleRequest, space_id: str = space_id_param,
                      ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        return assemble_topic(ctx, space_id, body.topic, body.k, store=SpaceStore(current()))

    @router.get("/artifacts/{artifact_id}", response_model=ArtifactModel | TombstoneModel,
                response_model_exclude_unset=True,
                summary="A stored cognition artifact (or the tombstone of an erased one)")
    def get_artifact(artifact_id: str = Path(description="sha256:<64 hex digits>, in either case",
                                             pattern=ARTIFACT_ID_PATTERN),
                     ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        return ArtifactStore.for_context(ctx, current()).get(artifact_id)

    return router
