"""The erasure endpoints: erase named sources or documents of a space, or the whole space. Both answer
202 with a task id; ``GET /nexus/tasks/{task_id}`` follows the run, and its counts are the receipt."""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nexus_query.api.auth import caller
from nexus_query.api.models import IngestAccepted
from nexus_query.context import RequestContext
from nexus_query.erasure import request_erasure
from nexus_query.erasure.plan import MAX_NAMES
from nexus_query.routing import RoutingRegistry



class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sources": ["canary-note.md"]}]})

    sources: list[str] | None = Field(None, min_length=1, max_length=MAX_NAMES,
                                      description="landed file names (a dropped file's source name is its file "
                                                  "name), conversation source files or document ids")
    doc_ids: list[str] | None = Field(None, min_length=1, max_length=MAX_NAMES,
                                      description="document ids (the rows' source)")
    reason: str | None = Field(None, max_length=200, description="kept on tombstones and the receipt")

    @model_validator(mode="after")
    def one_kind_of_name(self) -> "EraseRequest":
        if (self.sources is None) == (self.doc_ids is None):
            raise ValueError("give either sources or doc_ids")
        return self


def erasure_router(current: Callable[[], RoutingRegistry]) -> APIRouter:
    router = APIRouter()
    space_id_param = Path(description="the space id", examples=["main"])

    @router.post("/spaces/{space_id}/erase", status_code=202, response_model=IngestAccepted,
                 summary="Erase documents from a space and from everything derived from them")
    def post_erase(body: EraseRequest = Body(), space_id: str = space_id_param,
                   ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        scope, names = ("sources", body.sources) if body.sources is not None else ("doc_ids", body.doc_ids)
        task = request_erasure(ctx, space_id, scope, names or [], reason=body.reason, registry=current())
        return {"task_id": task.task_id}

    @router.delete("/spaces/{space_id}", status_code=202, response_model=IngestAccepted,
                   summary="Erase a whole space: its table, files, maps and artifacts")
    def delete_space(space_id: str = space_id_param, ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        task = request_erasure(ctx, space_id, "space", reason="space deleted", registry=current())
        return {"task_id": task.task_id}

    return router
