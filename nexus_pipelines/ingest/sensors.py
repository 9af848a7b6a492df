"""Turning landed data into runs: ``landing_sensor`` watches every tenant's landing zone (and the global
space's), adds partitions for new spaces and requests one run per landed batch (run key = batch id, so
no batch runs twice) and one per change of a space's dropped files. ``ingest_failure_sensor`` reports a
failed run's error on its task.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

import dagster as dg

from nexus_query.errors import InvalidRequest, MissingRoute, NotFound
from nexus_query.landing import LandingZone
from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.ingest.assets import ingest_assets
from nexus_pipelines.ingest.tasks import TASK_TAG, fail_run_tasks, run_error
from nexus_pipelines.partitions import SpaceKey, tags_for_partition, tenant_spaces
from nexus_pipelines.resources import NexusResource

# A batch file is visible once it is complete, but its timestamp is taken a moment before; batches
# this much older than the newest one already seen are looked at again (their run keys deduplicate).
GRACE_SECONDS = 300
TRIGGER_TAG = "nexus/trigger"
WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run that run_retries will re-execute

ingest_job = dg.define_asset_job(
    "ingest_space",
    selection=dg.AssetSelection.assets(*ingest_assets),
    partitions_def=tenant_spaces,
    config=dg.PartitionedConfig(partitions_def=tenant_spaces, run_config_for_partition_key_fn=lambda _: {},
                                tags_for_partition_key_fn=tags_for_partition),
    description="Ingest one space: landing zone to LanceDB. Runs carry nexus/tenant, so dagster.yaml "
                "allows one run per tenant at a time.",
)


@dataclass
class LandingCursor:
    newest_batch: float = 0.0  # modification time (epoch seconds) of the newest batch seen
    files: dict[str, list] = field(default_factory=dict)  # partition key → [fingerprint, changes seen]

    @classmethod
    def parse(cls, raw: str | None) -> "LandingCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dumps(self) -> str:
        return json.dumps({"newest_batch": self.newest_batch, "files": self.files}, sort_keys=True)


@dataclass(frozen=True)
class Requested:
    partition_key: str
    run_key: str
    tags: dict[str, str]


@dataclass
class LandingScan:
    partitions: set[str] = field(default_factory=set)  # every space with anything landed
    requests: list[Requested] = field(default_factory=list)


def _mtime(info: dict[str, Any]) -> float:
    stamp = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp or 0)


def landing_zones(nexus: NexusResource) -> Iterator[tuple[str, str, LandingZone]]:
    """(tenant, project, zone) for every project folder of every tenant of the environment that has a
    vector store, then the global space's zone."""
    for tenant, project, files in nexus.tenant_areas("nexus_blob_store"):
        yield tenant, project, LandingZone(files)
    try:
        global_key = SpaceKey.global_space()
        yield global_key.tenant_id, global_key.project_id, nexus.landing(global_key)
    except MissingRoute:
        return


def _landed(zone: LandingZone) -> dict[str, dict[str, list]]:
    """Per space id: its batches (id, mtime) and dropped files (path, size, mtime), from one listing."""
    root = zone.files.path("landing")
    spaces: dict[str, dict[str, list]] = {}
    listing = zone.files.fs.find(root, detail=True) if zone.files.fs.exists(root) else {}
    for full, info in listing.items():
        rel = full[len(root.rstrip("/")) + 1:].split("/")
        if len(rel) < 3 or any(part.startswith(".") for part in rel):
            continue
        found = spaces.setdefault(rel[0], {"batches": [], "files": []})
        if rel[1] == "batches" and len(rel) == 3 and rel[2].endswith(".json"):
            found["batches"].append((rel[2][:-5], _mtime(info)))
        elif rel[1] == "files":
            found["files"].append(("/".join(rel[2:]), info.get("size"), _mtime(info)))
    return spaces


def scan_landing(nexus: NexusResource, cursor: LandingCursor) -> LandingScan:
    """What landed since ``cursor`` (which is advanced in place): one listing per project per tick."""
    scan = LandingScan()
    newest = cursor.newest_batch
    for tenant, project, zone in landing_zones(nexus):
        spaces = _landed(zone)
        for partition_key in cursor.files:  # a space whose files were all removed: its run notices the removal
            known = SpaceKey.parse(partition_key)
            if (known.tenant_id, known.project_id) == (tenant, project):
                spaces.setdefault(known.space_id, {"batches": [], "files": []})
        for space_id, found in sorted(spaces.items()):
            try:
                key = SpaceKey(tenant, project, space_id)
            except InvalidRequest:
                continue
            scan.partitions.add(key.partition_key)
            for batch_id, mtime in found["batches"]:
                newest = max(newest, mtime)
                run_key = _run_key_if_queued(zone, space_id, batch_id) if mtime > cursor.newest_batch - GRACE_SECONDS \
                    else None
                if run_key:
                    scan.requests.append(Requested(key.partition_key, run_key,
                                                   {**key.run_tags, TASK_TAG: batch_id, TRIGGER_TAG: "batch"}))
            fingerprint = hashlib.sha256(json.dumps(sorted(found["files"])).encode()).hexdigest()
            previous, changes = cursor.files.get(key.partition_key, ["", 0])
            if fingerprint != previous and (found["files"] or previous):  # new, changed or emptied
                cursor.files[key.partition_key] = [fingerprint, changes + 1]
                scan.requests.append(Requested(key.partition_key,
                                               f"{key.partition_key}:files:{changes + 1}:{fingerprint[:12]}",
                                               {**key.run_tags, TRIGGER_TAG: "files"}))
    cursor.newest_batch = newest
    return scan


def _run_key_if_queued(zone: LandingZone, space_id: str, batch_id: str) -> str | None:
    """The run key of a batch whose task is queued: the batch id, with the attempt for a retried task
    (Dagster runs a run key once); None when its task is not queued. A lost task record comes back from
    the copy the batch carries."""
    try:
        task = zone.task_of_batch(space_id, batch_id)
    except (NotFound, ValueError):  # an unreadable batch: its run fails and reports why
        return batch_id
    if task.status != "queued":
        return None
    return batch_id if task.attempts <= 1 else f"{batch_id}:attempt-{task.attempts}"


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           owners=OWNERS,
           description="Every 30 s: new API batches and changed dropped files in any tenant's landing zone (and "
                       "the global space's) become ingest_space runs, one per batch (run key = batch id) and one "
                       "per change of a space's files; new spaces become partitions.")
def landing_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """New batches and changed files in any tenant's landing zone become partitioned ingest runs."""
    cursor = LandingCursor.parse(context.cursor)
    scan = scan_landing(nexus, cursor)
    new = sorted(scan.partitions - set(context.instance.get_dynamic_partitions(tenant_spaces.name)))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key, tags=r.tags)
                      for r in scan.requests],
        dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [],
        cursor=cursor.dumps(),
    )


@dg.run_failure_sensor(monitored_jobs=[ingest_job], default_status=dg.DefaultSensorStatus.RUNNING,
                       description="A failed ingest_space run marks its API task failed (GET /nexus/tasks/{id}), "
                                   "with the first step error as the reason.")
def ingest_failure_sensor(context: dg.RunFailureSensorContext, nexus: NexusResource) -> None:
    """A failed ingest run marks the tasks it still holds failed (the one it was started for and those its
    ``raw_docs`` claimed), with the first step's root error; a run Dagster will retry marks nothing."""
    run = context.dagster_run
    if not run.tags.get("dagster/partition"):
        return
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"run {run.run_id} will be retried; its tasks stay as they are")
        return
    message = run_error(context.get_step_failure_events(), context.failure_event.message)
    fail_run_tasks(nexus.landing(SpaceKey.parse(run.tags["dagster/partition"])), context.instance, run.run_id,
                   run.tags, message, context.log)
