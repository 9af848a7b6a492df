"""The KPI source: measurements (``metric``, ``timestamp``, ``value``, optional ``unit`` and dimension
columns) in CSV or Parquet files, read with polars through fsspec, and the tenant's catalogue.

Layout inside the tenant's ``nexus_blob_store`` area, next to the landing zone::

    kpi/{space_id}/catalogue.yaml            the metric catalogue (see catalogue.py)
    kpi/{space_id}/measurements/*.csv        any number of CSV or Parquet files, read together
    kpi/{space_id}/measurements/*.parquet

Every column other than metric, timestamp, value and unit is a dimension: each distinct combination of
dimension values is its own series (``checkout_latency_p95{region=eu}``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

import fsspec
import numpy as np
import polars as pl

from nexus_query.context import validate_id
from nexus_query.errors import ConflictingReadings, InvalidRequest
from nexus_query.kpi.catalogue import Catalogue, validate_metric_name
from nexus_query.paths import TenantFiles

CORE_COLUMNS = ("metric", "timestamp", "value", "unit")
FORMATS = (".csv", ".parquet")


@dataclass(frozen=True, eq=False)
class Series:
    """One metric's readings for one combination of dimension values: sorted, one value per instant."""

    metric: str
    dimensions: tuple[tuple[str, str], ...]
    timestamps_us: np.ndarray  # int64 microseconds since the epoch, strictly increasing
    values: np.ndarray  # float64, finite
    unit: str = ""

    @property
    def key(self) -> str:
        """Stable name of the series: ``metric`` or ``metric{dim=value,...}``."""
        if not self.dimensions:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}={v}" for k, v in self.dimensions) + "}"

    def __len__(self) -> int:
        return int(self.timestamps_us.size)


def parse_table(data: bytes, name: str) -> pl.DataFrame:
    """Read one measurements file; its suffix says the format."""
    try:
        if name.lower().endswith(".parquet"):
            return pl.read_parquet(io.BytesIO(data))
        if name.lower().endswith(".csv"):
            return pl.read_csv(io.BytesIO(data), infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidRequest(f"could not read measurements file {name}: {_first_bad_row(data, name) or exc}"
                             .splitlines()[0], path=name) from exc
    raise InvalidRequest(f"measurements must be {' or '.join(FORMATS)} files, got {name}", path=name)


def row_name(source: str, index: int) -> str:
    """Where a reading stands, as its author sees it: the CSV line (the header is line 1), else its row."""
    return f"line {index + 2}" if source.lower().endswith(".csv") else f"row {index + 1}"


def _first_bad_row(data: bytes, name: str) -> str | None:
    """Where a CSV stops matching its header, in one line (polars says it over several, in its own terms)."""
    if not name.lower().endswith(".csv"):
        return None
    rows = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))
    header = next(rows, [])
    for row in rows:
        if row and len(row) != len(header):
            hint = "; fields are separated by ','" + (" (this file uses ';')" if ";" in ",".join(header) else "")
            return f"line {rows.line_num} has {len(row)} field(s) where the header has {len(header)}{hint}"
    return None


def normalize(frame: pl.DataFrame, *, source: str, metric: str | None = None) -> pl.DataFrame:
    """Check the columns and types of a measurements table and bring it to one form: metric (str),
    timestamp (UTC, µs), value (f64), unit (str or null), dimension columns (str).

    ``metric`` names the metric of a plain ``timestamp,value`` file; a file with a metric column keeps
    only that metric's rows when ``metric`` is given."""
    columns = set(frame.columns)
    if "metric" not in columns:
        if metric is None:
            raise InvalidRequest(f"{source}: a measurements file needs a 'metric' column", path=source)
        frame = frame.with_columns(pl.lit(metric).alias("metric"))
    elif metric is not None:
        frame = frame.filter(pl.col("metric").cast(pl.Utf8) == metric)
    missing = [c for c in ("timestamp", "value") if c not in columns]
    if missing:
        raise InvalidRequest(f"{source}: missing column(s) {missing}; expected metric, timestamp, value",
                             path=source)
    if "unit" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("unit"))
    dims = [c for c in frame.columns if c not in CORE_COLUMNS]
    for dim in dims:
        validate_id(dim.lower(), f"dimension column {dim!r}")
    frame = frame.select(
        pl.col("metric").cast(pl.Utf8),
        _timestamps(frame.get_column("timestamp"), source).alias("timestamp"),
        _values(frame.get_column("value"), source).alias("value"),
        pl.col("unit").cast(pl.Utf8),
        *[pl.col(d).cast(pl.Utf8).fill_null("") for d in dims],
    )
    bad_names = frame.filter(~pl.col("metric").str.contains(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
                             | pl.col("metric").is_null())
    if bad_names.height:
        validate_metric_name(bad_names.get_column("metric")[0])
    return frame


def _timestamps(column: pl.Series, source: str) -> pl.Series:
    """ISO 8601 strings (with or without offset; naive ones are UTC), datetimes, or Unix seconds."""
    if column.dtype == pl.Datetime or column.dtype == pl.Date:
        parsed = column.cast(pl.Datetime("us"))
        if getattr(column.dtype, "time_zone", None):
            return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        return parsed.dt.replace_time_zone("UTC")
    if column.dtype.is_numeric():
        return (column.cast(pl.Float64) * 1_000_000).round().cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
    text = column.cast(pl.Utf8).str.strip_chars()
    parsed = text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    failed = parsed.is_null() & text.is_not_null()
    if failed.any():  # mixed forms: parse the rest one by one (naive times are UTC)
        fixed = [_parse_iso(value, source, i) if bad else None
                 for i, (value, bad) in enumerate(zip(text, failed, strict=True))]
        parsed = parsed.zip_with(~failed, pl.Series(fixed, dtype=pl.Datetime("us", "UTC")))
    if parsed.null_count():
        first_empty = parsed.is_null().arg_max() or 0  # not None: there is a null
        raise InvalidRequest(f"{source}, {row_name(source, first_empty)}: empty timestamp", path=source)
    return parsed


def _parse_iso(value: str, source: str, index: int) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{source}, {row_name(source, index)}: timestamp {value!r} is not ISO 8601",
                             path=source) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _values(column: pl.Series, source: str) -> pl.Series:
    values = column.cast(pl.Float64, strict=False)
    bad = values.is_null() & column.is_not_null()
    if bad.any():
        index = int(bad.arg_max() or 0)
        raise InvalidRequest(f"{source}, {row_name(source, index)}: value {column[index]!r} is not a number",
                             path=source)
    return values


def split_series(frame: pl.DataFrame) -> list[Series]:
    """One ``Series`` per metric and dimension combination; unreadable values (null, NaN, ±inf) are
    dropped, readings at the same instant are averaged."""
    dims = sorted(c for c in frame.columns if c not in CORE_COLUMNS)
    frame = frame.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
    found = []
    for keys, group in frame.group_by(["metric", *dims], maintain_order=False):
        per_instant = group.group_by("timestamp").agg(pl.col("value").mean()).sort("timestamp")
        units = [u for u in group.get_column("unit").unique().to_list() if u]
        if len(units) > 1:
            raise ConflictingReadings(f"metric {keys[0]!r} has readings in several units {sorted(units)}",
                                 metric=keys[0])
        found.append(Series(
            metric=keys[0],
            dimensions=tuple((d, v) for d, v in zip(dims, keys[1:], strict=True) if v != ""),
            timestamps_us=per_instant.get_column("timestamp").dt.epoch("us").to_numpy().astype(np.int64),
            values=per_instant.get_column("value").to_numpy().astype(np.float64),
            unit=units[0] if units else "",
        ))
    return sorted(found, key=lambda s: s.key)


def metric_from_path(path: str) -> str:
    """A plain ``timestamp,value`` file's metric name when none is given: its file name, made a valid name."""
    stem = re.sub(r"[^A-Za-z0-9_.:-]+", "_", PurePosixPath(path.replace("\\", "/")).name.rsplit(".", 1)[0])
    stem = stem.lstrip("_.:-")[:128]
    return stem or "value"


def read_measurements(data: bytes, name: str, *, metric: str | None = None) -> pl.DataFrame:
    """The one rule every reader follows (the CLI, ``nexus kpi add`` and the pipeline): a file with a
    ``metric`` column keeps every metric (only ``metric``'s rows when it is given); a plain
    ``timestamp,value`` file is the metric ``metric``, else the one its file name says."""
    frame = parse_table(data, name)
    if metric is not None:
        metric = validate_metric_name(metric)
    elif "metric" not in frame.columns:
        metric = metric_from_path(name)
    return normalize(frame, source=name, metric=metric)


def read_series_file(path: str, *, metric: str | None = None) -> list[Series]:
    """A local path or fsspec URL of a CSV/Parquet file: its series (the CLI's input), by ``read_measurements``."""
    try:
        with fsspec.open(path, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise InvalidRequest(f"cannot read {path}: {exc}", path=path) from exc
    return split_series(read_measurements(data, path, metric=metric))


@dataclass(frozen=True, eq=False)
class KpiSource:
    """What one space's KPI source holds right now."""

    catalogue: Catalogue
    measurements: pl.DataFrame
    files: tuple[str, ...]
    version: str  # ``source_version`` when it was read

    @property
    def series(self) -> list[Series]:
        return split_series(self.measurements)


def kpi_folder(space_id: str) -> tuple[str, str]:
    return ("kpi", validate_id(space_id, "space_id"))


def _source_files(files: TenantFiles, space_id: str) -> list[str] | None:
    folder = kpi_folder(space_id)
    if not files.exists(*folder, "catalogue.yaml"):
        return None
    measurements = [rel for rel in files.list(*folder, "measurements") if rel.lower().endswith(FORMATS)]
    return ["/".join((*folder, "catalogue.yaml")), *measurements]


def source_version(files: TenantFiles, space_id: str) -> str | None:
    """A fingerprint of the space's KPI source from its file listing (names, sizes, modification times
    or ETags), cheap enough to observe every tenant often; None when the space has no KPI source."""
    names = _source_files(files, space_id)
    if names is None:
        return None
    digest = hashlib.sha256()
    for rel in names:
        info = files.fs.info(files.path(rel))
        stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
        digest.update(f"{rel}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()[:32]


def read_source(files: TenantFiles, space_id: str) -> KpiSource | None:
    """The space's catalogue and measurements, or None when the space has no KPI source."""
    names = _source_files(files, space_id)
    if names is None:
        return None
    version = source_version(files, space_id) or ""
    catalogue = Catalogue.from_yaml(files.read_bytes(names[0]))
    frames = [read_measurements(files.read_bytes(rel), rel) for rel in names[1:]]
    measurements = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
        schema={"metric": pl.Utf8, "timestamp": pl.Datetime("us", "UTC"), "value": pl.Float64, "unit": pl.Utf8})
    dims = [c for c in measurements.columns if c not in CORE_COLUMNS]
    measurements = measurements.with_columns([pl.col(d).fill_null("") for d in dims])
    return KpiSource(catalogue, measurements, tuple(names[1:]), version)
