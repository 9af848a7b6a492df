"""Discovery in O(new work): the landing inbox, the landing sensor that reads it after its cursor, and the
paged reconciliation sweep that finds what was never announced. Real stores (local disk and S3 on moto),
real Dagster instances."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest
import yaml

from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.ingest.sensors import INBOX_OVERLAP_SECONDS, InboxCursor, scan_inbox
from nexus_pipelines.ingest.sweep import SWEEP_MIN_AGE_SECONDS, SweepCursor, landing_sweep_sensor, sweep_slice
from nexus_pipelines.resources import NexusResource
from nexus_query.config import DEFAULT_CONFIG_PATH
from nexus_query.context import RequestContext
from nexus_query.inbox import Inbox, InboxEntry, inbox_for
from nexus_query.landing import LandingZone, landing_zone
from nexus_query.routing import RoutingRegistry
from tests.helpers import evaluate_schedule, tick

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
ITEM = [{"type": "text", "content": "Tents are waterproof."}]


@pytest.fixture
def instance(nexus_home):
    with dg.instance_for_test() as instance:
        yield instance


def inbox() -> Inbox:
    return inbox_for(RoutingRegistry.default(), "dev")


def many_tenants_config(path, home, tenants: int, s3: dict | None = None):
    """The shipped config with ``tenants`` more tenants (optionally every store on S3, the inbox too)."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(home)
    env = raw["environments"]["dev"]
    env["tenants"].update({f"t{i:04d}": {} for i in range(tenants)})
    if s3:
        options = {"endpoint": s3["endpoint"], "allow_http": True, "region": "us-east-1"}
        blob = {"protocol": "s3", "bucket": s3["bucket"], "prefix": "blobs", "storage_options": options}
        env["defaults"] = {"nexus_store": {"uri": f"s3://{s3['bucket']}/lance", "storage_options": options},
                           "nexus_blob_store": blob,
                           "nexus_projection_store": {**blob, "prefix": "projections"}}
        env["global"] = {"nexus_store": {"uri": f"s3://{s3['bucket']}/lance-global", "storage_options": options},
                         "nexus_blob_store": {**blob, "prefix": "blobs-global"}}
    path.write_text(yaml.safe_dump(raw))
    return path


# --- the inbox and the landing sensor ------------------------------------------------------------------------

def test_landing_a_batch_writes_one_time_ordered_inbox_entry_naming_the_space_and_the_batch(nexus_home):
    task = landing_zone(ACME).land_batch("main", ITEM)
    later = landing_zone(GLOBEX).land_batch("ops", ITEM)
    first, second = inbox().after(None)
    assert (first.tenant_dir, first.project_id, first.space_id, first.kind, first.ref) == (
        "acme", "default", "main", "batch", task.task_id)
    assert (second.tenant_dir, second.space_id, second.ref) == ("globex", "ops", later.task_id)
    assert first.key < second.key and first.key.startswith(first.stamp[:11] + "/")
    assert inbox().after(first.key) == [second]
    assert InboxEntry.parse(first.key) == first and InboxEntry.parse("20261202T13/notes.txt") is None


def test_a_batch_is_requested_once_and_a_quiet_tick_costs_the_same_listing_calls_for_any_number_of_spaces(
        instance, nexus_home):
    def quiet_calls(spaces: int) -> tuple[int, int]:
        tasks = {landing_zone(RequestContext("acme")).land_batch(f"s{len(seen) + i}", ITEM).task_id
                 for i in range(spaces)}
        busy = tick(instance, state["cursor"])
        assert {r.run_key for r in busy.run_requests} == tasks
        seen.update(tasks)
        cursor = InboxCursor.parse(busy.cursor)
        scan = scan_inbox(NexusResource(), inbox(), cursor)
        assert scan.requests == []
        state["cursor"] = cursor.dumps()
        return scan.listing_calls, len(seen)

    seen: set[str] = set()
    state = {"cursor": None}
    few, _ = quiet_calls(2)
    many, total = quiet_calls(60)
    assert total == 62
    assert few == many <= 2  # the hour folders and the current hour, on local disk; S3 makes it one call
    assert sorted(instance.get_dynamic_partitions("tenant_spaces")) == sorted(f"acme.default.s{i}" for i in range(62))


def test_an_entry_stamped_before_the_cursor_within_the_overlap_is_still_found_once(instance, nexus_home):
    landing_zone(ACME).land_batch("main", ITEM)
    first = tick(instance)
    newest = datetime.strptime(InboxCursor.parse(first.cursor).newest, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    # Another API host whose clock runs behind writes after the sensor moved past its stamp.
    zone = landing_zone(GLOBEX)
    late = zone.land_batch("ops", ITEM)
    zone.inbox.post("globex", "default", "ops", "batch", late.task_id,
                    now=newest - timedelta(seconds=INBOX_OVERLAP_SECONDS - 5))
    found = tick(instance, first.cursor)
    assert [r.run_key for r in found.run_requests] == [late.task_id]  # its on-time entry and the late copy: once
    assert tick(instance, found.cursor).run_requests == []


def test_an_entry_stamped_ahead_of_the_clock_does_not_hide_the_entries_written_after_it(instance, nexus_home):
    zone = landing_zone(ACME)
    ahead = zone.land_batch("main", ITEM)
    zone.inbox.post("acme", "default", "main", "batch", ahead.task_id,
                    now=datetime.now(UTC) + timedelta(hours=1))  # a host whose clock runs fast
    first = tick(instance)
    assert [r.run_key for r in first.run_requests] == [ahead.task_id]
    later = landing_zone(GLOBEX).land_batch("ops", ITEM)
    assert [r.run_key for r in tick(instance, first.cursor).run_requests] == [later.task_id]


def test_batches_landed_while_the_sensor_ticks_are_each_found_exactly_once(instance, nexus_home):
    landed: list[str] = []
    done = threading.Event()

    def land():
        zones = [landing_zone(RequestContext(t)) for t in ("acme", "globex")]
        for i in range(60):
            landed.append(zones[i % 2].land_batch(f"space{i % 7}", [{"type": "text", "content": f"note {i}"}]).task_id)
            time.sleep(0.005)
        done.set()

    writer = threading.Thread(target=land)
    requested: list[str] = []
    cursor = None
    writer.start()
    ticks = 0
    while not done.is_set() or ticks < 2:  # ticks run while batches land, then the next one after the last
        result = tick(instance, cursor)
        requested += [r.run_key for r in result.run_requests]
        cursor = result.cursor
        ticks = ticks + 1 if done.is_set() else 0
    writer.join()
    assert sorted(requested) == sorted(landed) and len(requested) == 60


def test_a_tick_handles_at_most_its_share_of_entries_and_the_next_ones_take_the_rest(nexus_home):
    landed = [landing_zone(ACME).land_batch(f"s{i}", ITEM).task_id for i in range(5)]
    cursor = InboxCursor()
    requested = [[r.run_key for r in scan_inbox(NexusResource(), inbox(), cursor, max_entries=2).requests]
                 for _ in range(4)]
    assert [len(r) for r in requested] == [2, 2, 1, 0]
    assert sorted(sum(requested, [])) == sorted(landed)


def test_a_file_drop_announced_through_the_api_requests_a_files_run_from_the_inbox(instance, nexus_home):
    zone = landing_zone(ACME)
    zone.files.write_bytes_atomic(b"Stores open at ten.", "landing", "main", "files", "hours.txt")
    zone.announce("main", "files")
    (request,) = tick(instance).run_requests
    assert request.partition_key == "acme.default.main" and request.tags["nexus/trigger"] == "files"
    # The sweep finds the same files already asked for.
    assert tick(instance, sensor=landing_sweep_sensor).run_requests == []


def test_entries_of_a_tenant_without_a_vector_store_start_nothing(instance, nexus_home):
    landing_zone(RequestContext("initech")).land_batch("main", ITEM)
    result = tick(instance)
    assert result.run_requests == [] and not result.dynamic_partitions_requests


def test_an_inbox_write_that_fails_keeps_the_batch_and_the_sweep_finds_it(instance, nexus_home, caplog):
    class BrokenInbox(Inbox):
        def post(self, *args, **kwargs):
            raise OSError("the inbox store is down")

    zone = landing_zone(ACME)
    task = LandingZone(zone.files, BrokenInbox(zone.inbox.route, "dev")).land_batch("main", ITEM)
    assert "the landing sweep will find it" in caplog.text
    assert tick(instance).run_requests == []
    cursor = SweepCursor()
    assert sweep_slice(NexusResource(), instance, cursor).requests == []  # too young: the inbox's to find
    older = time.time() + SWEEP_MIN_AGE_SECONDS + 1
    (request,) = sweep_slice(NexusResource(), instance, cursor, now=older).requests
    assert request.run_key == task.task_id and request.tags[TASK_TAG] == task.task_id


# --- the sweep ------------------------------------------------------------------------------------------------

def test_a_file_dropped_without_the_api_is_found_by_the_sweep_once_per_change(instance, nexus_home):
    files = landing_zone(ACME).files
    files.write_bytes_atomic(b"Stores open at ten.", "landing", "main", "files", "notes.txt")
    assert tick(instance).run_requests == []  # nothing announced it
    first = tick(instance, sensor=landing_sweep_sensor)
    assert [(r.partition_key, r.tags["nexus/trigger"]) for r in first.run_requests] == [("acme.default.main", "files")]
    assert instance.get_dynamic_partitions("tenant_spaces") == ["acme.default.main"]
    assert tick(instance, first.cursor, landing_sweep_sensor).run_requests == []
    files.write_bytes_atomic(b"Stores open at nine.", "landing", "main", "files", "notes.txt")
    changed = tick(instance, first.cursor, landing_sweep_sensor)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != first.run_requests[0].run_key
    files.fs.rm(files.path("landing", "main", "files", "notes.txt"))
    emptied = tick(instance, changed.cursor, landing_sweep_sensor)
    assert len(emptied.run_requests) == 1  # the run that notices the removal
    assert tick(instance, emptied.cursor, landing_sweep_sensor).run_requests == []


def test_the_sweep_covers_a_slice_of_tenants_per_tick_and_the_global_space_ends_the_round(instance, nexus_home):
    for ctx in (ACME, GLOBEX):
        landing_zone(ctx).files.write_bytes_atomic(b"x", "landing", "main", "files", "a.txt")
    nexus = NexusResource()
    nexus.files(nexus.space_key("global")).write_bytes_atomic(b"shared", "landing", "global", "files", "a.txt")
    cursor = SweepCursor()
    first = sweep_slice(nexus, instance, cursor, tenants_per_tick=1)
    assert [r.partition_key for r in first.requests] == ["acme.default.main"] and cursor.after_tenant == "acme"
    second = sweep_slice(nexus, instance, cursor, tenants_per_tick=1)
    assert sorted(r.partition_key for r in second.requests) == ["global", "globex.default.main"]
    assert cursor.rounds == 1 and cursor.after_tenant == ""


def test_a_sweep_tick_stops_when_its_time_budget_is_spent_and_the_next_goes_on_from_there(
        instance, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_CONFIG", str(many_tenants_config(tmp_path / "many.yaml", tmp_path / "home", 150)))
    for tenant in ("t0010", "t0140"):
        landing_zone(RequestContext(tenant)).files.write_bytes_atomic(b"x", "landing", "main", "files", "a.txt")
    cursor, found, ticks = SweepCursor(), [], 0
    while not cursor.rounds:
        scan = sweep_slice(NexusResource(), instance, cursor, budget_seconds=0)  # one chunk of tenants per tick
        found += [r.partition_key for r in scan.requests]
        ticks += 1
        assert scan.tenants <= 64
    assert ticks == 3  # 152 tenants (acme, globex and 150 more), 64 at a time
    assert sorted(found) == ["t0010.default.main", "t0140.default.main"]


def test_the_sweep_leaves_a_batch_alone_once_a_run_exists_for_it(instance, nexus_home):
    zone = landing_zone(ACME)
    task = LandingZone(zone.files).land_batch("main", ITEM)  # landed without an inbox entry

    @dg.op
    def noop():
        return None

    @dg.job
    def placeholder():
        noop()

    instance.create_run_for_job(placeholder, tags={TASK_TAG: task.task_id})  # what the landing sensor's request made
    later = time.time() + SWEEP_MIN_AGE_SECONDS + 1
    assert sweep_slice(NexusResource(), instance, SweepCursor(), now=later).requests == []


def test_a_later_round_rechecks_only_batches_modified_since_the_previous_round(instance, nexus_home):
    zone = landing_zone(ACME)
    old = LandingZone(zone.files).land_batch("main", ITEM)
    cursor = SweepCursor()
    start = time.time() + SWEEP_MIN_AGE_SECONDS + 1
    assert [r.run_key for r in sweep_slice(NexusResource(), instance, cursor, now=start).requests] == [old.task_id]
    assert cursor.rounds == 1
    # A day later the old batch (still queued: its run never came) is not read again; a new one is.
    new = LandingZone(zone.files).land_batch("main", ITEM)
    day = start + 86_400
    os.utime(zone.files.path(*zone.batch_parts("main", new.task_id)), (day - SWEEP_MIN_AGE_SECONDS - 5,) * 2)
    cursor.batches_since = day - 3600  # the previous round began an hour before
    assert [r.run_key for r in sweep_slice(NexusResource(), instance, cursor, now=day).requests] == [new.task_id]


# --- S3 -------------------------------------------------------------------------------------------------------

@pytest.fixture
def s3_many(moto_endpoint, tmp_path, monkeypatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    bucket = f"disc-{tmp_path.name.lower().replace('_', '-')[-40:]}".rstrip("-")
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    path = many_tenants_config(tmp_path / "nexus.yaml", tmp_path / "home", 40,
                               {"endpoint": moto_endpoint, "bucket": bucket})
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return path


def test_on_s3_a_quiet_tick_is_one_list_call_and_a_busy_one_finds_every_batch(s3_many):
    tasks = {landing_zone(RequestContext(f"t{i:04d}")).land_batch("main", ITEM).task_id for i in range(40)}
    box = inbox()
    assert box.is_s3
    with dg.DagsterInstance.ephemeral() as instance:
        cursor = InboxCursor()
        busy = scan_inbox(NexusResource(), box, cursor)
        assert {r.run_key for r in busy.requests} == tasks and busy.listing_calls == 1
        quiet = scan_inbox(NexusResource(), box, cursor)
        assert quiet.requests == [] and quiet.listing_calls == 1
        # A file dropped straight into S3 is the sweep's: one listing per project, a slice of tenants per tick.
        landing_zone(RequestContext("t0007")).files.write_bytes_atomic(b"x", "landing", "main", "files", "a.txt")
        sweep = SweepCursor()
        found = []
        while True:
            found += sweep_slice(NexusResource(), instance, sweep, tenants_per_tick=16).requests
            if sweep.rounds:
                break
        assert [r.partition_key for r in found] == ["t0007.default.main"]


def test_measurements_a_tenant_writes_are_observed_by_the_sweep_once_per_change_and_reach_the_kpi_schedule(
        instance, nexus_home):
    from nexus_pipelines.kpi.triggers import kpi_hourly_schedule

    files = landing_zone(ACME).files
    files.write_bytes_atomic(b"metrics:\n  orders_per_hour: {unit: orders, direction: up_is_good}\n",
                             "kpi", "main", "catalogue.yaml")
    files.write_bytes_atomic(b"timestamp,metric,value\n2026-11-16T13:00:00Z,orders_per_hour,5\n",
                             "kpi", "main", "measurements", "a.csv")

    def sweep(cursor=None):
        result = tick(instance, cursor, landing_sweep_sensor)
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
        return result

    first = sweep()  # the space becomes a partition; its source is observed from the next round on
    assert instance.get_dynamic_partitions("tenant_spaces") == ["acme.default.main"]
    second = sweep(first.cursor)
    (observation,) = second.asset_events
    assert observation.partition == "acme.default.main" and observation.asset_key == dg.AssetKey("kpi_measurements")
    assert sweep(second.cursor).asset_events == []  # unchanged: nothing recorded
    (request,) = evaluate_schedule(kpi_hourly_schedule, instance, datetime.now(UTC))
    assert request.tags["dagster/asset_partition_range_start"] == "acme.default.main"
    files.write_bytes_atomic(b"timestamp,metric,value\n2026-11-16T14:00:00Z,orders_per_hour,6\n",
                             "kpi", "main", "measurements", "b.csv")
    assert len(sweep(second.cursor).asset_events) == 1
