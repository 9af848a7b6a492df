"""Intermediate asset data as Parquet in the space owner's own store (fsspec: local now, S3 in
production), never pickles, and streamed: a step writes batch by batch and the next one reads a lazy
``pyarrow.dataset``, so no step needs a whole partition in memory.

Where: ``{nexus_blob_store}/{tenant}/{project}/pipelines/{asset}/{space}.parquet`` (the global space
under ``_global/shared/``).
"""

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from nexus_pipelines.resources import NexusResource
from nexus_query.paths import TenantFiles

FOLDER = "pipelines"


@dataclass
class ArrowStream:
    """An asset's output, written batch by batch. ``metadata`` is asked for once every batch has been
    written, so counts gathered while streaming land on the materialization."""

    schema: pa.Schema
    batches: Iterable[pa.RecordBatch]
    metadata: Callable[[], Mapping[str, Any]] = field(default=dict)


def write_parquet(files: TenantFiles, stream: ArrowStream, *parts: str) -> int:
    """Write ``stream`` to ``parts`` so readers see the old file or the whole new one; returns rows.

    The data goes to a hidden temporary first, moved into place only once complete: a writer that
    fails half-way (on S3 an upload is published when its file object closes, error or not) leaves
    nothing a reader could take for the asset."""
    target = files.path(*parts)
    folder, name = target.rsplit("/", 1)
    temporary = f"{folder}/.{uuid.uuid4().hex}.{name}"
    files.fs.makedirs(folder, exist_ok=True)
    rows = 0
    try:
        with files.fs.open(temporary, "wb") as sink, pq.ParquetWriter(sink, stream.schema) as writer:
            for batch in stream.batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        files.fs.mv(temporary, target)
    except BaseException:
        if files.fs.exists(temporary):
            files.fs.rm(temporary)
        raise
    return rows


def read_parquet(files: TenantFiles, *parts: str) -> ds.Dataset:
    return ds.dataset(files.path(*parts), filesystem=files.fs, format="parquet")


def output_parts(asset_path: Sequence[str], space_id: str) -> tuple[str, ...]:
    return (FOLDER, *asset_path, f"{space_id}.parquet")


def previous_output(files: TenantFiles, asset_path: Sequence[str], space_id: str) -> ds.Dataset | None:
    """What the asset last stored for this space (an asset may reuse its own earlier work); still
    readable while the new output is written, which replaces it only once complete."""
    parts = output_parts(asset_path, space_id)
    return read_parquet(files, *parts) if files.exists(*parts) else None


class SpaceParquetIOManager(dg.ConfigurableIOManager):
    """Stores each partition of an asset as one Parquet file in that space owner's blob store."""

    nexus: NexusResource

    def _location(self, context: dg.OutputContext | dg.InputContext) -> tuple[TenantFiles, tuple[str, ...]]:
        key = self.nexus.space_key(context.asset_partition_key)
        return self.nexus.files(key), output_parts(context.asset_key.path, key.space_id)

    def handle_output(self, context: dg.OutputContext, obj: ArrowStream | pa.Table) -> None:
        if isinstance(obj, pa.Table):
            obj = ArrowStream(obj.schema, obj.to_batches())
        files, parts = self._location(context)
        rows = write_parquet(files, obj, *parts)
        context.add_output_metadata({"dagster/row_count": rows, "path": files.url(*parts), **obj.metadata()})

    def load_input(self, context: dg.InputContext) -> ds.Dataset:
        files, parts = self._location(context)
        return read_parquet(files, *parts)
