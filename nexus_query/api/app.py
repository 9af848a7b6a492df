"""The contract's HTTP endpoints. Thin: each parses, calls nexus_query, and shapes the answer."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Body, Depends, FastAPI, Path

from nexus_query.api.auth import AuthMiddleware, caller
from nexus_query.api.cognition import cognition_router
from nexus_query.api.erasure import erasure_router
from nexus_query.api.errors import CatchAllMiddleware, install_error_handlers
from nexus_query.api.haze import haze_router
from nexus_query.api.models import (
    ErrorEnvelope,
    Health,
    IngestAccepted,
    IngestRequest,
    QueryRequest,
    QueryResponse,
    TaskModel,
)
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "invalid request (bad id, filter, cursor type, ...)",
        401: "missing or invalid API key",
        403: "forbidden (e.g. writing the read-only global space)",
        404: "no such space, task or endpoint",
        410: "cursor invalid: corrupt, forged, another tenant's or query's, expired, or its versions are gone",
        422: "request does not match the schema",
        500: "unexpected failure (no details are exposed)",
        503: "no route for a resource kind (e.g. nexus_store.missing_route)",
    }.items()
}
SPACE_ID = Path(description="the space id", examples=["main"])


def create_app(registry: RoutingRegistry | None = None) -> FastAPI:
    """The Nexus API. ``registry=None`` reads the configured registry (``NEXUS_CONFIG``) per request."""
    current: Callable[[], RoutingRegistry] = (lambda: registry) if registry is not None else RoutingRegistry.default
    app = FastAPI(title="Nexus", version="1", description="Query and ingest tenant knowledge spaces.")
    install_error_handlers(app)
    app.add_middleware(AuthMiddleware, registry=current)
    app.add_middleware(CatchAllMiddleware)  # added last: the outermost of ours, around auth too
    router = APIRouter(prefix="/nexus", responses=ERRORS)

    @router.post("/spaces/{space_id}/query", response_model=QueryResponse, summary="Search a space")
    def post_query(body: QueryRequest, space_id: str = SPACE_ID,
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        result = query(ctx, space_id, body.q, filters=body.filters, top_k=body.top_k,
                       include_global=body.include_global, cursor=body.cursor, mode=body.mode,
                       store=SpaceStore(current()))
        return {"hits": result.to_dicts(), "next_cursor": result.next_cursor}

    @router.post("/spaces/{space_id}/ingest", status_code=202, response_model=IngestAccepted,
                 summary="Accept a batch for ingestion")
    def post_ingest(body: IngestRequest = Body(), space_id: str = SPACE_ID,
                    ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        items = [item.model_dump(exclude_none=True) for item in body.items]
        return {"task_id": landing_zone(ctx, current()).land_batch(space_id, items).task_id}

    @router.get("/tasks/{task_id}", response_model=TaskModel, summary="An ingest task's status")
    def get_task(task_id: str, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        return landing_zone(ctx, current()).read_task(task_id).to_dict()

    @app.get("/healthz", response_model=Health, summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    router.include_router(haze_router(current))
    router.include_router(cognition_router(current))
    router.include_router(erasure_router(current))
    app.include_router(router)
    return app
