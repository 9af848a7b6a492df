"""Landing an ingest request body, start to end, as one plain function of bytes: decode and check the
JSON, validate it against ``IngestRequest``, check the quotas (``nexus_query.quotas``), land the batch.

The server runs it in a worker process for large bodies (``anyio.to_process``) and in a thread for small
ones: parsing and validating tens of megabytes holds the interpreter lock for seconds, and in the serving
process that would stall every other tenant's requests. A large body reaches the worker as the file it was
spooled to (``body_spool``), not as bytes through a pipe; only a small ``Landed`` comes back.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from nexus_query.api.body_spool import SpooledBody
from nexus_query.api.limits import read_json
from nexus_query.api.models import IngestRequest
from nexus_query.cognition.bricks import ImportReceipt
from nexus_query.config import NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidJson, NexusError, ValidationFailed
from nexus_query.landing import LandingZone, Task, estimated_rows, landing_zone
from nexus_query.quotas import check_landing_bytes, check_rows_at_admission, record_landing
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

# Bodies from this size on are spooled to a file and landed in a worker process; smaller ones are held
# in memory and landed in a thread of the server.
OFFLOAD_BYTES = 1 * 2**20
WORKER_NICENESS = 10


@dataclass(frozen=True)
class IngestJob:
    ctx: RequestContext
    space_id: str
    body: SpooledBody
    config: NexusConfig | None = None  # None: the configured registry (NEXUS_CONFIG), read in the worker


@dataclass(frozen=True)
class Landed:
    """The outcome: a task id, or the error's status, envelope and Retry-After (errors cross the process
    boundary as data: an exception's details do not survive pickling)."""

    task_id: str | None = None
    status: int = 202
    envelope: dict[str, Any] | None = None
    retry_after: int | None = None


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

    def import_export(self, ctx: RequestContext, space_id: str, file_name: str, data: bytes,
                      registry: RoutingRegistry) -> ImportReceipt:
        """Land a conversation export under a claim and ingest it in the serving process; raises (nothing
        stored) for a file that is not an export."""
        ...


def land_ingest_body(job: IngestJob, fast_lane: FastLane | None = None) -> Landed:
    try:
        registry = RoutingRegistry(job.config) if job.config is not None else RoutingRegistry.default()
        limits, zone = registry.config.api, landing_zone(job.ctx, registry)
        check_landing_bytes(limits.max_landing_bytes_per_day, zone, job.body.size)
        request = _parse(job.body.read())
        items = [item.model_dump(exclude_none=True) for item in request.items]
        check_row_quota(registry, job.ctx, zone, job.space_id, lambda: estimated_rows(items))
        max_items = limits.max_items_per_batch
        task = fast_lane.land(job.ctx, job.space_id, items, registry, max_items) if fast_lane else None
        if task is None:
            task = zone.land_batch(job.space_id, items, max_items=max_items)
        record_landing(zone, job.body.size)
        return Landed(task_id=task.task_id)
    except NexusError as exc:
        return Landed(status=exc.status, envelope=exc.envelope(), retry_after=getattr(exc, "retry_after", None))


def check_row_quota(registry: RoutingRegistry, ctx: RequestContext, zone: LandingZone, space_id: str,
                    incoming: Callable[[], int]) -> None:
    """Admission under ``api.max_rows_per_space`` (HTTP ingest and imports, the agents' store): 429 before
    anything lands. ``incoming()``, the rows the request will become, is only worked out under a quota."""
    quota = registry.config.api.max_rows_per_space
    if quota is not None:
        store = SpaceStore(registry)
        rows = store.open(ctx, space_id).count() if store.exists(ctx, space_id) else 0
        check_rows_at_admission(quota, zone, space_id, rows, incoming())


def land_in_worker(job: IngestJob) -> Landed:
    """``land_ingest_body`` in a worker process, at a lower CPU priority than the serving process."""
    lower_priority()
    return land_ingest_body(job)


def warm_up() -> bool:
    """Run in a fresh worker so its imports are done before the first large body arrives."""
    lower_priority()
    return True


@functools.cache
def lower_priority() -> None:
    """Once per worker: on a busy machine the scheduler then serves the other tenants' queries first, and a
    large upload takes the CPU time they leave."""
    os.nice(WORKER_NICENESS)
