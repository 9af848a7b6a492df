"""Putting measurements into a space's KPI source: ``nexus kpi add`` and ``POST /nexus/spaces/{id}/kpi/measurements``.

A batch is checked whole before anything is written (every reading parses, no reading is given twice), then
written as one new Parquet file under ``kpi/{space}/measurements/`` with an atomic write: files already there
are never touched, so a bad batch loses nothing already stored. A space without a catalogue gets one listing
the batch's metrics (with defaults); an existing catalogue is the tenant's and is left as it is, and metrics
it does not list are named in the result.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import yaml

from nexus_query.errors import InvalidRequest
from nexus_query.kpi.catalogue import Catalogue
from nexus_query.kpi.source import CORE_COLUMNS, kpi_folder, row_name
from nexus_query.paths import TenantFiles


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
        again = repeated.filter(pl.struct(keys) == pl.struct([pl.lit(first[k]) for k in keys])).row(1, named=True)
        raise InvalidRequest(f"{source}, {row_name(source, again['_row'])}: a second reading of "
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


def land_measurements(files: TenantFiles, space_id: str, frames: Sequence[tuple[str, pl.DataFrame]],
                      ) -> LandedMeasurements:
    """Check every frame (already read by ``read_measurements``), then write them as one new file."""
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
    name = f"{uuid.uuid4().hex}.parquet"
    files.write_bytes_atomic(buffer.getvalue(), *folder, "measurements", name)
    return LandedMeasurements("/".join((*folder, "measurements", name)), batch.height, metrics, created,
                              tuple(m for m in metrics if catalogue.get(m) is None))
