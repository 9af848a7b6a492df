"""Writing HAZE snapshots into a tenant's projection store (the layout is in ``nexus_query.haze``).

A snapshot's files are written before its ``snapshot.json``, and ``latest.json`` last, so a reader never
sees a pointer to a half-written snapshot. Only the pipeline writes maps; ``nexus_query`` reads them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from nexus_query.haze import POINTS_SCHEMA, HazeStore, SnapshotInfo


def new_snapshot_id(table_version: int, created_at: str) -> str:
    """Sortable by time (to the millisecond) and a valid id: ``20260109-101500123-v12-3fa2c1``."""
    stamp = created_at[:23].replace("-", "").replace(":", "").replace(".", "").replace("T", "-")
    return f"{stamp}-v{table_version}-{uuid.uuid4().hex[:6]}"


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_snapshot_files(haze: HazeStore, space_id: str, snapshot_id: str, points: pa.Table,
                         extra_files: Mapping[str, bytes] | None = None) -> None:
    """The points (and pictures) of a snapshot that is not visible yet."""
    points = points.select(POINTS_SCHEMA.names).cast(POINTS_SCHEMA)
    haze.files.write_bytes_atomic(parquet_bytes(points, row_group_size=16_384),
                                  *haze.snapshot_parts(space_id, snapshot_id, "points.parquet"))
    for name, data in (extra_files or {}).items():
        haze.files.write_bytes_atomic(data, *haze.snapshot_parts(space_id, snapshot_id, name))


def commit_snapshot(haze: HazeStore, info: SnapshotInfo) -> str:
    """Make a snapshot whose files are written complete, and the latest."""
    space_id, snapshot_id = info.space_id, info.snapshot_id
    haze.files.write_bytes_atomic(json.dumps(info.to_json(), indent=1).encode(),
                                  *haze.snapshot_parts(space_id, snapshot_id, "snapshot.json"))
    pointer = {"snapshot_id": snapshot_id, "table_version": info.table_version, "created_at": info.created_at}
    haze.files.write_bytes_atomic(json.dumps(pointer).encode(), "haze", space_id, "latest.json")
    return snapshot_id


def prune(haze: HazeStore, space_id: str, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` complete snapshots (never the latest) and the reducers none of
    the kept ones uses; returns the removed snapshot ids. Runs of one tenant never overlap (dagster.yaml),
    so nothing being written is removed."""
    snapshots = haze.snapshot_ids(space_id)
    kept = set(snapshots[-max(keep, 1):]) | {haze.latest_snapshot_id(space_id)}
    removed = [s for s in snapshots if s not in kept]
    for snapshot_id in removed:
        haze.files.fs.rm(haze.files.path("haze", space_id, "snapshots", snapshot_id), recursive=True)
    used = {haze.snapshot_info(space_id, s).reducer_id for s in kept if s}
    prefix = f"haze/{space_id}/reducers/"
    for reducer_id in {p[len(prefix):].split("/")[0] for p in haze.files.list("haze", space_id, "reducers")}:
        if reducer_id not in used:
            haze.files.fs.rm(haze.files.path("haze", space_id, "reducers", reducer_id), recursive=True)
    return removed
