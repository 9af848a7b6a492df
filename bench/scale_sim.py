"""Scale simulation: many tenant spaces, measured where the orchestration and the query process pay for them.

    .venv/bin/python bench/scale_sim.py [--spaces 500 5000 20000] [--spaces-per-tenant 5] [--s3]
                                        [--s3-spaces 500 5000] [--busy 20 200] [--serve 200 1000 2000]
                                        [--writers 1 2 4] [--smoke]

For each number of spaces (local disk, then S3 on moto_server with ``--s3``), after one batch landed in
every space (seeded in bulk in the API's own layout: task, batch and inbox entry):

* the landing sensor's quiet tick (nothing new: one inbox listing; median of seven) and busy ticks (``--busy``
  batches just landed through ``LandingZone.land_batch``), time and store listing calls;
* one tick of the reconciliation sweep (a slice of ``SWEEP_TENANTS_PER_TICK`` tenants), and the round
  it takes to cover every tenant;
* dynamic partitions: adding every space, listing them, checking 100 keys;
* the schedules on a Dagster event log where 10% of the spaces were written since their last maintenance
  and 2% got new KPI measurements in the last hour (scattered at random, the worst case for ranges): tick
  time and run requests, per day, against the fan-out over every space that came before;
* each figure's growth from the smallest to the largest run, and what it extrapolates to at 100,000
  spaces against Dagster's 60 s sensor and schedule timeouts.

Then (local disk) the query process: resident memory after querying ``--serve`` spaces once each, with the
shipped bounds (``serving`` in the config), and the first query on a cold space against a warm one.
``--writers`` measures 1, 2 and 4 processes upserting into one space at once (none lost or duplicated).

On S3 the emulator's latencies are far below real S3's; figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("DAGSTER_HOME", None)

import dagster as dg  # noqa: E402
from tqdm import tqdm  # noqa: E402

import nexus_pipelines.ingest.sensors as sensors  # noqa: E402
import nexus_pipelines.ingest.sweep as sweep_module  # noqa: E402
from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG  # noqa: E402
from nexus_pipelines.ingest.sensors import InboxCursor, landing_sensor  # noqa: E402
from nexus_pipelines.ingest.sweep import (  # noqa: E402
    SWEEP_TENANTS_PER_TICK,
    SWEEP_TICK_BUDGET_SECONDS,
    SweepCursor,
    sweep_slice,
)
from nexus_pipelines.kpi.assets import KPI_BATCH_SIZE  # noqa: E402
from nexus_pipelines.kpi.triggers import kpi_hourly_schedule  # noqa: E402
from nexus_pipelines.maintenance.assets import MAINTENANCE_BATCH_SIZE, space_maintenance_nightly  # noqa: E402
from nexus_pipelines.partitions import changed_range_run_requests  # noqa: E402
from nexus_pipelines.resources import NexusResource  # noqa: E402
from nexus_query.config import DEFAULT_CONFIG_PATH  # noqa: E402
from nexus_query.context import RequestContext  # noqa: E402
from nexus_query.embeddings import EmbedderInfo  # noqa: E402
from nexus_query.inbox import InboxEntry, inbox_for, stamp_of  # noqa: E402
from nexus_query.landing import Task, landing_zone  # noqa: E402
from nexus_query.paths import join_uri  # noqa: E402
from nexus_query.query import query  # noqa: E402
from nexus_query.routing import RoutingRegistry  # noqa: E402
from nexus_query.store import Record, SpaceStore, build_rows  # noqa: E402
from nexus_query.store import space as space_module  # noqa: E402
from nexus_query.store.snapshots import snapshot_cache  # noqa: E402
from nexus_query.store.space import open_databases  # noqa: E402

TARGET = 100_000  # Dagster's recommended maximum partitions per asset
TIMEOUT_SECONDS = 60  # Dagster's default sensor and schedule evaluation timeout
EMBEDDER = EmbedderInfo("all-MiniLM-L6-v2", 384)
WRITER = RequestContext("writer")
WRITTEN_SHARE, KPI_SHARE = 0.10, 0.02
QUIET_TICKS = 7  # the quiet tick is a few milliseconds: its median over this many


def write_config(home: Path, tenants: list[str], s3: dict | None, serving: dict | None = None) -> Path:
    """The shipped registry with ``tenants`` (and the writers' tenant), on local disk or on S3 (the global
    space's blob store, where the inbox lives, too)."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(home)
    raw["cursor"]["secret"] = "scale-sim-cursor-secret-0123456789"
    env = raw["environments"]["dev"]
    env["tenants"] = {t: {} for t in [*tenants, WRITER.tenant_id]}
    raw["serving"] = {**raw.get("serving", {}), **(serving or {})}
    if s3:
        options = {"endpoint": s3["endpoint"], "allow_http": True, "region": "us-east-1"}
        blob = {"protocol": "s3", "bucket": s3["bucket"], "prefix": "blobs", "storage_options": options}
        env["defaults"] = {"nexus_store": {"uri": f"s3://{s3['bucket']}/lance", "storage_options": options},
                           "nexus_blob_store": blob, "nexus_projection_store": {**blob, "prefix": "projections"}}
        env["global"] = {"nexus_store": {"uri": f"s3://{s3['bucket']}/lance-global", "storage_options": options},
                         "nexus_blob_store": {**blob, "prefix": "blobs-global"}}
    path = home / f"nexus-{'s3' if s3 else 'local'}-{len(tenants)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def seed_landed(tenants: list[str], spaces_per_tenant: int, oldest: datetime, newest: datetime,
                tasks_too: bool = True) -> list[str]:
    """One batch in every space, written in bulk in the API's layout (task, batch, inbox entry; entries
    stamped between ``oldest`` and ``newest``): the history a quiet tick sits on. Returns partition keys."""
    registry = RoutingRegistry.default()
    inbox = inbox_for(registry, "dev")
    writes: dict[str, bytes] = {}
    keys = []
    span = (newest - oldest).total_seconds()
    for number, tenant in enumerate(tenants):
        files = landing_zone(RequestContext(tenant), registry).files
        for s in range(spaces_per_tenant):
            space_id, batch_id = f"space{s}", f"{number:08x}{s:08x}{'0' * 16}"
            share = (number * spaces_per_tenant + s) / (len(tenants) * spaces_per_tenant)
            stamp = oldest + timedelta(seconds=span * share)
            task = Task(batch_id, space_id, "succeeded", stamp.isoformat(), stamp.isoformat())
            items = [{"id": f"doc-{s}", "type": "text", "content": f"{tenant} note for {space_id}.", "blob_path": None,
                      "metadata": {}}]
            if tasks_too:  # (left out on the slow emulator: no tick reads a finished batch's task)
                writes[files.path("tasks", f"{batch_id}.json")] = json.dumps(task.to_dict()).encode()
            writes[files.path("landing", space_id, "batches", f"{batch_id}.json")] = json.dumps(
                {"batch_id": batch_id, "task_id": batch_id, "space_id": space_id, "items": items}).encode()
            entry = InboxEntry(stamp_of(stamp), tenant, "default", space_id, "batch", batch_id)
            writes[join_uri(inbox.root, entry.key)] = b"{}"
            keys.append(f"{tenant}.default.{space_id}")
    fs = inbox.fs
    paths = list(writes)
    if fs.protocol in ("file", "local") or "file" in (fs.protocol if isinstance(fs.protocol, tuple) else ()):
        for path in tqdm(paths, desc="seeding landed batches", leave=False):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).write_bytes(writes[path])
    else:
        for i in tqdm(range(0, len(paths), 2000), desc="seeding landed batches (S3)", leave=False):
            fs.pipe({p: writes[p] for p in paths[i:i + 2000]})
    return keys


def seed_events(instance: dg.DagsterInstance, written: list[str], measured: list[str]) -> None:
    """Space writes and new KPI measurements in the event log, as runs would record them."""
    for key in tqdm(written, desc="recording space writes", leave=False):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="space_table", partition=key))
    for key in tqdm(measured, desc="recording KPI measurements", leave=False):
        instance.report_runless_asset_event(dg.AssetObservation(asset_key="kpi_measurements", partition=key,
                                                                tags={DATA_VERSION_TAG: "v1"}))


def clustered(tenants: list[str], spaces_per_tenant: int, share: float, rng: random.Random) -> set[str]:
    """``share`` of the spaces, whole tenants at a time (a tenant's spaces became partitions together)."""
    chosen = rng.sample(tenants, max(1, int(share * len(tenants))))
    return {f"{t}.default.space{s}" for t in chosen for s in range(spaces_per_tenant)}


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """A SQLite instance as `dagster dev` keeps it, on tmpfs where there is one (the machine's disk is shared
    and slow to sync; Postgres has its own costs, see deploy/README.md)."""
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=where) as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        yield instance


def sensor_tick(instance, cursor: str) -> tuple[dg.SensorResult, float]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"nexus": NexusResource()})
    return timed(lambda: landing_sensor(context))


def measure_orchestration(tenants: list[str], spaces_per_tenant: int, busy: list[int]) -> dict:
    spaces = len(tenants) * spaces_per_tenant
    now = datetime.now(UTC)
    on_s3 = inbox_for(RoutingRegistry.default(), "dev").is_s3
    keys, seed_s = timed(lambda: seed_landed(tenants, spaces_per_tenant, now - timedelta(hours=25),
                                             now - timedelta(hours=2), tasks_too=not on_s3))
    nexus = NexusResource()
    inbox = inbox_for(nexus.registry, "dev")
    # The sensors list (and the sweep prunes) through this one: its calls are counted.
    sensors.inbox_for = sweep_module.inbox_for = lambda registry, environment: inbox
    out: dict = {"spaces": spaces, "tenants": len(tenants), "seed_s": seed_s}
    with dagster_instance() as instance:
        _, out["add_partitions_s"] = timed(lambda: instance.add_dynamic_partitions("tenant_spaces", keys))
        _, out["list_partitions_s"] = timed(lambda: instance.get_dynamic_partitions("tenant_spaces"))
        _, out["check_100_s"] = timed(lambda: instance.get_existing_dynamic_partitions("tenant_spaces", keys[:100]))

        cursor = InboxCursor(newest=stamp_of(now - timedelta(hours=1)))
        cursor.advance([])  # the sensor saw every seeded entry long ago
        calls = inbox.list_calls
        quiet_ticks = [sensor_tick(instance, cursor.dumps()) for _ in range(QUIET_TICKS)]
        quiet = quiet_ticks[-1][0]
        out["quiet_s"] = float(np.median([seconds for _, seconds in quiet_ticks]))
        out["quiet_calls"] = (inbox.list_calls - calls) / QUIET_TICKS
        out["quiet_requests"] = len(quiet.run_requests)
        state = quiet.cursor
        rng = random.Random(7)
        out["busy"] = []
        for count in busy:
            targets = rng.sample(keys, count)
            for key in targets:
                tenant, _, space_id = key.split(".")
                landing_zone(RequestContext(tenant)).land_batch(space_id, [{"type": "text", "content": f"news {key}"}])
            calls = inbox.list_calls
            result, seconds = sensor_tick(instance, state)
            out["busy"].append({"batches": count, "s": seconds, "requests": len(result.run_requests),
                                "calls": inbox.list_calls - calls})
            state = result.cursor
            assert len(result.run_requests) == count, (len(result.run_requests), count)

        if inbox.is_s3:  # the store's own floor: one ListObjectsV2 of a prefix holding nothing
            bucket = inbox.root.split("/", 1)[0]
            floor = [timed(lambda: inbox.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix="nothing-here/",
                                                    MaxKeys=1))[1] for _ in range(QUIET_TICKS)]
            out["empty_list_s"] = float(np.median(floor))
        sweep = SweepCursor(batches_since=time.time() - 3600)
        found, out["sweep_tick_s"] = timed(lambda: sweep_slice(nexus, instance, sweep))
        out["sweep_tick_calls"] = found.listing_calls
        out["sweep_tick_tenants"] = found.tenants
        out["sweep_round_ticks"] = math.ceil(len(tenants) / max(found.tenants, 1))

        rng = random.Random(11)
        written = rng.sample(keys, max(1, int(WRITTEN_SHARE * len(keys))))
        measured = rng.sample(keys, max(1, int(KPI_SHARE * len(keys))))
        seed_events(instance, written, measured)
        out["written"], out["measured"] = len(written), len(measured)
        ordered = instance.get_dynamic_partitions("tenant_spaces")
        out["kpi_runs_clustered"] = len(changed_range_run_requests(
            ordered, clustered(tenants, spaces_per_tenant, KPI_SHARE, rng), KPI_BATCH_SIZE, run_key="x", batch_tag="b"))
        out["maintenance_runs_clustered"] = len(changed_range_run_requests(
            ordered, clustered(tenants, spaces_per_tenant, WRITTEN_SHARE, rng), MAINTENANCE_BATCH_SIZE, run_key="x",
            batch_tag="b"))
        tick_time = datetime.now(UTC)
        tick = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time,
                                         resources={"nexus": nexus})
        kpi, out["kpi_tick_s"] = timed(lambda: kpi_hourly_schedule(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick_time)))
        maintenance, out["maintenance_tick_s"] = timed(lambda: space_maintenance_nightly(tick))
        out["kpi_runs"] = len(kpi) if isinstance(kpi, list) else 0
        out["maintenance_runs"] = len(maintenance) if isinstance(maintenance, list) else 0
    out["kpi_runs_before"] = math.ceil(spaces / KPI_BATCH_SIZE)
    out["maintenance_runs_before"] = math.ceil(spaces / MAINTENANCE_BATCH_SIZE)
    return out


# --- the query process ------------------------------------------------------------------------------------

class NamedEmbedder:
    """Names the spaces' embedder; a query given as a vector is never embedded, so no model is loaded."""

    info = EMBEDDER

    def embed(self, texts, ctx=None):  # pragma: no cover - vector queries only
        raise RuntimeError("the serving measurement queries by vector")


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def measure_serving(counts: list[int], rows: int = 50) -> list[dict]:
    """Resident memory after querying N small spaces once each (tenants' projects, so each space has its own
    database folder, the worst case for handles), and the first query on a cold space against a warm one."""
    store, provider = SpaceStore(), NamedEmbedder()
    rng = np.random.default_rng(3)
    total = max(counts)
    spaces = []
    for number in tqdm(range(total), desc="creating spaces to serve", leave=False):
        ctx = RequestContext("writer", f"p{number:05d}")
        vectors = rng.standard_normal((rows, EMBEDDER.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [Record(text=f"space {number} row {i}", source=f"s{number}-{i}") for i in range(rows)]
        store.open_or_create(ctx, "main", EMBEDDER).upsert(build_rows(ctx, records, vectors, EMBEDDER), EMBEDDER)
        spaces.append(ctx)
    snapshot_cache.clear()
    space_module._connections.clear()  # as a fresh query process: nothing opened yet
    probe = rng.standard_normal(EMBEDDER.dimension).astype(np.float32)
    query(spaces[0], "main", probe, mode="vector", top_k=5, provider=provider)  # imports, first session
    baseline = rss_mb()
    results, served, cold = [], 0, []
    for count in counts:
        while served < count:
            ctx = spaces[served]
            _, seconds = timed(lambda ctx=ctx: query(ctx, "main", probe, mode="vector", top_k=5, provider=provider))
            cold.append(seconds)
            served += 1
        last = spaces[served - 1]
        warm = [timed(lambda last=last: query(last, "main", probe, mode="vector", top_k=5, provider=provider))[1]
                for _ in range(5)]
        results.append({"spaces": count, "rss_mb": rss_mb(), "baseline_mb": baseline, "snapshots": len(snapshot_cache),
                        "databases": open_databases(), "cold_ms": 1000 * float(np.median(cold[-50:])),
                        "warm_ms": 1000 * float(np.median(warm))})
    return results


# --- concurrent writers (unchanged) ------------------------------------------------------------------------

def _writer(space_id: str, number: int, batches: int, rows: int, barrier, results) -> None:
    space = SpaceStore().open_or_create(WRITER, space_id, EMBEDDER)
    rng = np.random.default_rng(number)
    prepared = []
    for b in range(batches):
        records = [Record(text=f"writer {number} batch {b} row {i}", source=f"w{number}-b{b}-{i}") for i in range(rows)]
        vectors = rng.standard_normal((rows, EMBEDDER.dimension)).astype(np.float32)
        prepared.append(build_rows(WRITER, records, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), EMBEDDER))
    barrier.wait(timeout=300)
    started, conflicts = time.perf_counter(), 0
    for table in prepared:
        conflicts += space.upsert(table, EMBEDDER).conflicts_retried
    results.put((started, time.perf_counter(), conflicts))


def measure_writers(writers: int, batches: int, rows: int) -> dict:
    """``writers`` processes upserting ``batches`` x ``rows`` new rows each into one space, all at once."""
    store, space_id = SpaceStore(), f"shared{writers}"
    store.open_or_create(WRITER, space_id, EMBEDDER)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(writers), spawn.Queue()
    procs = [spawn.Process(target=_writer, args=(space_id, w, batches, rows, barrier, results))
             for w in range(writers)]
    for proc in procs:
        proc.start()
    done = [results.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    seconds = max(end for _, end, _ in done) - min(start for start, _, _ in done)
    ids = store.open(WRITER, space_id).table.to_arrow().column("id").to_pylist()
    expected = writers * batches * rows
    return {"writers": writers, "rows": expected, "seconds": seconds, "rows_per_s": expected / seconds,
            "commits_per_s": writers * batches / seconds, "conflicts_retried": sum(c for _, _, c in done),
            "lost": expected - len(set(ids)), "duplicated": len(ids) - len(set(ids))}


@contextmanager
def moto_s3() -> Iterator[dict]:
    import boto3

    from tests.conftest import free_port, stop, wait_for_port

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        os.environ[name] = value
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    server = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        endpoint = f"http://127.0.0.1:{port}"
        yield {"endpoint": endpoint, "client": boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")}
    finally:
        stop(server)


# --- report ---------------------------------------------------------------------------------------------------

def growth(first: float, last: float, n0: int, n1: int) -> tuple[float, float]:
    """(growth ratio from n0 to n1, exponent b of value ~ n^b)."""
    ratio = last / first if first > 0 else float("inf")
    return ratio, (math.log(ratio) / math.log(n1 / n0)) if ratio > 0 and n1 > n0 else 0.0


def extrapolate(first: float, last: float, n0: int, n1: int) -> float:
    """The value at TARGET spaces, growing from n1 the way it grew from n0 to n1 (a power law)."""
    _, exponent = growth(first, last, n0, n1)
    return last * (TARGET / n1) ** max(exponent, 0.0)


def report(where: str, runs: list[dict]) -> None:
    print(f"\n## {where}\n")
    sizes = [r["spaces"] for r in runs]
    head = "| measure | " + " | ".join(f"{n:,} spaces" for n in sizes) + " | growth | at 100,000 |"
    print(head)
    print("|---" * (len(sizes) + 3) + "|")
    first, last = runs[0], runs[-1]

    def row(name: str, values: list[float], fmt: str, project: bool = True, note: str = "") -> None:
        ratio, exponent = growth(values[0], values[-1], sizes[0], sizes[-1]) if len(values) > 1 else (1.0, 0.0)
        at = extrapolate(values[0], values[-1], sizes[0], sizes[-1]) if project and len(values) > 1 else None
        cells = " | ".join(fmt.format(v) for v in values)
        grown = f"x{ratio:.2f} (n^{exponent:.2f})" if len(values) > 1 else "-"
        print(f"| {name} | {cells} | {grown} | {fmt.format(at) if at is not None else note} |")

    row(f"landing sensor, quiet tick (s, median of {QUIET_TICKS})", [r["quiet_s"] for r in runs], "{:.3f}")
    row("... its store listing calls", [r["quiet_calls"] for r in runs], "{:.0f}")
    if "empty_list_s" in first:
        row("one ListObjectsV2 of an empty prefix (s, the emulator's floor)", [r["empty_list_s"] for r in runs],
            "{:.3f}")
    for i, busy in enumerate(first["busy"]):
        row(f"landing sensor, busy tick with {busy['batches']} new batches (s)", [r["busy"][i]["s"] for r in runs],
            "{:.3f}")
    row("reconciliation sweep, one tick (s)", [r["sweep_tick_s"] for r in runs], "{:.2f}", project=False,
        note=f"at most ~{SWEEP_TICK_BUDGET_SECONDS:.0f} s (time budget)")
    row("... tenants it covered", [r["sweep_tick_tenants"] for r in runs], "{:.0f}", project=False, note="same")
    per_tenant = last["sweep_tick_s"] / max(last["sweep_tick_tenants"], 1)
    tenants_per_tick = min(SWEEP_TENANTS_PER_TICK, SWEEP_TICK_BUDGET_SECONDS / per_tenant) if per_tenant else 1
    row("... ticks per round (every tenant)", [r["sweep_round_ticks"] for r in runs], "{:.0f}", project=False,
        note=f"{math.ceil(TARGET / 5 / tenants_per_tick)} (20,000 tenants)")
    row("add every partition (s)", [r["add_partitions_s"] for r in runs], "{:.2f}")
    row("list every partition (s)", [r["list_partitions_s"] for r in runs], "{:.3f}")
    row("check 100 partitions exist (s)", [r["check_100_s"] for r in runs], "{:.4f}")
    row("kpi_hourly_schedule tick (s), 2% of spaces with new measurements", [r["kpi_tick_s"] for r in runs], "{:.3f}")
    row("... runs per tick, scattered", [r["kpi_runs"] for r in runs], "{:.0f}")
    row("... ... whole tenants", [r["kpi_runs_clustered"] for r in runs], "{:.0f}")
    row("space_maintenance_nightly tick (s), 10% of spaces written", [r["maintenance_tick_s"] for r in runs], "{:.3f}")
    row("... runs per tick, scattered", [r["maintenance_runs"] for r in runs], "{:.0f}")
    row("... ... whole tenants", [r["maintenance_runs_clustered"] for r in runs], "{:.0f}")
    row("schedule runs per day, scattered", [24 * r["kpi_runs"] + r["maintenance_runs"] for r in runs], "{:.0f}")
    row("... whole tenants", [24 * r["kpi_runs_clustered"] + r["maintenance_runs_clustered"] for r in runs], "{:.0f}")
    row("schedule runs per day before (every space, every time)",
        [24 * r["kpi_runs_before"] + r["maintenance_runs_before"] for r in runs], "{:.0f}")
    seeded = ", ".join(f"{r['seed_s']:.0f} s" for r in runs)
    print(f"\n(seeding one landed batch per space took {seeded}; Dagster's sensor and schedule timeout is "
          f"{TIMEOUT_SECONDS} s)")


def report_serving(results: list[dict]) -> None:
    print(f"\n## query process serving many spaces (local disk, 50 rows each, `serving.max_snapshots` "
          f"{snapshot_cache.max_items}, `max_open_databases` {space_module._serving.max_open_databases})\n")
    print("| spaces queried | resident MB | above baseline | snapshots held | databases open | cold first query ms "
          "| warm query ms |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['spaces']:,} | {r['rss_mb']:.0f} | {r['rss_mb'] - r['baseline_mb']:.0f} | {r['snapshots']} | "
              f"{r['databases']} | {r['cold_ms']:.1f} | {r['warm_ms']:.1f} |")
    if len(results) > 1:
        a, b = results[-2], results[-1]
        per_space = (b["rss_mb"] - a["rss_mb"]) / (b["spaces"] - a["spaces"])
        print(f"\ngrowth between the last two: {1024 * per_space:.1f} KB per space served")


def report_writers(writes: list[dict]) -> None:
    print("\n| writers on one space | rows | seconds | rows/s | commits/s | conflicts retried | lost | duplicated |")
    print("|---|---|---|---|---|---|---|---|")
    for w in writes:
        print(f"| {w['writers']} | {w['rows']} | {w['seconds']:.2f} | {w['rows_per_s']:.0f} | {w['commits_per_s']:.1f} "
              f"| {w['conflicts_retried']} | {w['lost']} | {w['duplicated']} |")


def run_sizes(where: str, home: Path, args: argparse.Namespace, s3: dict | None) -> list[dict]:
    runs = []
    for spaces in (args.s3_spaces or args.spaces) if s3 else args.spaces:
        tenants = [f"t{i:05d}" for i in range(math.ceil(spaces / args.spaces_per_tenant))]
        bucket = None
        if s3:
            bucket = f"nexus-scale-{spaces}"
            s3["client"].create_bucket(Bucket=bucket)
        os.environ["NEXUS_HOME"] = str(home / f"local-{spaces}")
        os.environ["NEXUS_CONFIG"] = str(write_config(home / f"local-{spaces}" if not s3 else home, tenants,
                                                      {**s3, "bucket": bucket} if s3 else None))
        assert RoutingRegistry.default().config.source == os.environ["NEXUS_CONFIG"]
        runs.append(measure_orchestration(tenants, args.spaces_per_tenant, args.busy))
        print(f"{where}: {spaces:,} spaces measured", file=sys.stderr)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, nargs="+", default=[500, 5000, 20000])
    parser.add_argument("--spaces-per-tenant", type=int, default=5)
    parser.add_argument("--busy", type=int, nargs="+", default=[20, 200], help="batches landed before a busy tick")
    parser.add_argument("--serve", type=int, nargs="*", default=[200, 1000, 2000],
                        help="spaces queried by one process (local disk); none to skip")
    parser.add_argument("--serve-max-snapshots", type=int, help="serving.max_snapshots for the serving measurement "
                                                                  "(default: the shipped 4096)")
    parser.add_argument("--writers", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--write-batches", type=int, default=20, help="upserts per writer")
    parser.add_argument("--batch-rows", type=int, default=50, help="rows per upsert")
    parser.add_argument("--s3", action="store_true", help="repeat the orchestration on S3 (moto_server on 127.0.0.1)")
    parser.add_argument("--s3-spaces", type=int, nargs="+", help="sizes on S3 (default: --spaces); the emulator "
                                                                 "writes ~40 objects/s on two shared cores")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.spaces, args.busy, args.serve, args.writers, args.write_batches = [10, 20], [2], [3], [1], 2
        args.s3 = False
    with tempfile.TemporaryDirectory(prefix="nexus-scale-") as tmp:
        home = Path(tmp)
        (home / "s3").mkdir()
        for spaces in set(args.spaces) | set(args.s3_spaces or []):
            (home / f"local-{spaces}").mkdir()
        report("local disk", run_sizes("local disk", home, args, None))
        if args.s3:
            with moto_s3() as s3:
                report("S3 (moto_server on loopback)", run_sizes("S3", home / "s3", args, s3))
        if args.serve or args.writers:
            os.environ["NEXUS_HOME"] = str(home / "serve")
            (home / "serve").mkdir()
            serving = {"max_snapshots": args.serve_max_snapshots} if args.serve_max_snapshots else None
            os.environ["NEXUS_CONFIG"] = str(write_config(home / "serve", ["t00000"], None, serving))
        if args.serve:
            report_serving(measure_serving(sorted(args.serve)))
        if args.writers:
            report_writers([measure_writers(w, args.write_batches, args.batch_rows)
                            for w in tqdm(args.writers, desc="concurrent writers", leave=False)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
