"""Reading HAZE maps: one tenant's projection store, a stored snapshot, its points streamed from Parquet.

Read only: the pipeline (``nexus_pipelines.haze``) writes snapshots and reducers and draws the pictures;
``nexus_query.haze.requests`` queues re-projections. The layout is described in ``nexus_query.haze``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidRequest, NotFound
from nexus_query.haze.info import ClusterSummary, SnapshotInfo
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry

Method = Literal["umap", "tsne"]
METHODS: tuple[Method, ...] = ("umap", "tsne")
TEXT_PREVIEW_CHARS = 2_000  # what the map keeps of each row's text: a whole chunk (the chunker's limit is below)
POINTS_SCHEMA = pa.schema([
    pa.field("id", pa.utf8(), nullable=False),
    pa.field("x", pa.float32(), nullable=False),
    pa.field("y", pa.float32(), nullable=False),
    pa.field("cluster", pa.int32(), nullable=False),  # -1: not in any cluster
    pa.field("label", pa.utf8(), nullable=False),     # the cluster's keywords, "" for -1
    pa.field("type", pa.utf8(), nullable=False),
    pa.field("source", pa.utf8(), nullable=False),
    pa.field("text", pa.utf8(), nullable=False),      # the first TEXT_PREVIEW_CHARS characters
    pa.field("content_hash", pa.utf8(), nullable=False),  # lets the next snapshot keep unchanged points in place
])
POINT_COLUMNS = ("id", "x", "y", "cluster", "label", "type", "source", "text")


class HazeSnapshotNotFound(NotFound):
    code = "nexus.haze_snapshot_not_found"


class HazeStore:
    """One tenant's HAZE files. Built from a context, so it only ever sees that tenant's area."""

    def __init__(self, files: TenantFiles) -> None:
        self.files = files

    @classmethod
    def for_context(cls, ctx: RequestContext, registry: RoutingRegistry | None = None) -> HazeStore:
        registry = registry or RoutingRegistry.default()
        return cls(TenantFiles.for_tenant(registry.projection_route(ctx), ctx))

    @staticmethod
    def snapshot_parts(space_id: str, snapshot_id: str, name: str) -> tuple[str, ...]:
        return ("haze", validate_id(space_id, "space_id"), "snapshots", validate_id(snapshot_id, "snapshot"), name)

    @staticmethod
    def reducer_parts(space_id: str, reducer_id: str, name: str) -> tuple[str, ...]:
        return ("haze", validate_id(space_id, "space_id"), "reducers", validate_id(reducer_id, "reducer"), name)

    def latest_snapshot_id(self, space_id: str) -> str | None:
        parts = ("haze", validate_id(space_id, "space_id"), "latest.json")
        if not self.files.exists(*parts):
            return None
        return str(json.loads(self.files.read_bytes(*parts))["snapshot_id"])

    def snapshot_ids(self, space_id: str) -> list[str]:
        """Complete snapshots (those with a ``snapshot.json``), oldest first."""
        prefix = f"haze/{validate_id(space_id, 'space_id')}/snapshots/"
        return sorted(p[len(prefix):].split("/")[0] for p in self.files.list("haze", space_id, "snapshots")
                      if p.startswith(prefix) and p.endswith("/snapshot.json"))

    def resolve(self, space_id: str, snapshot_id: str | None = None) -> str:
        """The requested snapshot (or the latest); ``HazeSnapshotNotFound`` when there is none."""
        validate_id(space_id, "space_id")
        if snapshot_id is None:
            found = self.latest_snapshot_id(space_id)
            if found is None:
                raise HazeSnapshotNotFound(f"space {space_id!r} has no HAZE snapshot yet; "
                                           f"request one with POST /nexus/spaces/{space_id}/haze/snapshot",
                                           space_id=space_id)
            return found
        try:
            validate_id(snapshot_id, "snapshot")
        except InvalidRequest:
            raise HazeSnapshotNotFound("no such HAZE snapshot", space_id=space_id,
                                       snapshot=str(snapshot_id)[:80]) from None
        if not self.files.exists(*self.snapshot_parts(space_id, snapshot_id, "snapshot.json")):
            raise HazeSnapshotNotFound("no such HAZE snapshot", space_id=space_id, snapshot=snapshot_id)
        return snapshot_id

    def snapshot_info(self, space_id: str, snapshot_id: str | None = None) -> SnapshotInfo:
        return self.open(space_id, snapshot_id).info

    def open(self, space_id: str, snapshot_id: str | None = None) -> HazeSnapshot:
        snapshot_id = self.resolve(space_id, snapshot_id)
        return HazeSnapshot(self, space_id, snapshot_id)


@dataclass
class HazeSnapshot:
    """One stored map. Reads stream from Parquet, so a large map is never loaded whole unless asked.
    To draw it: ``nexus_pipelines.haze.plot.plot_snapshot`` (matplotlib is no dependency of the reader)."""

    store: HazeStore
    space_id: str
    snapshot_id: str

    @cached_property
    def info(self) -> SnapshotInfo:
        return SnapshotInfo.from_json(json.loads(self.store.files.read_bytes(*self._parts("snapshot.json"))))

    @property
    def clusters(self) -> list[ClusterSummary]:
        return list(self.info.clusters)

    def _parts(self, name: str) -> tuple[str, ...]:
        return self.store.snapshot_parts(self.space_id, self.snapshot_id, name)

    def url(self, name: str = "map.html") -> str:
        """Where a file of the snapshot lives (``map.html``, ``map.png``, ``points.parquet``)."""
        return self.store.files.url(*self._parts(name))

    def iter_batches(self, batch_size: int = 4096, columns: tuple[str, ...] = POINT_COLUMNS
                     ) -> Iterator[pa.RecordBatch]:
        with self.store.files.fs.open(self.store.files.path(*self._parts("points.parquet")), "rb") as fh:
            yield from pq.ParquetFile(fh).iter_batches(batch_size=batch_size, columns=list(columns))

    def iter_ndjson(self, batch_size: int = 4096) -> Iterator[bytes]:
        """One JSON object per point and line; memory stays at one batch whatever the map's size."""
        for batch in self.iter_batches(batch_size):
            rounded = batch
            for name in ("x", "y"):
                index = rounded.schema.get_field_index(name)
                rounded = rounded.set_column(index, name, pc.round(rounded.column(index).cast(pa.float64()), 5))
            yield "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
                          for row in rounded.to_pylist()).encode("utf-8")

    def to_arrow(self, columns: tuple[str, ...] = POINT_COLUMNS) -> pa.Table:
        with self.store.files.fs.open(self.store.files.path(*self._parts("points.parquet")), "rb") as fh:
            return pq.read_table(fh, columns=list(columns))

    def to_polars(self, columns: tuple[str, ...] = POINT_COLUMNS) -> Any:
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns))

    def to_pandas(self, columns: tuple[str, ...] = POINT_COLUMNS) -> Any:
        return self.to_arrow(columns).to_pandas()

    def png(self) -> bytes:
        return self.store.files.read_bytes(*self._parts("map.png"))

    def html(self) -> bytes:
        """The interactive map: one self-contained HTML page (no network)."""
        return self.store.files.read_bytes(*self._parts("map.html"))


def open_snapshot(ctx: RequestContext, space_id: str, snapshot_id: str | None = None,
                  registry: RoutingRegistry | None = None) -> HazeSnapshot:
    return HazeStore.for_context(ctx, registry).open(space_id, snapshot_id)
