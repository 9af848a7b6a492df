"""Putting measurements into a space's KPI source: ``nexus kpi add`` and ``POST /nexus/spaces/{id}/kpi/measurements``.

A batch is checked whole before anything is written (every reading parses, no reading is given twice), then
written as one new Parquet file under ``kpi/{space}/measurements/`` with an atomic write: files already there
are never touched, so a bad batch loses nothing already stored. A space without a catalogue gets one listing
the batch's metrics (with defaults); an existing catalogue is the tenant's and is left as it is, and metrics
it does not list are named in the result.

An HTTP batch gets a task (kind ``kpi_measurements``), queued until a KPI run has read its file: a marker
``kpi/{space}/pending/{task_id}`` names the file, and the run that refreshed the space's facts from it settles
the task (``settle_landed``).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import yaml

from nexus_query.context import RequestContext
from nexus_query.errors import ConflictingReadings, InvalidRequest
from nexus_query.kpi.catalogue import Catalogue
from nexus_query.kpi.source import CORE_COLUMNS, kpi_folder, normalize, row_name
from nexus_query.landing import LandingZone, Task, landing_zone, now_iso
from nexus_query.paths import TenantFiles

TASK_KIND = "kpi_measurements"
BATCH = "the batch"  # an HTTP batch's name in errors: "the batch, row 3: ..."


@dataclass(frozen=True)
class LandedMeasurements:
    """What one batch added to a space's KPI source."""

    path: str  # the new file, relative to the tenant's store
    readings: int
    metrics: tuple[str, ...]
    catalogue_created: bool
    uncatalogued: tuple[str, ...]  # metrics the space's catalogue does not list: no facts until it does


def check_no_duplicates(frame: pl.DataFrame, source: str) -> None:
    """A reading given twice (same metric, dimensions and time) is refused, naming both lines."""
    keys = ["metric", "timestamp", *[c for c in frame.columns if c not in CORE_COLUMNS]]
    repeated = frame.with_row_index("_row").filter(pl.struct(keys).is_duplicated())
    if repeated.height:
        first = repeated.row(0, named=True)
        same = [pl.col(k).is_null() if first[k] is None else pl.col(k) == first[k] for k in keys]
        again = repeated.filter(pl.all_horizontal(same)).row(1, named=True)
        raise ConflictingReadings(f"{source}, {row_name(source, again['_row'])}: a second reading of "
                             f"{first['metric']!r} at {first['timestamp'].isoformat()} (the first is on "
                             f"{row_name(source, first['_row'])})", path=source)


def readings_frame(readings: Sequence[object]) -> pl.DataFrame:
    """An HTTP batch (``[{"metric", "timestamp", "value", "unit"?, "dimensions"?}, ...]``) as a table."""
    rows = []
    for number, reading in enumerate(readings, start=1):
        if not isinstance(reading, dict) or not {"metric", "timestamp", "value"} <= set(reading):
            raise InvalidRequest(f"reading {number}: needs metric, timestamp and value", field="readings")
        dims = reading.get("dimensions") or {}
        if not isinstance(dims, dict):
            raise InvalidRequest(f"reading {number}: dimensions must be an object", field="readings")
        rows.append({"metric": reading["metric"], "timestamp": str(reading["timestamp"]),
                     "value": str(reading["value"]), "unit": reading.get("unit"),
                     **{str(k): str(v) for k, v in dims.items()}})
    return pl.DataFrame(rows, infer_schema_length=None)


def land_measurements(files: TenantFiles, space_id: str, frames: Sequence[tuple[str, pl.DataFrame]], *,
                      file_id: str | None = None) -> LandedMeasurements:
    """Check every frame (already read by ``read_measurements``), then write them as one new file
    (``{file_id}.parquet``, default a fresh uuid)."""
    if not frames or all(frame.height == 0 for _, frame in frames):
        raise InvalidRequest("no readings to add", field="readings")
    for name, frame in frames:
        check_no_duplicates(frame, name)
    batch = pl.concat([frame for _, frame in frames], how="diagonal_relaxed")
    check_no_duplicates(batch, "the batch")
    folder = kpi_folder(space_id)
    metrics = tuple(sorted(set(batch.get_column("metric").to_list())))
    created = False
    if files.exists(*folder, "catalogue.yaml"):
        catalogue = Catalogue.from_yaml(files.read_bytes(*folder, "catalogue.yaml"))
    else:
        text = yaml.safe_dump({"metrics": [{"name": m} for m in metrics]}, sort_keys=False)
        catalogue = Catalogue.from_yaml(text)
        created = files.write_bytes_once(text.encode(), *folder, "catalogue.yaml")
    buffer = io.BytesIO()
    batch.write_parquet(buffer)
    name = f"{file_id or uuid.uuid4().hex}.parquet"
    files.write_bytes_atomic(buffer.getvalue(), *folder, "measurements", name)
    return LandedMeasurements("/".join((*folder, "measurements", name)), batch.height, metrics, created,
                              tuple(m for m in metrics if catalogue.get(m) is None))


def request_measurements(ctx: RequestContext, space_id: str, readings: Sequence[object],
                         registry: object = None) -> Task:
    """Land an HTTP batch of readings in the caller's space: checked whole first (a bad reading is refused
    naming its row, and nothing is written), then a queued task, its pending marker and the file."""
    frame = normalize(readings_frame(readings), source=BATCH)
    check_no_duplicates(frame, BATCH)
    zone = landing_zone(ctx, registry)
    stamp = now_iso()
    task = Task(task_id=uuid.uuid4().hex, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                kind=TASK_KIND, counts={"readings": frame.height})
    zone.write_task(task)  # first: a marker or a file the pipeline sees always has its task
    folder = kpi_folder(space_id)
    file_rel = "/".join((*folder, "measurements", f"{task.task_id}.parquet"))
    zone.files.write_bytes_atomic(file_rel.encode(), *folder, "pending", task.task_id)
    land_measurements(zone.files, space_id, [(BATCH, frame)], file_id=task.task_id)
    return task


def settle_landed(files: TenantFiles, space_id: str, read: Sequence[str], run_id: str) -> list[str]:
    """After ``run_id`` refreshed the space's facts from the files ``read``: the tasks whose file was among
    them are ``succeeded`` and their markers go. Returns the settled task ids."""
    folder = kpi_folder(space_id)
    zone, settled = LandingZone(files), []
    for rel in files.list(*folder, "pending"):
        task_id = rel.rsplit("/", 1)[-1]
        if files.read_bytes(rel).decode() not in read:
            continue
        zone.settle_task(task_id, run_id)
        files.fs.rm(files.path(rel))
        settled.append(task_id)
    return settled
