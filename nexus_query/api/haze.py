"""The contract's HAZE extensions: stream a map's points, request a re-projection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from nexus_query.api.auth import caller
from nexus_query.api.models import IngestAccepted
from nexus_query.context import RequestContext
from nexus_query.haze import POINT_COLUMNS, HazeStore, Method, request_snapshot
from nexus_query.routing import RoutingRegistry

NDJSON = "application/x-ndjson"
# The map page is self-contained: it may run no script from elsewhere and send nothing anywhere.
MAP_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"refit": True}]})

    refit: bool = Field(default=False, description="draw a new map; otherwise new rows are placed into the current one")
    method: Method | None = Field(default=None, description="projection method; default umap")


def haze_router(current: Callable[[], RoutingRegistry], space_id_param: Any = None) -> APIRouter:
    router = APIRouter()
    space_id_param = space_id_param or Path(description="the space id", examples=["main"])

    @router.get("/spaces/{space_id}/haze/points", response_class=StreamingResponse,
                summary="Stream a HAZE map's points as NDJSON",
                responses={200: {"content": {NDJSON: {"example": '{"id": "...", "x": 1.2, "y": -0.4, '
                                                                 '"cluster": 3, "label": "tent, gear, pole", '
                                                                 '"type": "text", "source": "...", "text": "..."}\n'}},
                                 "description": f"one JSON object per line with {', '.join(POINT_COLUMNS)}"}})
    def get_points(space_id: str = space_id_param,
                   snapshot: str | None = Query(None, description="a snapshot id; default: the latest",
                                                pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"),
                   ctx: RequestContext = Depends(caller)) -> StreamingResponse:
        points = HazeStore.for_context(ctx, current()).open(space_id, snapshot)  # 404 before streaming starts
        return StreamingResponse(points.iter_ndjson(), media_type=NDJSON,
                                 headers={"X-Haze-Snapshot": points.snapshot_id})

    # response_class=Response: the 200 is the HTML documented below, while every error stays the JSON
    # ErrorEnvelope in the OpenAPI document (an HTMLResponse class would declare the errors text/html).
    @router.get("/spaces/{space_id}/haze/map", response_class=Response,
                summary="The interactive HAZE map of a space (one self-contained HTML page)",
                responses={200: {"content": {"text/html": {}}, "description": "the map: pan, zoom, hover, "
                                             "search, colour by cluster or type, click a point for its text"}})
    def get_map(space_id: str = space_id_param,
                snapshot: str | None = Query(None, description="a snapshot id; default: the latest",
                                             pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"),
                ctx: RequestContext = Depends(caller)) -> HTMLResponse:
        # The caller's own projection store only: another tenant's space id finds nothing (404).
        found = HazeStore.for_context(ctx, current()).open(space_id, snapshot)
        return HTMLResponse(found.html(), headers={
            "X-Haze-Snapshot": found.snapshot_id,
            "Content-Security-Policy": MAP_POLICY,
        })

    @router.post("/spaces/{space_id}/haze/snapshot", status_code=202, response_model=IngestAccepted,
                 summary="Request a new HAZE map (re-projection)")
    def post_snapshot(body: SnapshotRequest | None = Body(None), space_id: str = space_id_param,
                      ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        body = body or SnapshotRequest()
        registry = current()
        task = request_snapshot(ctx, space_id, refit=body.refit, method=body.method, registry=registry)
        return {"task_id": task.task_id}

    return router
