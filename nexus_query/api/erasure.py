"""The erasure endpoints: erase named sources or documents of a space, or the whole space. Both answer
202 with a task id; ``GET /nexus/tasks/{task_id}`` follows the run, and its counts are the receipt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, Field, StringConstraints

from nexus_query.api.auth import caller
from nexus_query.api.models import IngestAccepted, strict
from nexus_query.context import RequestContext
from nexus_query.erasure import request_erasure
from nexus_query.erasure.model import Scope
from nexus_query.erasure.plan import MAX_NAMES
from nexus_query.routing import RoutingRegistry

ERASE_NAME_REGEX = r"^[^\x00\\#][^\x00\\]*$"  # plain relative names ('/' separators); '#' starts a part
EraseName = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=ERASE_NAME_REGEX)]
REASON = Field(None, max_length=200, description="kept on tombstones and the receipt")


class EraseSources(BaseModel):
    model_config = strict(json_schema_extra={"examples": [{"sources": ["canary-note.md"]}]})

    sources: list[EraseName] = Field(min_length=1, max_length=MAX_NAMES,
                                     description="landed file names (a dropped file's source name is its file "
                                                 "name), conversation source files or document ids")
    reason: str | None = REASON


class EraseDocIds(BaseModel):
    model_config = strict(json_schema_extra={"examples": [{"doc_ids": ["ret-how-to-return-tent"]}]})

    doc_ids: list[EraseName] = Field(min_length=1, max_length=MAX_NAMES, description="document ids (the rows' source)")
    reason: str | None = REASON


# Exactly one kind of name: the two shapes are closed, so the schema itself says so.
EraseRequest = EraseSources | EraseDocIds


def erasure_router(current: Callable[[], RoutingRegistry], space_id_param: Any = None) -> APIRouter:
    router = APIRouter()
    space_id_param = space_id_param or Path(description="the space id", examples=["main"])

    @router.post("/spaces/{space_id}/erase", status_code=202, response_model=IngestAccepted,
                 summary="Erase documents from a space and from everything derived from them")
    def post_erase(body: EraseRequest = Body(), space_id: str = space_id_param,
                   ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        scope: Scope
        scope, names = ("sources", body.sources) if isinstance(body, EraseSources) else ("doc_ids", body.doc_ids)
        task = request_erasure(ctx, space_id, scope, list(names), reason=body.reason, registry=current())
        return {"task_id": task.task_id}

    @router.delete("/spaces/{space_id}", status_code=202, response_model=IngestAccepted,
                   summary="Erase a whole space: its table, files, maps and artifacts")
    def delete_space(space_id: str = space_id_param, ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        task = request_erasure(ctx, space_id, "space", reason="space deleted", registry=current())
        return {"task_id": task.task_id}

    return router
