"""``landing_sweep_sensor`` (every 60 s) reconciles: a slice of tenants per tick, it lists their landing
zones and finds what the inbox does not name: files dropped straight into ``landing/{space}/files/``, and
batches whose entry was never written or came too late (a queued task older than ``SWEEP_MIN_AGE_SECONDS``
with no run). A full round covers every tenant and the global space, then prunes old inbox folders.
The sweep also fingerprints each space's KPI source (``kpi/{space}/``, written by the tenant's own
systems) and records a changed one as an observation of ``kpi_measurements``, which is what the hourly
KPI schedule refreshes.
"""

import json
import posixpath
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG
from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.ingest.jobs import ingest_job
from nexus_pipelines.ingest.requests import (
    FILES_STATE,
    IO_THREADS,
    LandingScan,
    batch_request,
    cursor_from_json,
    files_request,
    modified_time,
    parallel,
    run_key_if_queued,
    sensor_result,
    served_tenants,
)
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.context import ID_PATTERN, RequestContext
from nexus_query.errors import InvalidRequest, MissingRoute
from nexus_query.inbox import inbox_for
from nexus_query.kpi.source import source_version
from nexus_query.landing import LandingZone
from nexus_query.paths import TenantFiles, join_uri

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


@dataclass
class SweepCursor:
    after_tenant: str = ""  # the last tenant swept this round; "" starts a round
    round_started: float = 0.0  # epoch seconds
    batches_since: float = 0.0  # this round looks at batches modified since then (earlier rounds did the rest)
    rounds: int = 0  # rounds completed

    @classmethod
    def parse(cls, raw: str | None) -> "SweepCursor":
        return cursor_from_json(cls, raw)

    def dumps(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


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
            found["batches"].append((rel[2][:-5], modified_time(info)))
        elif rel[1] == "files" and len(rel) >= 3:
            found["files"].append(("/".join(rel[2:]), info.get("size"), modified_time(info)))
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
                run_key = run_key_if_queued(zone, space_id, batch_id)
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
    known = instance.get_existing_dynamic_partitions(TENANT_SPACES, sorted(versions))
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
    served = sorted(served_tenants(nexus))
    pending = [t for t in served if t > cursor.after_tenant][:tenants_per_tick]
    scan, slowest = LandingScan(), 0.0
    done: list[str] = []
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
        context.log.info("%d run request(s) and %d changed KPI source(s) found by the sweep", len(scan.requests),
                         len(observations))
    result = sensor_result(context, scan, cursor.dumps())
    return dg.SensorResult(run_requests=result.run_requests,
                           dynamic_partitions_requests=result.dynamic_partitions_requests,
                           asset_events=observations, cursor=result.cursor)
