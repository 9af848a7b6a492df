"""Turning landed data into runs, in time that grows with the work and not with the number of tenants.

* ``landing_sensor`` (every 30 s, here) reads the landing inbox (``nexus_query.inbox``) after its cursor: a
  quiet tick is one listing call whatever the number of spaces, a busy one a few more per batch. Each
  landed batch becomes one run keyed by its batch id; each file drop through the API a run keyed by the
  space's file fingerprint. New spaces become partitions.
* ``landing_sweep_sensor`` (every 60 s, ``sweep``) reconciles a slice of tenants per tick: what the inbox
  does not name (files dropped without the API, batches announced late or never), and changed KPI sources.
* ``ingest_failure_sensor`` (here) reports a failed run's error on its task.

Nothing landed is missed: an entry written with a stamp up to ``INBOX_OVERLAP_SECONDS`` older than the
newest one seen (clock skew between API hosts, a slow write) is still listed, because the cursor lists from
that far back and remembers what it already handled; anything older, or never announced, is the sweep's.
The two sensors agree through the run keys (Dagster runs a run key once per sensor), the task status
(only ``queued`` tasks start runs), a check for an existing run of the batch before the sweep asks, and a
per-space record of the file fingerprint last asked for (``landing/{space}/.files-seen.json``); what they
ask for is built in ``requests``.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.common.dagster_tags import WILL_RETRY_TAG
from nexus_pipelines.common.tasks import fail_run_tasks, run_error
from nexus_pipelines.ingest.jobs import ingest_job
from nexus_pipelines.ingest.requests import (
    LandingScan,
    Requested,
    batch_request,
    cursor_from_json,
    files_request,
    parallel,
    run_key_if_queued,
    sensor_result,
    served_tenants,
    space_files,
)
from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.errors import InvalidRequest
from nexus_query.inbox import Inbox, InboxEntry, inbox_for, key_for, stamp_of, time_of

# The landing sensor lists the inbox from this long before the newest entry it saw, so an entry stamped
# earlier but written later (clock skew between API hosts, a slow PUT) is still found.
INBOX_OVERLAP_SECONDS = 120
# New inbox entries one landing tick handles; the rest wait for the next tick (the cursor stops before them).
INBOX_ENTRIES_PER_TICK = 2000


@dataclass
class InboxCursor:
    after: str = ""  # the inbox lists keys after this one (INBOX_OVERLAP_SECONDS before the newest seen)
    newest: str = ""  # stamp of the newest entry seen
    seen: list[str] = field(default_factory=list)  # keys of the entries after ``after`` already handled

    @classmethod
    def parse(cls, raw: str | None) -> "InboxCursor":
        return cursor_from_json(cls, raw)

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


def entry_space(entry: InboxEntry, served: set[str]) -> SpaceKey | None:
    """The space an entry names, or None when it is not one this code location ingests (bad ids, a tenant
    without a vector store)."""
    try:
        key = SpaceKey(entry.tenant_dir, entry.project_id, entry.space_id)
    except InvalidRequest:
        return None
    return key if key.is_global or key.tenant_id in served else None


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
    served = served_tenants(nexus) if new else set()  # the config's tenants: only read when there is work

    def request(entry: InboxEntry) -> tuple[SpaceKey | None, Requested | None]:
        key = entry_space(entry, served)
        if key is None:
            return None, None
        zone = nexus.landing(key)
        if entry.kind == "batch":
            run_key = run_key_if_queued(zone, key.space_id, entry.ref)
            return key, batch_request(key, entry.ref, run_key) if run_key else None
        return key, files_request(zone, key, space_files(zone, key.space_id))

    for key, requested in parallel(request, new):
        if key is not None:
            scan.partitions.add(key.partition_key)
            scan.add(requested)
    cursor.advance(listed)
    scan.listing_calls = inbox.list_calls - calls_before
    return scan


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
        context.log.info("%d run request(s) from the inbox (%d listing call(s))", len(scan.requests),
                         scan.listing_calls)
    return sensor_result(context, scan, cursor.dumps())


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
        context.log.info("run %s will be retried; its tasks stay as they are", run.run_id)
        return
    message = run_error(context.get_step_failure_events(), context.failure_event.message)
    fail_run_tasks(nexus.landing(SpaceKey.parse(run.tags["dagster/partition"])), context.instance, run.run_id,
                   run.tags, message, context.log)
