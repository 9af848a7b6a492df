"""Re-projection requests: ``POST /nexus/spaces/{space_id}/haze/snapshot`` queues one, the pipeline's
sensor turns each into a run and removes it when the run is done (its task record keeps the outcome).
Requests for a space coalesce: while one waits (its task ``queued``), another joins it (same task, the
newer method, a refit if either asked) instead of queueing a second UMAP run; the run reads its request
when it starts, so what joined before then is honoured.

The one thing ``nexus_query`` writes in the projection store: a small JSON file per request.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict, dataclass, replace

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidRequest, NotFound, SpaceNotFound
from nexus_query.haze.read import METHODS, HazeStore, Method
from nexus_query.landing import GLOBAL_SPACE_ID, LandingZone, Task, landing_zone, now_iso
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

SNAPSHOT_TASK_KIND = "haze_snapshot"
_QUEUEING = threading.Lock()  # two requests at once in one server still make one waiting request


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
    haze, zone = HazeStore.for_context(ctx, registry), landing_zone(ctx, registry)
    with _QUEUEING:
        waiting = _waiting_request(haze, zone, space_id)
        if waiting is not None:
            _write_request(haze, replace(waiting, refit=waiting.refit or refit, method=chosen or waiting.method))
            return zone.read_task(waiting.task_id)
        stamp = now_iso()
        task = Task(task_id=uuid.uuid4().hex, space_id=space_id, status="queued", created_at=stamp,
                    updated_at=stamp, kind=SNAPSHOT_TASK_KIND)
        zone.write_task(task)  # first: a request the sensor sees always has its task
        _write_request(haze, ReprojectionRequest(task_id=task.task_id, space_id=space_id, refit=refit,
                                                 method=chosen, requested_at=stamp))
    return task


def _write_request(haze: HazeStore, request: ReprojectionRequest) -> None:
    haze.files.write_bytes_atomic(json.dumps(asdict(request)).encode(), "haze", request.space_id, "requests",
                                  f"{request.task_id}.json")


def _waiting_request(haze: HazeStore, zone: LandingZone, space_id: str) -> ReprojectionRequest | None:
    """The space's request whose run has not started (its task still ``queued``), if any."""
    for rel in haze.files.list("haze", space_id, "requests"):
        if rel.endswith(".json"):
            request = ReprojectionRequest(**json.loads(haze.files.read_bytes(*rel.split("/"))))
            try:
                if zone.read_task(request.task_id).status == "queued":
                    return request
            except NotFound:
                continue
    return None


def read_request(haze: HazeStore, space_id: str, task_id: str) -> ReprojectionRequest | None:
    """The request of task ``task_id`` as it stands now (requests that joined it included), if it waits."""
    parts = ("haze", validate_id(space_id, "space_id"), "requests", f"{validate_id(task_id, 'task_id')}.json")
    if not haze.files.exists(*parts):
        return None
    return ReprojectionRequest(**json.loads(haze.files.read_bytes(*parts)))


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
