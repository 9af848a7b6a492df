"""HAZE: 2-D maps of a space. The projection store's layout, its readers, and re-projection requests.

Layout inside the tenant's ``nexus_projection_store`` area (``{bucket}/{prefix}/{tenant}/{project}/``):

    haze/{space_id}/latest.json                            pointer to the newest complete snapshot
    haze/{space_id}/snapshots/{snapshot_id}/points.parquet id, x, y, cluster, label, type, source, text, content_hash
    haze/{space_id}/snapshots/{snapshot_id}/snapshot.json  method, params, table version, counts, timings, clusters
    haze/{space_id}/snapshots/{snapshot_id}/map.png        the labelled map
    haze/{space_id}/snapshots/{snapshot_id}/map.html       a self-contained interactive map
    haze/{space_id}/reducers/{reducer_id}/...              the fitted reducer in open formats (nexus_pipelines.haze)
    haze/{space_id}/requests/{task_id}.json                re-projection requests waiting for the pipeline

A snapshot's files are written before its ``snapshot.json``, and ``latest.json`` last, so a reader never
sees a pointer to a half-written snapshot. The heavy work (UMAP, clustering, pictures) lives in
``nexus_pipelines.haze``; this module only reads and writes files, so ``nexus_query`` stays light.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidRequest, NotFound, SpaceNotFound
from nexus_query.landing import GLOBAL_SPACE_ID, Task, landing_zone, now_iso
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore

if TYPE_CHECKING:
    from matplotlib.axes import Axes

METHODS = ("umap", "tsne")
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
TYPE_COLORS = {"text": "#1f77b4", "image": "#ff7f0e", "kpi": "#2ca02c"}
NOISE_COLOR = "#c7c7c7"
SNAPSHOT_TASK_KIND = "haze_snapshot"


class HazeSnapshotNotFound(NotFound):
    code = "nexus.haze_snapshot_not_found"


def new_snapshot_id(table_version: int, created_at: str) -> str:
    """Sortable by time (to the millisecond) and a valid id: ``20260109-101500123-v12-3fa2c1``."""
    stamp = created_at[:23].replace("-", "").replace(":", "").replace(".", "").replace("T", "-")
    return f"{stamp}-v{table_version}-{uuid.uuid4().hex[:6]}"


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="zstd")
    return sink.getvalue().to_pybytes()


class HazeStore:
    """One tenant's HAZE files. Built from a context, so it only ever sees that tenant's area."""

    def __init__(self, files: TenantFiles) -> None:
        self.files = files

    @classmethod
    def for_context(cls, ctx: RequestContext, registry: RoutingRegistry | None = None) -> HazeStore:
        registry = registry or RoutingRegistry.default()
        return cls(TenantFiles.for_tenant(registry.projection_route(ctx), ctx))

    # -- snapshots -------------------------------------------------------------------------------
    @staticmethod
    def snapshot_parts(space_id: str, snapshot_id: str, name: str) -> tuple[str, ...]:
        return ("haze", validate_id(space_id, "space_id"), "snapshots", validate_id(snapshot_id, "snapshot"), name)

    def latest_snapshot_id(self, space_id: str) -> str | None:
        parts = ("haze", validate_id(space_id, "space_id"), "latest.json")
        if not self.files.exists(*parts):
            return None
        return json.loads(self.files.read_bytes(*parts))["snapshot_id"]

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

    def snapshot_info(self, space_id: str, snapshot_id: str | None = None) -> dict[str, Any]:
        snapshot_id = self.resolve(space_id, snapshot_id)
        return json.loads(self.files.read_bytes(*self.snapshot_parts(space_id, snapshot_id, "snapshot.json")))

    def open(self, space_id: str, snapshot_id: str | None = None) -> HazeSnapshot:
        snapshot_id = self.resolve(space_id, snapshot_id)
        return HazeSnapshot(self, space_id, snapshot_id)

    def write_snapshot_files(self, space_id: str, snapshot_id: str, points: pa.Table,
                             extra_files: Mapping[str, bytes] | None = None) -> None:
        """The points (and pictures) of a snapshot that is not visible yet."""
        points = points.select(POINTS_SCHEMA.names).cast(POINTS_SCHEMA)
        self.files.write_bytes_atomic(parquet_bytes(points, row_group_size=16_384),
                                      *self.snapshot_parts(space_id, snapshot_id, "points.parquet"))
        for name, data in (extra_files or {}).items():
            self.files.write_bytes_atomic(data, *self.snapshot_parts(space_id, snapshot_id, name))

    def commit_snapshot(self, space_id: str, info: Mapping[str, Any]) -> str:
        """Make a snapshot whose files are written complete, and the latest."""
        snapshot_id = info["snapshot_id"]
        self.files.write_bytes_atomic(json.dumps(info, indent=1).encode(),
                                      *self.snapshot_parts(space_id, snapshot_id, "snapshot.json"))
        pointer = {"snapshot_id": snapshot_id, "table_version": info.get("table_version"),
                   "created_at": info.get("created_at")}
        self.files.write_bytes_atomic(json.dumps(pointer).encode(), "haze", space_id, "latest.json")
        return snapshot_id

    def prune(self, space_id: str, keep: int) -> list[str]:
        """Remove all but the newest ``keep`` complete snapshots (never the latest) and the reducers none of
        the kept ones uses; returns the removed snapshot ids. Runs of one tenant never overlap (dagster.yaml),
        so nothing being written is removed."""
        snapshots = self.snapshot_ids(space_id)
        kept = set(snapshots[-max(keep, 1):]) | {self.latest_snapshot_id(space_id)}
        removed = [s for s in snapshots if s not in kept]
        for snapshot_id in removed:
            self.files.fs.rm(self.files.path("haze", space_id, "snapshots", snapshot_id), recursive=True)
        used = {self.snapshot_info(space_id, s).get("reducer_id") for s in kept if s}
        prefix = f"haze/{space_id}/reducers/"
        for reducer_id in {p[len(prefix):].split("/")[0] for p in self.files.list("haze", space_id, "reducers")}:
            if reducer_id not in used:
                self.files.fs.rm(self.files.path("haze", space_id, "reducers", reducer_id), recursive=True)
        return removed

    @staticmethod
    def reducer_parts(space_id: str, reducer_id: str, name: str) -> tuple[str, ...]:
        return ("haze", validate_id(space_id, "space_id"), "reducers", validate_id(reducer_id, "reducer"), name)

    # -- re-projection requests -----------------------------------------------------------------
    def request_snapshot(self, ctx: RequestContext, space_id: str, *, refit: bool = False,
                         method: str | None = None, registry: RoutingRegistry | None = None) -> Task:
        """Queue a re-projection: a task record (read by ``GET /nexus/tasks/{id}``) and a request file
        that the pipeline's sensor turns into a run."""
        validate_id(space_id, "space_id")
        if space_id == GLOBAL_SPACE_ID:
            raise InvalidRequest("the global space is projected by system jobs, not on request", field="space_id")
        if method is not None and method not in METHODS:
            raise InvalidRequest(f"method must be one of {METHODS}", field="method")
        if not isinstance(refit, bool):
            raise InvalidRequest("refit must be true or false", field="refit")
        if not SpaceStore(registry).exists(ctx, space_id):
            raise SpaceNotFound(f"space {space_id!r} does not exist yet", space_id=space_id)
        stamp = now_iso()
        task = Task(task_id=uuid.uuid4().hex, space_id=space_id, status="queued", created_at=stamp,
                    updated_at=stamp, kind=SNAPSHOT_TASK_KIND)
        landing_zone(ctx, registry).write_task(task)  # first: a request the sensor sees always has its task
        body = {"task_id": task.task_id, "space_id": space_id, "refit": refit, "method": method,
                "requested_at": stamp}
        self.files.write_bytes_atomic(json.dumps(body).encode(), "haze", space_id, "requests",
                                      f"{task.task_id}.json")
        return task

    def pending_requests(self) -> list[dict[str, Any]]:
        """Every waiting request of this tenant's spaces, oldest first."""
        found = []
        for rel in self.files.list("haze"):
            parts = rel.split("/")
            if len(parts) == 4 and parts[2] == "requests" and parts[3].endswith(".json"):
                found.append(json.loads(self.files.read_bytes(*parts)))
        return sorted(found, key=lambda r: r["requested_at"])

    def finish_request(self, space_id: str, task_id: str) -> None:
        """Remove a handled request (its task record keeps the outcome)."""
        parts = ("haze", validate_id(space_id, "space_id"), "requests", f"{validate_id(task_id, 'task_id')}.json")
        if self.files.exists(*parts):
            self.files.fs.rm_file(self.files.path(*parts))


@dataclass
class HazeSnapshot:
    """One stored map. Reads stream from Parquet, so a large map is never loaded whole unless asked."""

    store: HazeStore
    space_id: str
    snapshot_id: str

    @cached_property
    def info(self) -> dict[str, Any]:
        return json.loads(self.store.files.read_bytes(*self._parts("snapshot.json")))

    @property
    def clusters(self) -> list[dict[str, Any]]:
        return list(self.info.get("clusters", []))

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

    def to_polars(self, columns: tuple[str, ...] = POINT_COLUMNS):
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns))

    def to_pandas(self, columns: tuple[str, ...] = POINT_COLUMNS):
        return self.to_arrow(columns).to_pandas()

    def png(self) -> bytes:
        return self.store.files.read_bytes(*self._parts("map.png"))

    def html(self) -> bytes:
        """The interactive map: one self-contained HTML page (no network)."""
        return self.store.files.read_bytes(*self._parts("map.html"))

    def plot(self, color_by: str = "cluster", ax: Axes | None = None, **kwargs: Any) -> Axes:
        """The map in one call (matplotlib, imported only here)."""
        title = kwargs.pop("title", f"{self.space_id} · {self.info.get('method', '')} · {self.snapshot_id}")
        return plot_points(self.to_arrow(), clusters=self.clusters, color_by=color_by, ax=ax, title=title,
                           **kwargs)


def open_snapshot(ctx: RequestContext, space_id: str, snapshot_id: str | None = None,
                  registry: RoutingRegistry | None = None) -> HazeSnapshot:
    return HazeStore.for_context(ctx, registry).open(space_id, snapshot_id)


def cluster_colors(clusters: Any) -> dict[int, str]:
    """A stable colour per cluster id, grey for points in no cluster: tab10's strong colours for the ten
    largest clusters, then their light variants (cycling)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(colormaps["tab10"](i)) for i in range(10)] + \
              [to_hex(colormaps["tab20"](2 * i + 1)) for i in range(10)]
    return {-1: NOISE_COLOR, **{int(c): palette[int(c) % len(palette)] for c in clusters if int(c) >= 0}}


def plot_points(points: pa.Table, *, clusters: list[Mapping[str, Any]] | None = None, color_by: str = "cluster",
                ax: Axes | None = None, title: str | None = None, max_labels: int = 25,
                point_size: float | None = None) -> Axes:
    """Scatter the points coloured by ``cluster`` or ``type``, with each large cluster's label at its
    centre. Used by notebooks (``ax=None`` makes a pyplot figure) and by the pipeline's PNG."""
    import numpy as np

    if color_by not in ("cluster", "type"):
        raise InvalidRequest("color_by must be 'cluster' or 'type'", field="color_by")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 8))
    x = points.column("x").to_numpy()
    y = points.column("y").to_numpy()
    n = len(x)
    size = point_size if point_size is not None else float(np.clip(3000 / max(n, 1), 0.3, 12))
    if color_by == "cluster":
        ids = points.column("cluster").to_numpy()
        palette = cluster_colors(np.unique(ids))
        order = np.argsort(ids >= 0, kind="stable")  # unclustered points first, underneath
        colors = np.array([palette[int(c)] for c in ids[order]]) if n else []
        ax.scatter(x[order], y[order], s=size, c=colors, linewidths=0, alpha=0.8, rasterized=True)
    else:
        kinds = np.array(points.column("type").to_pylist())
        for kind in sorted(set(kinds.tolist())):
            mask = kinds == kind
            ax.scatter(x[mask], y[mask], s=size, c=TYPE_COLORS.get(kind, "#7f7f7f"), linewidths=0,
                       alpha=0.8, label=kind, rasterized=True)
        if n:
            ax.legend(loc="best", markerscale=max(1.0, 6 / max(size, 0.1)), frameon=False)
    for cluster in sorted(clusters or [], key=lambda c: -c["size"])[:max_labels]:
        ax.annotate(cluster["label"] or f"cluster {cluster['cluster']}", (cluster["x"], cluster["y"]),
                    ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
