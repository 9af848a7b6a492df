"""Turning landed data into runs, in time that grows with the work and not with the number of tenants.

* ``landing_sensor`` (every 30 s) reads the landing inbox (``nexus_query.inbox``) after its cursor: a
  quiet tick is one listing call whatever the number of spaces, a busy one a few more per batch. Each
  landed batch becomes one run keyed by its batch id; each file drop through the API a run keyed by the
  space's file fingerprint. New spaces become partitions.
* ``landing_sweep_sensor`` (every 60 s) reconciles: a slice of tenants per tick, it lists their landing
  zones and finds what the inbox does not name: files dropped straight into ``landing/{space}/files/``,
  and batches whose entry was never written or came too late (a queued task older than
  ``SWEEP_MIN_AGE_SECONDS`` with no run). A full round covers every tenant and the global space.
  The sweep also fingerprints each space's KPI source (``kpi/{space}/``, written by the tenant's own
  systems) and records a changed one as an observation of ``kpi_measurements``, which is what the hourly
  KPI schedule refreshes.
* ``ingest_failure_sensor`` reports a failed run's error on its task.

Nothing landed is missed: an entry written with a stamp up to ``INBOX_OVERLAP_SECONDS`` older than the
newest one seen (clock skew between API hosts, a slow write) is still listed, because the cursor lists from
that far back and remembers what it already handled; anything older, or never announced, is the sweep's.
The two sensors agree through the run keys (Dagster runs a run key once per sensor), the task status
(only ``queued`` tasks start runs), a check for an existing run of the batch before the sweep asks, and a
per-space record of the file fingerprint last asked for (``landing/{space}/.files-seen.json``).
"""

import hashlib
import json
import posixpath
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.common.tasks import TASK_TAG, fail_run_tasks, run_error
from nexus_pipelines.ingest.assets import ingest_assets
from nexus_pipelines.partitions import SpaceKey, space_job, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.context import ID_PATTERN, RequestContext
from nexus_query.errors import InvalidRequest, MissingRoute, NotFound
from nexus_query.inbox import Inbox, InboxEntry, inbox_for, key_for, stamp_of, time_of
from nexus_query.kpi.source import source_version
from nexus_query.landing import LandingZone
from nexus_query.paths import TenantFiles, join_uri

# The landing sensor lists the inbox from this long before the newest entry it saw, so an entry stamped
# earlier but written later (clock skew between API hosts, a slow PUT) is still found.
INBOX_OVERLAP_SECONDS = 120
# Inbox entries are hints; hour folders older than this are removed by the sweep once per round.
INBOX_RETENTION = timedelta(days=7)
# A sweep tick covers tenants (three listings each, IO_THREADS at a time) until this much time is spent,
# at most SWEEP_TENANTS_PER_TICK of them: whatever the store's latency, it stays far below Dagster's 60 s
# sensor timeout, and the next tick goes on where it stopped.
SWEEP_TICK_BUDGET_SECONDS = 20.0
SWEEP_TENANTS_PER_TICK = 2000
# The sweep leaves batches younger than this to the landing sensor (it has had several ticks by then).
SWEEP_MIN_AGE_SECONDS = 300
# Each round rechecks batches from this long before the previous round began (clock differences).
SWEEP_SLACK_SECONDS = 600
# Store reads of one tick (task records, listings) run on this many threads: they wait on the network.
IO_THREADS = 16
# New inbox entries one landing tick handles; the rest wait for the next tick (the cursor stops before them).
INBOX_ENTRIES_PER_TICK = 2000
FILES_STATE = ".files-seen.json"  # hidden: never read as a document, never listed as landed data
TRIGGER_TAG = "nexus/trigger"
WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run that run_retries will re-execute
T, R = TypeVar("T"), TypeVar("R")

ingest_job = space_job("ingest_space", ingest_assets,
                       "Ingest one space: landing zone to LanceDB. Runs carry nexus/tenant, so dagster.yaml "
                       "allows one run per tenant at a time.")


def _from_json(cls, raw: str | None):
    """A cursor dataclass from its JSON; keys it does not know (an older cursor's) are ignored."""
    values = json.loads(raw) if raw else {}
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass
class InboxCursor:
    after: str = ""  # the inbox lists keys after this one (INBOX_OVERLAP_SECONDS before the newest seen)
    newest: str = ""  # stamp of the newest entry seen
    seen: list[str] = field(default_factory=list)  # keys of the entries after ``after`` already handled

    @classmethod
    def parse(cls, raw: str | None) -> "InboxCursor":
        return _from_json(cls, raw)

    def dumps(self) -> str:
        return json.dumps({"after": self.after, "newest": self.newest, "seen": sorted(self.seen)})

    def advance(self, listed: list[InboxEntry], now: datetime | None = None) -> None:
        """Move past ``listed`` (everything after ``after``), keeping the overlap window. An entry stamped
        ahead of this clock (a host whose clock runs fast) never moves the window past now."""
        if listed:
            self.newest = max(self.newest, max(e.stamp for e in listed))
        if self.newest:
            newest = min(time_of(self.newest), now or datetime.now(UTC))
            floor = key_for(stamp_of(newest - timedelta(seconds=INBOX_OVERLAP_SECONDS)))
            self.after = max(self.after, floor)
        self.seen = sorted(e.key for e in listed if e.key > self.after)


@dataclass
class SweepCursor:
    after_tenant: str = ""  # the last tenant swept this round; "" starts a round
    round_started: float = 0.0  # epoch seconds
    batches_since: float = 0.0  # this round looks at batches modified since then (earlier rounds did the rest)
    rounds: int = 0  # rounds completed

    @classmethod
    def parse(cls, raw: str | None) -> "SweepCursor":
        return _from_json(cls, raw)

    def dumps(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


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


def _mtime(info: dict[str, Any]) -> float:
    stamp = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp or 0)


def batch_request(key: SpaceKey, batch_id: str, run_key: str) -> Requested:
    return Requested(key.partition_key, run_key, {**key.run_tags, TASK_TAG: batch_id, TRIGGER_TAG: "batch"})


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


# --- dropped files: one run per change of a space's files ----------------------------------------------

def space_files(zone: LandingZone, space_id: str) -> list[tuple[str, Any, float]]:
    """(path below files/, size, mtime) of the space's dropped files, from one listing."""
    root = zone.files.path("landing", space_id, "files")
    found = []
    for full, info in zone.files.fs.find(root, detail=True).items():
        rel = full[len(root.rstrip("/")) + 1:]
        if not any(part.startswith(".") for part in rel.split("/")):
            found.append((rel, info.get("size"), _mtime(info)))
    return sorted(found)


def files_request(zone: LandingZone, key: SpaceKey, files: list[tuple[str, Any, float]]) -> Requested | None:
    """A run for the space when its files differ from what the last request saw (new, changed, or all
    removed: that run notices the removal); the fingerprint asked for is recorded beside them."""
    fingerprint = hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()
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


# --- the inbox --------------------------------------------------------------------------------------------

def _served(nexus: NexusResource) -> set[str]:
    return set(nexus.registry.tenants(nexus.environment))


def entry_space(entry: InboxEntry, served: set[str]) -> SpaceKey | None:
    """The space an entry names, or None when it is not one this code location ingests (bad ids, a tenant
    without a vector store)."""
    try:
        key = SpaceKey(entry.tenant_dir, entry.project_id, entry.space_id)
    except InvalidRequest:
        return None
    return key if key.is_global or key.tenant_id in served else None


def parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` on ``IO_THREADS`` threads, results in order (store calls wait on the network)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def scan_inbox(nexus: NexusResource, inbox: Inbox, cursor: InboxCursor,
               max_entries: int = INBOX_ENTRIES_PER_TICK) -> LandingScan:
    """What the inbox lists after ``cursor`` (which is advanced in place): listing calls do not depend on
    the number of spaces, and each new entry costs one task read (or one listing of its space's files),
    made in parallel. At most ``max_entries`` new entries per tick; the cursor stops before the rest."""
    calls_before = inbox.list_calls
    listed = inbox.after(cursor.after or None)
    # Entries are handled once by key, not ref: a retried batch is announced again under a new stamp. Two
    # entries of one ref in one tick (a late copy) make one request.
    handled, refs = set(cursor.seen), set()
    new: list[InboxEntry] = []
    for position, entry in enumerate(listed):
        if entry.key in handled:
            continue
        if len(new) == max_entries:
            listed = listed[:position]
            break
        handled.add(entry.key)
        if entry.ref not in refs:
            refs.add(entry.ref)
            new.append(entry)
    scan = LandingScan()
    served = _served(nexus) if new else set()  # the config's tenants: only read when there is work

    def request(entry: InboxEntry) -> tuple[SpaceKey | None, Requested | None]:
        key = entry_space(entry, served)
        if key is None:
            return None, None
        zone = nexus.landing(key)
        if entry.kind == "batch":
            run_key = _run_key_if_queued(zone, key.space_id, entry.ref)
            return key, batch_request(key, entry.ref, run_key) if run_key else None
        return key, files_request(zone, key, space_files(zone, key.space_id))

    for key, requested in parallel(request, new):
        if key is not None:
            scan.partitions.add(key.partition_key)
            scan.add(requested)
    cursor.advance(listed)
    scan.listing_calls = inbox.list_calls - calls_before
    return scan


def _result(context: dg.SensorEvaluationContext, scan: LandingScan, cursor: str) -> dg.SensorResult:
    """Run requests, and partitions for the spaces among them Dagster does not know yet (one bounded query,
    only when something landed)."""
    known = (context.instance.get_existing_dynamic_partitions(tenant_spaces.name, sorted(scan.partitions))
             if scan.partitions else set())
    new = sorted(scan.partitions - set(known))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key, tags=r.tags)
                      for r in scan.requests],
        dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [],
        cursor=cursor,
    )


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           owners=OWNERS,
           description="Every 30 s: batches and file drops announced in the landing inbox (one listing after its "
                       "cursor, whatever the number of spaces) become ingest_space runs, one per batch (run key = "
                       "batch id) and one per change of a space's files; new spaces become partitions.")
def landing_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """Batches and file drops announced in the landing inbox become partitioned ingest runs."""
    cursor = InboxCursor.parse(context.cursor)
    inbox = inbox_for(nexus.registry, nexus.environment)
    if inbox is None:  # no global blob store routed: the sweep alone finds what lands
        return dg.SensorResult(run_requests=[], cursor=cursor.dumps())
    scan = scan_inbox(nexus, inbox, cursor)
    if scan.requests:
        context.log.info(f"{len(scan.requests)} run request(s) from the inbox ({scan.listing_calls} listing call(s))")
    return _result(context, scan, cursor.dumps())


# --- the reconciliation sweep ------------------------------------------------------------------------------

def _tenant_zones(nexus: NexusResource, tenant: str) -> list[tuple[str, str, LandingZone]]:
    """(tenant, project, zone) for each project folder of the tenant (one listing)."""
    try:
        route = nexus.registry.blob_route(RequestContext(tenant, environment=nexus.environment))
    except MissingRoute:
        return []
    try:
        entries = TenantFiles(route, tenant, "default").fs.ls(join_uri(route.root, tenant), detail=False)
    except FileNotFoundError:
        return []
    projects = sorted(posixpath.basename(e.rstrip("/")) for e in entries)
    return [(tenant, p, LandingZone(TenantFiles(route, tenant, p))) for p in projects if ID_PATTERN.fullmatch(p)]


def _landed(zone: LandingZone) -> dict[str, dict[str, list]]:
    """Per space id: its batches (id, mtime), dropped files (path, size, mtime) and whether a files state is
    recorded, from one listing of the project's landing zone."""
    root = zone.files.path("landing")
    spaces: dict[str, dict[str, list]] = {}
    for full, info in zone.files.fs.find(root, detail=True).items():  # nothing there: nothing listed
        rel = full[len(root.rstrip("/")) + 1:].split("/")
        if len(rel) < 2:
            continue
        found = spaces.setdefault(rel[0], {"batches": [], "files": [], "state": []})
        if rel == [rel[0], FILES_STATE]:
            found["state"].append(True)
        elif any(part.startswith(".") for part in rel):
            continue
        elif rel[1] == "batches" and len(rel) == 3 and rel[2].endswith(".json"):
            found["batches"].append((rel[2][:-5], _mtime(info)))
        elif rel[1] == "files" and len(rel) >= 3:
            found["files"].append(("/".join(rel[2:]), info.get("size"), _mtime(info)))
    return spaces


@dataclass
class ZoneSweep:
    scan: LandingScan
    # (space, batch id, run key) of queued batches old enough that the inbox should have started them
    unstarted: list[tuple[SpaceKey, str, str]]


def sweep_zone(tenant_dir: str, project_id: str, zone: LandingZone, batches_since: float, now: float) -> ZoneSweep:
    """One project's landing zone: file changes, queued batches modified since ``batches_since`` and older
    than ``SWEEP_MIN_AGE_SECONDS``, and its KPI sources' fingerprints. Store calls only (no Dagster)."""
    scan = LandingScan(listing_calls=1)
    unstarted = []
    for space_id, found in sorted(_landed(zone).items()):
        try:
            key = SpaceKey(tenant_dir, project_id, space_id)
        except InvalidRequest:
            continue
        for batch_id, mtime in found["batches"]:
            if batches_since <= mtime <= now - SWEEP_MIN_AGE_SECONDS:
                run_key = _run_key_if_queued(zone, space_id, batch_id)
                if run_key:
                    unstarted.append((key, batch_id, run_key))
        if found["files"] or found["state"]:
            scan.add(files_request(zone, key, sorted(found["files"])))
    if not key_is_global(tenant_dir):
        scan.listing_calls += 1
        for space_id in _kpi_spaces(zone):
            version = source_version(zone.files, space_id)
            if version is not None:
                partition_key = SpaceKey(tenant_dir, project_id, space_id).partition_key
                scan.kpi_versions[partition_key] = version
                scan.partitions.add(partition_key)  # a space with only KPI measurements is a space too
    return ZoneSweep(scan, unstarted)


def key_is_global(tenant_dir: str) -> bool:
    return tenant_dir == SpaceKey.global_space().tenant_id


def _kpi_spaces(zone: LandingZone) -> list[str]:
    """Space ids with a ``kpi/{space}/`` folder in the project (one listing)."""
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in zone.files.fs.ls(zone.files.path("kpi"), detail=False)]
    except FileNotFoundError:
        return []
    valid = []
    for name in sorted(names):
        try:
            SpaceKey("x", "x", name)
        except InvalidRequest:
            continue
        valid.append(name)
    return valid


def kpi_observations(instance: dg.DagsterInstance, versions: dict[str, str]) -> list[dg.AssetObservation]:
    """Observations of ``kpi_measurements`` for the spaces (known partitions) whose fingerprint differs from
    the last one recorded: one query for the slice."""
    if not versions:
        return []
    known = instance.get_existing_dynamic_partitions(tenant_spaces.name, sorted(versions))
    previous = instance.event_log_storage.get_latest_tags_by_partition(
        dg.AssetKey("kpi_measurements"), dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG],
        asset_partitions=sorted(known))
    return [dg.AssetObservation(asset_key="kpi_measurements", partition=key, tags={DATA_VERSION_TAG: version},
                                metadata={"found_by": "landing_sweep_sensor"})
            for key, version in sorted(versions.items())
            if key in known and previous.get(key, {}).get(DATA_VERSION_TAG) != version]


def sweep_slice(nexus: NexusResource, instance: dg.DagsterInstance, cursor: SweepCursor,
                now: float | None = None, tenants_per_tick: int = SWEEP_TENANTS_PER_TICK,
                budget_seconds: float = SWEEP_TICK_BUDGET_SECONDS) -> LandingScan:
    """The next tenants, ``IO_THREADS`` at a time, until ``budget_seconds`` are spent or ``tenants_per_tick``
    are done (then the global space, once the last tenant is: that ends the round); ``cursor`` is advanced in
    place."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    if not cursor.after_tenant:
        cursor.round_started = now
    served = sorted(_served(nexus))
    pending = [t for t in served if t > cursor.after_tenant][:tenants_per_tick]
    scan, done, slowest = LandingScan(), [], 0.0
    # Another chunk only when the slowest so far would still end within the budget.
    while pending and (not done or time.perf_counter() - started + slowest < budget_seconds):
        chunk_started = time.perf_counter()
        chunk, pending = pending[:4 * IO_THREADS], pending[4 * IO_THREADS:]
        zones = [z for found in parallel(lambda t: _tenant_zones(nexus, t), chunk) for z in found]
        _sweep_zones(instance, zones, cursor.batches_since, now, scan)
        scan.listing_calls += len(chunk)
        done += chunk
        slowest = max(slowest, time.perf_counter() - chunk_started)
    scan.tenants = len(done)
    ends_round = not any(t > (done[-1] if done else cursor.after_tenant) for t in served)
    if ends_round:
        try:
            global_key = SpaceKey.global_space()
            _sweep_zones(instance, [(global_key.tenant_id, global_key.project_id, nexus.landing(global_key))],
                         cursor.batches_since, now, scan)
        except MissingRoute:
            pass
    if ends_round:
        cursor.after_tenant = ""
        cursor.batches_since = cursor.round_started - SWEEP_MIN_AGE_SECONDS - SWEEP_SLACK_SECONDS
        cursor.rounds += 1
        inbox = inbox_for(nexus.registry, nexus.environment)
        if inbox is not None:
            inbox.prune(datetime.fromtimestamp(now, UTC) - INBOX_RETENTION)
    else:
        cursor.after_tenant = done[-1]
    return scan


def _sweep_zones(instance: dg.DagsterInstance, zones: list[tuple[str, str, LandingZone]], batches_since: float,
                 now: float, scan: LandingScan) -> None:
    for found in parallel(lambda z: sweep_zone(z[0], z[1], z[2], batches_since, now), zones):
        scan.partitions |= found.scan.partitions
        scan.requests += found.scan.requests
        scan.listing_calls += found.scan.listing_calls
        scan.kpi_versions.update(found.scan.kpi_versions)
        for key, batch_id, run_key in found.unstarted:  # rare: an entry lost or too late; skip it if a run exists
            if not instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: batch_id}), limit=1):
                scan.add(batch_request(key, batch_id, run_key))


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           owners=OWNERS,
           description="Every 60 s, a time-budgeted slice of tenants: files dropped without the API, batches the "
                       "inbox never announced, and changed KPI sources (kpi_measurements observations).")
def landing_sweep_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """Reconciliation, a slice of tenants per tick: files dropped without the API, batches the inbox never
    announced, and changed KPI sources (recorded as ``kpi_measurements`` observations)."""
    cursor = SweepCursor.parse(context.cursor)
    scan = sweep_slice(nexus, context.instance, cursor)
    observations = kpi_observations(context.instance, scan.kpi_versions)
    if scan.requests or observations:
        context.log.info(f"{len(scan.requests)} run request(s) and {len(observations)} changed KPI source(s) "
                         "found by the sweep")
    result = _result(context, scan, cursor.dumps())
    return dg.SensorResult(run_requests=result.run_requests,
                           dynamic_partitions_requests=result.dynamic_partitions_requests,
                           asset_events=observations, cursor=result.cursor)


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
