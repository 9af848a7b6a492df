"""Landing an ingest request body, start to end, as one plain function of bytes: decode and check the
JSON, validate it against ``IngestRequest``, check the row quota, land the batch.

The server runs it in a worker process for large bodies (``anyio.to_process``) and in a thread for small
ones: parsing and validating tens of megabytes holds the interpreter lock for seconds, and in the serving
process that would stall every other tenant's requests. Only the body's bytes go to the worker and only
a small ``Landed`` comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from nexus_query.api.limits import read_json
from nexus_query.api.models import IngestRequest
from nexus_query.config import NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidJson, NexusError, QuotaExceeded, ValidationFailed
from nexus_query.landing import Task, landing_zone
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

# Bodies from this size on are landed in a worker process; smaller ones in a thread of the server.
OFFLOAD_BYTES = 1 * 2**20
QUOTA_RETRY_SECONDS = 3600


@dataclass(frozen=True)
class IngestJob:
    ctx: RequestContext
    space_id: str
    body: bytes
    config: NexusConfig | None = None  # None: the configured registry (NEXUS_CONFIG), read in the worker


@dataclass(frozen=True)
class Landed:
    """The outcome: a task id, or the error's status, envelope and Retry-After (errors cross the process
    boundary as data: an exception's details do not survive pickling)."""

    task_id: str | None = None
    status: int = 202
    envelope: dict[str, Any] | None = None
    retry_after: int | None = None


def check_row_quota(registry: RoutingRegistry, ctx: RequestContext, space_id: str, incoming: int) -> None:
    """429 when the space already holds ``api.max_rows_per_space`` rows (or would with this batch)."""
    quota = registry.config.api.max_rows_per_space
    if quota is None:
        return
    store = SpaceStore(registry)
    rows = store.open(ctx, space_id).count() if store.exists(ctx, space_id) else 0
    if rows + incoming > quota:
        raise QuotaExceeded(f"space {space_id!r} holds {rows} rows; its quota is {quota}",
                            retry_after=QUOTA_RETRY_SECONDS, rows=rows, max_rows_per_space=quota)


def _parse(body: bytes) -> IngestRequest:
    if not body:
        raise InvalidJson('the request body is empty; send {"items": [...]}')
    value = read_json(body)
    try:
        return IngestRequest.model_validate(value)
    except ValidationError as exc:
        problems = [{"loc": ["body", *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()][:20]
        raise ValidationFailed("request does not match the API schema", errors=problems) from None


class FastLane(Protocol):
    """Lands a small batch under a claim and ingests it in the serving process (the pipelines' fast path,
    ``nexus_pipelines.ingest.fast.ServerFastLane``, which ``nexus serve`` plugs in when the pipelines and
    a Dagster instance are there); None when it leaves the batch to the sensors."""

    def land(self, ctx: RequestContext, space_id: str, items: Sequence[Mapping[str, Any]],
             registry: RoutingRegistry, max_items: int) -> Task | None: ...


def land_ingest_body(job: IngestJob, fast_lane: FastLane | None = None) -> Landed:
    try:
        registry = RoutingRegistry(job.config) if job.config is not None else RoutingRegistry.default()
        request = _parse(job.body)
        check_row_quota(registry, job.ctx, job.space_id, len(request.items))
        items = [item.model_dump(exclude_none=True) for item in request.items]
        max_items = registry.config.api.max_items_per_batch
        task = fast_lane.land(job.ctx, job.space_id, items, registry, max_items) if fast_lane else None
        if task is None:
            task = landing_zone(job.ctx, registry).land_batch(job.space_id, items, max_items=max_items)
        return Landed(task_id=task.task_id)
    except NexusError as exc:
        return Landed(status=exc.status, envelope=exc.envelope(), retry_after=getattr(exc, "retry_after", None))


def warm_up() -> bool:
    """Run in a fresh worker so its imports are done before the first large body arrives."""
    return True
