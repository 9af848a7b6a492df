"""The contract's HTTP endpoints. Thin: each parses, calls nexus_query, and shapes the answer."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_process
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from starlette.requests import ClientDisconnect

from nexus_query.api.auth import AuthMiddleware, caller
from nexus_query.api.body_spool import spool, sweep_orphans
from nexus_query.api.cognition import cognition_router
from nexus_query.api.erasure import erasure_router
from nexus_query.api.errors import CatchAllMiddleware, install_error_handlers, refusal_response
from nexus_query.api.haze import haze_router
from nexus_query.api.ingest_body import OFFLOAD_BYTES, FastLane, IngestJob, land_in_worker, land_ingest_body, warm_up
from nexus_query.api.kpi import kpi_router
from nexus_query.api.limits import BodyGuardMiddleware, RateLimitMiddleware
from nexus_query.api.links import links_router
from nexus_query.api.models import (
    ID_REGEX,
    ErrorEnvelope,
    Health,
    IngestAccepted,
    IngestRequest,
    QueryRequest,
    QueryResponse,
    TaskModel,
    TaskPage,
    TaskState,
    raw_filters,
)
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidJson, NexusError, ValidationFailed
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
        404: "no such space, task, blob or endpoint",
        410: "cursor invalid: corrupt, forged, another tenant's or query's, expired, or its versions are gone",
        413: "the request body is larger than the route's limit: api.max_body_bytes for ingest, "
             "api.max_json_body_bytes (1 MiB) for every other route (nexus.payload_too_large)",
        422: "request does not match the schema (no type is coerced: \"5\" is not an integer)",
        429: "too many requests for this key (nexus.rate_limited) or the space's row quota is used up "
             "(nexus.quota_exceeded); the Retry-After header says when to try again",
        500: "unexpected failure (no details are exposed)",
        503: "no route for a resource kind (e.g. nexus_store.missing_route)",
    }.items()
}
log = logging.getLogger(__name__)
SPACE_ID = Path(description="the space id", pattern=ID_REGEX, max_length=63, examples=["main"])
TASK_ID = Path(description="the task id (the 202 answer's task_id)", pattern=ID_REGEX, max_length=63)
INGEST_PATH = re.compile(r"^/nexus/spaces/[^/]+/ingest$")  # large bodies; reads and checks its body itself
IMPORT_PATH = re.compile(r"^/nexus/spaces/[^/]+/cognition/imports$")  # the same: conversation exports
INGEST_WORKERS = 2  # worker processes landing large bodies at once


def create_app(registry: RoutingRegistry | None = None, *, warm_ingest_worker: bool = False,
               warm_serving: bool = False, fast_lane: FastLane | None = None) -> FastAPI:
    """The Nexus API. ``registry=None`` reads the configured registry (``NEXUS_CONFIG``) per request.
    ``warm_ingest_worker``: start a worker process for large ingest bodies with the server (``nexus
    serve`` does), so the first large body does not wait for one to start. ``warm_serving``: load the
    embedding model and compile the scan kernels before serving, so the first query costs what the
    hundredth does. ``fast_lane``: small batches and conversation exports are ingested here within a second or
    so (``FastLane``)."""
    current: Callable[[], RoutingRegistry] = (lambda: registry) if registry is not None else RoutingRegistry.default
    registry_given = registry is not None
    ingest_workers = anyio.CapacityLimiter(INGEST_WORKERS)
    @contextlib.asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(sweep_orphans)
        # Both warm-ups end before the server listens: a worker still importing beside the first queries
        # made them cost twice a warm one on two cores.
        async with anyio.create_task_group() as warming:
            if warm_ingest_worker:
                warming.start_soon(functools.partial(anyio.to_process.run_sync, warm_up, limiter=ingest_workers))
            if warm_serving:
                await anyio.to_thread.run_sync(warm_query_path, current())
                # FastAPI builds the routes of included routers (their fields and validators) on the first
                # request that reaches them, ~100 ms; building the OpenAPI schema builds them all now.
                started.openapi()
                # What start-up built lives as long as the process: out of the collector's way, so the
                # first requests do not pay a full collection of every module and model object.
                gc.collect()
                gc.freeze()
        yield

    app = FastAPI(title="Nexus", version="1", description="Query and ingest tenant knowledge spaces.",
                  lifespan=lifespan)
    install_error_handlers(app)
    # Outermost last: the catch-all, then identity (401 before anything is read), the key's request
    # rate, and the body's size and JSON form, all before the framework parses it.
    app.add_middleware(BodyGuardMiddleware, registry=current, large_bodies=[INGEST_PATH, IMPORT_PATH])
    app.add_middleware(RateLimitMiddleware, registry=current)
    app.add_middleware(AuthMiddleware, registry=current)
    app.add_middleware(CatchAllMiddleware)
    router = APIRouter(prefix="/nexus", responses=ERRORS)

    @router.post("/spaces/{space_id}/query", response_model=QueryResponse, summary="Search a space")
    def post_query(body: QueryRequest, space_id: str = SPACE_ID,
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        result = query(ctx, space_id, body.q, filters=raw_filters(body.filters), top_k=body.top_k,
                       include_global=body.include_global, cursor=body.cursor, mode=body.mode,
                       min_score=body.min_score, store=SpaceStore(current()))
        return {"hits": result.to_dicts(), "next_cursor": result.next_cursor}

    @router.post("/spaces/{space_id}/ingest", status_code=202, response_model=IngestAccepted,
                 summary="Accept a batch for ingestion",
                 responses={409: {"model": ErrorEnvelope, "description": "nexus.space_erasing: the space is being "
                                                                         "erased; try again when that ends"}},
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/IngestRequest"}}}}})
    async def post_ingest(request: Request, space_id: str = SPACE_ID,
                          ctx: RequestContext = Depends(caller)) -> Any:
        registry = current()
        registry.store_route(ctx)  # a tenant without a vector store: 503 at the door, nothing lands
        if not _is_json_request(request):
            raise ValidationFailed("the body must be application/json", field="content-type")
        try:
            body = await spool(request.stream(), limit=registry.config.api.max_body_bytes,
                               memory_bytes=OFFLOAD_BYTES)
        except ClientDisconnect:  # nobody is left to read the answer; nothing was kept
            raise InvalidJson("the body ended early: the client left while sending it") from None
        job = IngestJob(ctx, space_id, body, registry.config if registry_given else None)
        # Parsing and validating a large body holds the interpreter lock for seconds: a worker process
        # does it, from the file the body was spooled to, so other tenants' requests are not stalled.
        try:
            if body.path is not None:
                landed = await anyio.to_process.run_sync(land_in_worker, job, limiter=ingest_workers)
            else:
                landed = await anyio.to_thread.run_sync(land_ingest_body, job, fast_lane)
        finally:
            body.discard()
        if landed.task_id is None:
            return refusal_response(landed.status, landed.envelope, landed.retry_after)
        return {"task_id": landed.task_id}

    @router.get("/tasks", response_model=TaskPage, summary="The caller's tasks, newest first")
    def list_tasks(state: TaskState | None = Query(None, description="only tasks in this state"),
                   offset: int = Query(0, ge=0, le=1_000_000, description="tasks to skip"),
                   limit: int = Query(50, ge=1, le=500, description="tasks per page"),
                   ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        page = landing_zone(ctx, current()).list_tasks(state, offset=offset, limit=limit)
        return {"tasks": [t.to_dict() for t in page.tasks], "next_offset": page.next_offset}

    @router.get("/tasks/{task_id}", response_model=TaskModel, summary="An ingest task's status")
    def get_task(task_id: str = TASK_ID, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        return landing_zone(ctx, current()).read_task(task_id).to_dict()

    @router.post("/tasks/{task_id}/retry", status_code=202, response_model=TaskModel,
                 summary="Land a failed ingest task's batch again",
                 responses={409: {"model": ErrorEnvelope, "description": "the task is not a failed ingest task, or "
                                                                         "its space is being erased"},
                            410: {"model": ErrorEnvelope, "description": "nexus.task_gone: the task's batch was "
                                                                         "erased"}})
    def retry_task(task_id: str = TASK_ID, ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
        registry = current()
        registry.store_route(ctx)
        return landing_zone(ctx, registry).retry_task(task_id).to_dict()

    @app.get("/healthz", response_model=Health, summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    router.include_router(haze_router(current, SPACE_ID))
    router.include_router(cognition_router(current, SPACE_ID, fast_lane=fast_lane, workers=ingest_workers,
                                          registry_given=registry_given))
    router.include_router(erasure_router(current, SPACE_ID))
    router.include_router(kpi_router(current, SPACE_ID))
    router.include_router(links_router(current))
    app.include_router(router)
    app.openapi = _with_ingest_schema(app)  # type: ignore[method-assign]
    return app



WARM_SPACES = 32  # spaces a starting server queries once (its keys' spaces, in order), bounding the start
# Questions of the length people type, in words most indexes hold: after a two-word warm-up the first
# real query still cost 1.28-1.59x a warm one over HTTP (1.16-1.38x after these; bench/cli_latency.py).
WARM_QUERIES = ("what is the latest news about the project", "how do I return an order")


def warm_query_path(registry: RoutingRegistry) -> None:
    """Load the embedding models and run them once, compile the snapshot scan kernels, start the process's
    LanceDB session, then ask each space this server's keys reach (at most ``WARM_SPACES``) the
    ``WARM_QUERIES``: its table is open, its snapshot built and its full-text index read before the first
    real query, which then costs what a warm one does."""
    from nexus_query.embeddings import provider_for_space, warm_providers
    from nexus_query.store import snapshot_scan
    from nexus_query.store.space import lance_session

    warm_providers(registry.config)
    snapshot_scan.warm()
    lance_session()
    store = SpaceStore(registry)
    keys = sorted({(k.tenant_id, k.project_id, k.environment) for k in registry.config.api_keys})
    warmed = 0
    for tenant, project, environment in keys:
        ctx = RequestContext(tenant, project, environment)
        try:
            space_ids = store.space_ids(ctx)
        except NexusError:  # a tenant without a store route: its requests get the 503, not the start
            continue
        for space_id in space_ids[:WARM_SPACES - warmed]:
            try:
                provider = provider_for_space(registry.config, store.open(ctx, space_id).embedder)
                if provider.info.provider != "remote":  # a remote embedder would bill the tenant for it
                    for text in WARM_QUERIES:
                        query(ctx, space_id, text, store=store, provider=provider)
            except NexusError as exc:  # a space its first request will report on; the start goes on
                log.info("warming space %s/%s skipped: %s", tenant, space_id, exc)
            warmed += 1
        if warmed >= WARM_SPACES:
            return


def _is_json_request(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _with_ingest_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the ingest body's schema (the route reads its body itself)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            schema = IngestRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            spec.setdefault("components", {}).setdefault("schemas", {}).update(
                {**schema.pop("$defs", {}), "IngestRequest": schema})
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi
