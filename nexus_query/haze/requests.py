"""Re-projection requests: ``POST /nexus/spaces/{space_id}/haze/snapshot`` queues one, the pipeline's
sensor turns each into a run and removes it when the run is done (its task record keeps the outcome).

The one thing ``nexus_query`` writes in the projection store: a small JSON file per request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidRequest, SpaceNotFound
from nexus_query.haze.read import METHODS, HazeStore, Method
from nexus_query.landing import GLOBAL_SPACE_ID, Task, landing_zone, now_iso
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

SNAPSHOT_TASK_KIND = "haze_snapshot"


@dataclass(frozen=True)
class ReprojectionRequest:
    """``haze/{space_id}/requests/{task_id}.json``: draw a new map of the space (``refit``) or place its new
    rows into the current one, with ``method`` (None: the pipeline's default)."""

    task_id: str
    space_id: str
    refit: bool
    method: Method | None
    requested_at: str


def request_snapshot(ctx: RequestContext, space_id: str, *, refit: bool = False, method: str | None = None,
                     registry: RoutingRegistry | None = None) -> Task:
    """Queue a re-projection of one of the caller's spaces: a task record (read by ``GET /nexus/tasks/{id}``)
    and a request file that the pipeline's sensor turns into a run."""
    validate_id(space_id, "space_id")
    if space_id == GLOBAL_SPACE_ID:
        raise InvalidRequest("the global space is projected by system jobs, not on request", field="space_id")
    chosen = _method(method)
    if not isinstance(refit, bool):
        raise InvalidRequest("refit must be true or false", field="refit")
    if not SpaceStore(registry).exists(ctx, space_id):
        raise SpaceNotFound(f"space {space_id!r} does not exist yet", space_id=space_id)
    stamp = now_iso()
    task = Task(task_id=uuid.uuid4().hex, space_id=space_id, status="queued", created_at=stamp,
                updated_at=stamp, kind=SNAPSHOT_TASK_KIND)
    landing_zone(ctx, registry).write_task(task)  # first: a request the sensor sees always has its task
    request = ReprojectionRequest(task_id=task.task_id, space_id=space_id, refit=refit, method=chosen,
                                  requested_at=stamp)
    HazeStore.for_context(ctx, registry).files.write_bytes_atomic(
        json.dumps(asdict(request)).encode(), "haze", space_id, "requests", f"{task.task_id}.json")
    return task


def _method(value: str | None) -> Method | None:
    if value is None:
        return None
    for known in METHODS:
        if value == known:
            return known
    raise InvalidRequest(f"method must be one of {METHODS}", field="method")


def pending_requests(haze: HazeStore) -> list[ReprojectionRequest]:
    """Every waiting request of this tenant's spaces, oldest first."""
    found = []
    for rel in haze.files.list("haze"):
        parts = rel.split("/")
        if len(parts) == 4 and parts[2] == "requests" and parts[3].endswith(".json"):
            found.append(ReprojectionRequest(**json.loads(haze.files.read_bytes(*parts))))
    return sorted(found, key=lambda r: r.requested_at)


def finish_request(haze: HazeStore, space_id: str, task_id: str) -> None:
    """Remove a handled request (its task record keeps the outcome)."""
    parts = ("haze", validate_id(space_id, "space_id"), "requests", f"{validate_id(task_id, 'task_id')}.json")
    if haze.files.exists(*parts):
        haze.files.fs.rm_file(haze.files.path(*parts))
