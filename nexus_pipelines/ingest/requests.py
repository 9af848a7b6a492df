"""What the landing sensors ask for, and how: run requests for landed batches and for changes of a space's
dropped files, the scan that gathers them, and the sensor result that turns them into runs and partitions.
Shared by the inbox sensor (``sensors``) and the reconciliation sweep (``sweep``)."""

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.claims import Claims
from nexus_query.errors import NotFound
from nexus_query.landing import LandingZone

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Store reads of one tick (task records, listings) run on this many threads: they wait on the network.
IO_THREADS = 16
FILES_STATE = ".files-seen.json"  # hidden: never read as a document, never listed as landed data
TRIGGER_TAG = "nexus/trigger"
T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C", bound="DataclassInstance")


def cursor_from_json(cls: type[C], raw: str | None) -> C:
    """A cursor dataclass from its JSON; keys it does not know (an older cursor's) are ignored."""
    values = json.loads(raw) if raw else {}
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass(frozen=True)
class Requested:
    partition_key: str
    run_key: str
    tags: dict[str, str]


@dataclass
class LandingScan:
    partitions: set[str] = field(default_factory=set)  # spaces with something new landed
    requests: list[Requested] = field(default_factory=list)
    listing_calls: int = 0  # store listings the scan made (the inbox's, or the landing zones')
    kpi_versions: dict[str, str] = field(default_factory=dict)  # partition key -> KPI source fingerprint
    tenants: int = 0  # tenants a sweep tick covered

    def add(self, request: Requested | None) -> None:
        if request is not None:
            self.partitions.add(request.partition_key)
            self.requests.append(request)


def modified_time(info: dict[str, Any]) -> float:
    stamp = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp or 0)


def batch_request(key: SpaceKey, batch_id: str, run_key: str) -> Requested:
    return Requested(key.partition_key, run_key, {**key.run_tags, TASK_TAG: batch_id, TRIGGER_TAG: "batch"})


def run_key_if_queued(zone: LandingZone, space_id: str, batch_id: str) -> str | None:
    """The run key of a batch whose task is queued: the batch id, with the attempt for a retried task
    (Dagster runs a run key once); None when its task is not queued, or while a live claim says someone
    (the server's fast path, a ``--wait`` command) is running it. A lost task record comes back from the
    copy the batch carries."""
    if Claims(zone.files).held_by_other(batch_id):
        return None
    try:
        task = zone.task_of_batch(space_id, batch_id)
    except (NotFound, ValueError):  # an unreadable batch: its run fails and reports why
        return batch_id
    if task.status != "queued":
        return None
    return batch_id if task.attempts <= 1 else f"{batch_id}:attempt-{task.attempts}"


def space_files(zone: LandingZone, space_id: str) -> list[tuple[str, Any, float]]:
    """(path below files/, size, mtime) of the space's dropped files, from one listing."""
    root = zone.files.path("landing", space_id, "files")
    found = []
    for full, info in zone.files.fs.find(root, detail=True).items():
        rel = full[len(root.rstrip("/")) + 1:]
        if not any(part.startswith(".") for part in rel.split("/")):
            found.append((rel, info.get("size"), modified_time(info)))
    return sorted(found)


def files_request(zone: LandingZone, key: SpaceKey, files: list[tuple[str, Any, float]]) -> Requested | None:
    """A run for the space when its files differ from what the last request saw (new, changed, or all
    removed: that run notices the removal); the fingerprint asked for is recorded beside them."""
    if Claims(zone.files).held_by_other(files_claim_id(key.space_id)):
        return None  # a --wait import is reading them; asked again once it is done, if still changed
    fingerprint = files_fingerprint(files)
    state_parts = ("landing", key.space_id, FILES_STATE)
    try:
        state = json.loads(zone.files.read_bytes(*state_parts))
    except FileNotFoundError:
        state = {"fingerprint": "", "changes": 0}
    if fingerprint == state["fingerprint"] or not (files or state["fingerprint"]):
        return None
    changes = int(state["changes"]) + 1
    zone.files.write_bytes_atomic(json.dumps({"fingerprint": fingerprint, "changes": changes}).encode(),
                                  *state_parts)
    return Requested(key.partition_key, f"{key.partition_key}:files:{changes}:{fingerprint[:12]}",
                     {**key.run_tags, TRIGGER_TAG: "files"})


def files_fingerprint(files: list[tuple[str, Any, float]]) -> str:
    return hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()


def files_claim_id(space_id: str) -> str:
    """The claim on a space's dropped files (held while a ``--wait`` import reads them)."""
    return f"files-{hashlib.sha256(space_id.encode()).hexdigest()[:24]}"


def record_files_seen(zone: LandingZone, space_id: str) -> None:
    """What the space's files are now counts as asked for: a run in this process read them, so the
    sensors start none for them (the files claim kept them away meanwhile)."""
    state_parts = ("landing", space_id, FILES_STATE)
    try:
        state = json.loads(zone.files.read_bytes(*state_parts))
    except FileNotFoundError:
        state = {"fingerprint": "", "changes": 0}
    state["fingerprint"] = files_fingerprint(space_files(zone, space_id))
    zone.files.write_bytes_atomic(json.dumps(state).encode(), *state_parts)


def served_tenants(nexus: NexusResource) -> set[str]:
    return set(nexus.registry.tenants(nexus.environment))


def parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` on ``IO_THREADS`` threads, results in order (store calls wait on the network)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def sensor_result(context: dg.SensorEvaluationContext, scan: LandingScan, cursor: str) -> dg.SensorResult:
    """Run requests, and partitions for the spaces among them Dagster does not know yet (one bounded query,
    only when something landed)."""
    known = (context.instance.get_existing_dynamic_partitions(TENANT_SPACES, sorted(scan.partitions))
             if scan.partitions else set())
    new = sorted(scan.partitions - set(known))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key, tags=r.tags)
                      for r in scan.requests],
        dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [],
        cursor=cursor,
    )
