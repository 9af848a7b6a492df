"""The erasure endpoints: erase named documents of a space (or of every space of the caller), or the whole
space. They answer 202 with task ids; ``GET /nexus/tasks/{task_id}`` follows a run, and its counts are the
receipt. Names follow ``nexus_query.erasure.names``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, Field, StringConstraints

from nexus_query.api.auth import caller
from nexus_query.api.models import ErrorEnvelope, IngestAccepted, strict
from nexus_query.context import RequestContext
from nexus_query.erasure import request_erasure, request_tenant_erasure
from nexus_query.erasure.model import Scope
from nexus_query.erasure.names import MAX_NAME_CHARS, NAME_PATTERN, NAME_RULE
from nexus_query.erasure.plan import MAX_NAMES
from nexus_query.routing import RoutingRegistry

EraseName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]
REASON = Field(None, max_length=200, description="kept on tombstones and the receipt")
ALLOW_NONE = Field(False, description="accept a request whose names match nothing (otherwise 404 "
                                      "`nexus.nothing_to_erase`, listing the closest names the space has)")
NAMES_DOC = f"names, each {NAME_RULE}; compared after Unicode NFC normalization"


class EraseSources(BaseModel):
    model_config = strict(json_schema_extra={"examples": [{"sources": ["Résumé draft.md"]}]})

    sources: list[EraseName] = Field(min_length=1, max_length=MAX_NAMES, description=NAMES_DOC)
    reason: str | None = REASON
    allow_none: bool = ALLOW_NONE


class EraseDocIds(BaseModel):
    model_config = strict(json_schema_extra={"examples": [{"doc_ids": ["ret-how-to-return-tent"]}]})

    doc_ids: list[EraseName] = Field(min_length=1, max_length=MAX_NAMES,
                                     description=f"the same rule as `sources`: {NAMES_DOC}")
    reason: str | None = REASON
    allow_none: bool = ALLOW_NONE


# Exactly one kind of name: the two shapes are closed, so the schema itself says so.
EraseRequest = EraseSources | EraseDocIds


class ErasuresAccepted(BaseModel):
    task_ids: list[str] = Field(description="one erasure task per space that has a document of the names")


ERASE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "nexus.nothing_to_erase: no document answers to the names "
                                                 "(`looked_for`, `closest`), unless `allow_none`"},
    409: {"model": ErrorEnvelope, "description": "nexus.space_erasing: the space is being erased"},
    422: {"model": ErrorEnvelope, "description": f"a name outside the rule ({NAME_RULE}), or a bare file name "
                                                 "that several document paths share (`candidates`)"},
}


def _scope_and_names(body: EraseSources | EraseDocIds) -> tuple[Scope, list[str]]:
    if isinstance(body, EraseSources):
        return "sources", list(body.sources)
    return "doc_ids", list(body.doc_ids)


def erasure_router(current: Callable[[], RoutingRegistry], space_id_param: Any = None) -> APIRouter:
    router = APIRouter()
    space_id_param = space_id_param or Path(description="the space id", examples=["main"])

    @router.post("/spaces/{space_id}/erase", status_code=202, response_model=IngestAccepted, responses=ERASE_ERRORS,
                 summary="Erase documents from a space and from everything derived from them")
    def post_erase(body: EraseRequest = Body(), space_id: str = space_id_param,
                   ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        scope, names = _scope_and_names(body)
        task = request_erasure(ctx, space_id, scope, names, reason=body.reason, registry=current(),
                               allow_none=body.allow_none)
        return {"task_id": task.task_id}

    @router.post("/erase", status_code=202, response_model=ErasuresAccepted, responses=ERASE_ERRORS,
                 summary="Erase documents from every space of the caller, with the tenant-wide files they use")
    def post_erase_everywhere(body: EraseRequest = Body(), ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        scope, names = _scope_and_names(body)
        tasks = request_tenant_erasure(ctx, scope, names, reason=body.reason, registry=current(),
                                       allow_none=body.allow_none)
        return {"task_ids": [t.task_id for t in tasks]}

    @router.delete("/spaces/{space_id}", status_code=202, response_model=IngestAccepted,
                   responses={409: ERASE_ERRORS[409]},
                   summary="Erase a whole space: its table, files, maps and artifacts")
    def delete_space(space_id: str = space_id_param, ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        task = request_erasure(ctx, space_id, "space", reason="space deleted", registry=current())
        return {"task_id": task.task_id}

    return router
