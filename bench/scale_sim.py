"""Scale simulation: many tenant spaces with small batches, measured where the orchestration pays for them.

    .venv/bin/python bench/scale_sim.py [--spaces 500] [--spaces-per-tenant 5] [--writers 1 2 4]
                                        [--write-batches 20] [--batch-rows 50] [--s3]

* the landing sensor's tick over every tenant's landing zone: the first (every space new, every batch
  a run request) and a quiet one (nothing new), against Dagster's 60 s sensor evaluation timeout;
* schedule fan-out: run requests per tick of ``kpi_hourly_schedule`` and ``space_maintenance_nightly``
  (partition ranges), and what that makes per day;
* partition count against Dagster's recommended limit per asset (100,000), and the tick time that
  linear growth would reach there;
* write throughput of 1, 2 and 4 processes upserting small batches into one space at once (rows/s,
  commit conflicts retried, rows lost or duplicated: both must be 0).

Local disk by default; ``--s3`` repeats the sensor tick and the writers on S3 (moto_server on loopback,
so latencies are far below real S3's). Vectors are random unit vectors: the embedder is not measured here.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("DAGSTER_HOME", None)

import dagster as dg  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nexus_pipelines.ingest.sensors import landing_sensor  # noqa: E402
from nexus_pipelines.kpi.triggers import kpi_hourly_schedule  # noqa: E402
from nexus_pipelines.maintenance.assets import space_maintenance_nightly  # noqa: E402
from nexus_pipelines.resources import NexusResource  # noqa: E402
from nexus_query.config import DEFAULT_CONFIG_PATH  # noqa: E402
from nexus_query.context import RequestContext  # noqa: E402
from nexus_query.embeddings import EmbedderInfo  # noqa: E402
from nexus_query.landing import landing_zone  # noqa: E402
from nexus_query.routing import RoutingRegistry  # noqa: E402
from nexus_query.store import Record, SpaceStore, build_rows  # noqa: E402

DAGSTER_PARTITION_LIMIT = 100_000  # Dagster's recommended maximum partitions per asset
SENSOR_TIMEOUT_SECONDS = 60  # Dagster's default sensor evaluation timeout
EMBEDDER = EmbedderInfo("all-MiniLM-L6-v2", 384)
WRITER = RequestContext("writer")


def write_config(home: Path, tenants: list[str], s3: dict | None) -> Path:
    """The shipped registry with ``tenants`` (and the writers' tenant), on local disk or on S3."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(home)
    raw["cursor"]["secret"] = "scale-sim-cursor-secret-0123456789"
    env = raw["environments"]["dev"]
    env["tenants"] = {t: {} for t in [*tenants, WRITER.tenant_id]}
    if s3:
        options = {"endpoint": s3["endpoint"], "allow_http": True, "region": "us-east-1"}
        bucket = s3["bucket"]
        env["defaults"] = {
            "nexus_store": {"uri": f"s3://{bucket}/lance", "storage_options": options},
            "nexus_blob_store": {"protocol": "s3", "bucket": bucket, "prefix": "blobs", "storage_options": options},
            "nexus_projection_store": {"protocol": "s3", "bucket": bucket, "prefix": "projections",
                                       "storage_options": options},
        }
    path = home / ("nexus-s3.yaml" if s3 else "nexus.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def land_batches(tenants: list[str], spaces_per_tenant: int, items: int) -> float:
    """One small batch in every space; returns the seconds it took."""
    started = time.perf_counter()
    for tenant in tqdm(tenants, desc="landing one batch per space", leave=False):
        zone = landing_zone(RequestContext(tenant))
        for s in range(spaces_per_tenant):
            zone.land_batch(f"space{s}", [{"type": "text", "content": f"{tenant} note {i} for space {s}."}
                                          for i in range(items)])
    return time.perf_counter() - started


def measure_orchestration(tenants: list[str], spaces_per_tenant: int, items: int) -> dict:
    spaces = len(tenants) * spaces_per_tenant
    land_seconds = land_batches(tenants, spaces_per_tenant, items)
    with dg.instance_for_test() as instance:  # SQLite in a temporary folder, as `dagster dev` keeps it
        resources = {"nexus": NexusResource()}
        first, first_s = timed(lambda: landing_sensor(dg.build_sensor_context(instance=instance, resources=resources)))
        keys = [k for r in first.dynamic_partitions_requests for k in r.partition_keys]
        _, add_s = timed(lambda: instance.add_dynamic_partitions("tenant_spaces", keys))
        quiet, quiet_s = timed(lambda: landing_sensor(dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources=resources)))
        _, list_s = timed(lambda: instance.get_dynamic_partitions("tenant_spaces"))
        tick = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 11, 20, 3, 17))
        kpi, kpi_s = timed(lambda: kpi_hourly_schedule(tick))
        maintenance, maintenance_s = timed(lambda: space_maintenance_nightly(tick))
    per_space = first_s / spaces
    return {
        "spaces": spaces, "tenants": len(tenants), "land_seconds": land_seconds,
        "sensor_first_s": first_s, "sensor_first_requests": len(first.run_requests), "new_partitions": len(keys),
        "sensor_quiet_s": quiet_s, "sensor_quiet_requests": len(quiet.run_requests),
        "add_partitions_s": add_s, "list_partitions_s": list_s,
        "kpi_runs_per_tick": len(kpi), "kpi_tick_s": kpi_s,
        "maintenance_runs_per_tick": len(maintenance), "maintenance_tick_s": maintenance_s,
        "sensor_s_at_limit": per_space * DAGSTER_PARTITION_LIMIT,
        "max_spaces_within_timeout": int(SENSOR_TIMEOUT_SECONDS / per_space) if per_space else 0,
    }


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
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="nexus-scale")
        yield {"endpoint": endpoint, "bucket": "nexus-scale"}
    finally:
        stop(server)


def report(where: str, orchestration: dict, writes: list[dict]) -> None:
    o = orchestration
    print(f"\n## {where}: {o['spaces']} spaces ({o['tenants']} tenants), one small batch each "
          f"(landed in {o['land_seconds']:.1f} s)\n")
    print("| measure | value |\n|---|---|")
    rows = [
        ("landing sensor, first tick (all new)", f"{o['sensor_first_s']:.2f} s, {o['sensor_first_requests']} run "
                                                 f"requests, {o['new_partitions']} new partitions"),
        ("landing sensor, quiet tick", f"{o['sensor_quiet_s']:.2f} s ({o['sensor_quiet_requests']} requests, "
                                       "deduplicated by run key)"),
        ("sensor tick per space", f"{1000 * o['sensor_first_s'] / o['spaces']:.2f} ms"),
        (f"tick at {DAGSTER_PARTITION_LIMIT:,} spaces (linear)", f"{o['sensor_s_at_limit']:.0f} s vs "
                                                                  f"{SENSOR_TIMEOUT_SECONDS} s timeout"),
        ("spaces one tick covers within the timeout", f"{o['max_spaces_within_timeout']:,}"),
        ("add / list dynamic partitions", f"{o['add_partitions_s']:.2f} s / {o['list_partitions_s']:.3f} s"),
        ("partitions vs Dagster's recommended limit", f"{o['spaces']:,} / {DAGSTER_PARTITION_LIMIT:,} "
                                                      f"({100 * o['spaces'] / DAGSTER_PARTITION_LIMIT:.1f}%)"),
        ("kpi_hourly_schedule fan-out", f"{o['kpi_runs_per_tick']} runs per tick ({o['kpi_tick_s']:.3f} s), "
                                        f"{24 * o['kpi_runs_per_tick']} runs/day"),
        ("space_maintenance_nightly fan-out", f"{o['maintenance_runs_per_tick']} runs per tick "
                                              f"({o['maintenance_tick_s']:.3f} s)"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n| writers on one space | rows | seconds | rows/s | commits/s | conflicts retried | lost | duplicated |")
    print("|---|---|---|---|---|---|---|---|")
    for w in writes:
        print(f"| {w['writers']} | {w['rows']} | {w['seconds']:.2f} | {w['rows_per_s']:.0f} | {w['commits_per_s']:.1f} "
              f"| {w['conflicts_retried']} | {w['lost']} | {w['duplicated']} |")


def run(where: str, home: Path, args: argparse.Namespace, s3: dict | None) -> None:
    tenants = [f"t{i:05d}" for i in range(math.ceil(args.spaces / args.spaces_per_tenant))]
    os.environ["NEXUS_CONFIG"] = str(write_config(home, tenants, s3))
    assert RoutingRegistry.default().config.source == os.environ["NEXUS_CONFIG"]
    orchestration = measure_orchestration(tenants, args.spaces_per_tenant, args.items)
    writes = [measure_writers(w, args.write_batches, args.batch_rows)
              for w in tqdm(args.writers, desc=f"{where}: concurrent writers", leave=False)]
    report(where, orchestration, writes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, default=500)
    parser.add_argument("--spaces-per-tenant", type=int, default=5)
    parser.add_argument("--items", type=int, default=3, help="items per landed batch")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--write-batches", type=int, default=20, help="upserts per writer")
    parser.add_argument("--batch-rows", type=int, default=50, help="rows per upsert")
    parser.add_argument("--s3", action="store_true", help="repeat on S3 (moto_server on 127.0.0.1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-scale-") as tmp:
        os.environ["NEXUS_HOME"] = str(Path(tmp) / "local")
        run("local disk", Path(tmp), args, None)
        if args.s3:
            with moto_s3() as s3:
                run("S3 (moto_server on loopback)", Path(tmp), args, s3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
