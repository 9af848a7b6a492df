"""One HAZE snapshot of a space: read its vectors at one table version, fit or reuse the reducer, place
what is new, cluster, label, draw, and store. Plain functions; the Dagster asset is a thin wrapper.

Memory stays bounded for large spaces: the fit sees at most ``sample_size`` vectors (a seeded sample,
chosen by hashing ids so that it does not depend on storage order), and everything else is read and
placed ``batch_size`` rows at a time. What is held for the whole space is only each row's id, type,
source, text preview and coordinates.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nexus_pipelines.haze.clusters import cluster_keywords, cluster_label, cluster_points
from nexus_pipelines.haze.html_map import render_html
from nexus_pipelines.haze.plot import render_png
from nexus_pipelines.haze.reducer import ProjectionParams, Reducer, fit_reducer
from nexus_pipelines.haze.writer import commit_snapshot, new_snapshot_id, prune, write_snapshot_files
from nexus_query.haze import TEXT_PREVIEW_CHARS, Bounds, ClusterSummary, HazeStore, SnapshotCounts, SnapshotInfo
from nexus_query.landing import now_iso
from nexus_query.store import SpaceTable

Log = Callable[[str], None]


@dataclass(frozen=True)
class ProjectionResult:
    table_version: int
    counts: SnapshotCounts
    info: SnapshotInfo | None  # None: the space is empty, so there is no map
    created: bool              # False when the latest snapshot already showed this table version
    png: bytes = field(default=b"", repr=False)

    @property
    def snapshot_id(self) -> str | None:
        return self.info.snapshot_id if self.info else None


def project_space(space: SpaceTable, haze: HazeStore, space_id: str, params: ProjectionParams | None = None, *,
                  refit: bool = False, log: Log | None = None) -> ProjectionResult:
    """Map ``space`` at its current version into a new snapshot (pinning the table to that version)."""
    params = params or ProjectionParams()
    log = log or (lambda message: None)
    started = time.perf_counter()
    version = space.version
    space.table.checkout(version)  # every read below sees this version, whatever writers do meanwhile
    total = space.count()
    previous = haze.snapshot_info(space_id) if haze.latest_snapshot_id(space_id) else None
    if total == 0:
        log(f"{space_id} is empty at version {version}: no map")
        return ProjectionResult(version, SnapshotCounts(rows=0), None, created=False)
    if previous and not refit and previous.table_version == version and previous.params == params.as_dict():
        log(f"snapshot {previous.snapshot_id} already maps version {version}")
        return ProjectionResult(version, previous.counts, previous, created=False,
                                png=haze.open(space_id, previous.snapshot_id).png())

    created_at = now_iso()
    snapshot_id = new_snapshot_id(version, created_at)
    timings: dict[str, float] = {}
    embedder = space.embedder.id if space.embedder else None
    dimension = space.table.schema.field("vector").type.list_size
    reducer = None if refit or previous is None else Reducer.load(haze, space_id, previous.reducer_id)
    reason = "asked" if refit else "no map yet" if previous is None else "reducer missing"
    if reducer is not None and not reducer.compatible(params, dimension, embedder):
        reducer, reason = None, "parameters or embedder changed"
    if reducer is not None and params.refit_growth and \
            len(reducer.anchor_ids) * params.refit_growth <= min(total, params.sample_size):
        reason = f"space grew from {len(reducer.anchor_ids)} to {total} rows"
        reducer = None

    if reducer is None:
        t = time.perf_counter()
        fraction = min(1.0, params.sample_size / total)
        ids, hashes, vectors = _read_sample(space, fraction, params)
        timings["read_sample"] = time.perf_counter() - t
        log(f"fitting {params.method} on {len(ids)} of {total} rows ({reason})")
        t = time.perf_counter()
        reducer = fit_reducer(ids, hashes, vectors, params, reducer_id=snapshot_id, embedder=embedder)
        del vectors
        reducer.info.update(table_version=version, fitted_at=created_at)
        reducer.save(haze, space_id)
        timings["fit"] = time.perf_counter() - t
        known = _keyed(reducer.anchor_ids, reducer.anchor_hashes, reducer.anchor_xy)
        fitted_everything = fraction >= 1.0
    else:
        log(f"placing new rows into the map of reducer {reducer.reducer_id}")
        assert previous is not None  # a reducer was loaded from it
        kept = haze.open(space_id, previous.snapshot_id).to_arrow(("id", "content_hash", "x", "y"))
        known = _keyed(kept.column("id").to_pylist(), kept.column("content_hash").to_pylist(),
                       np.column_stack([kept.column("x").to_numpy(), kept.column("y").to_numpy()]))
        fitted_everything = False

    t = time.perf_counter()
    place_seconds = 0.0
    columns: dict[str, list[pa.Array]] = {name: [] for name in ("id", "type", "source", "text", "content_hash")}
    coordinates, known_rows = [], 0
    for batch in _batches(space, params.batch_size, with_vectors=not fitted_everything):
        keys = _keys(batch.column("id").to_pylist(), batch.column("content_hash").to_pylist())
        where = known.index.get_indexer(keys)
        xy = np.empty((batch.num_rows, 2), dtype=np.float32)
        hit = where >= 0
        xy[hit] = known.xy[where[hit]]
        known_rows += int(hit.sum())
        if not hit.all():
            p = time.perf_counter()
            xy[~hit] = reducer.place(_vectors(batch.column("vector"), dimension)[~hit])
            place_seconds += time.perf_counter() - p
        coordinates.append(xy)
        for name in columns:
            columns[name].append(batch.column(name))
    xy = np.concatenate(coordinates)
    timings["read"] = time.perf_counter() - t - place_seconds
    timings["place"] = place_seconds
    placed = len(xy) - known_rows
    refitted = reducer.reducer_id == snapshot_id
    if placed:
        log(f"placed {placed} rows into the map")

    t = time.perf_counter()
    labels, cluster_method = cluster_points(xy, method=params.cluster_method, min_cluster_size=params.min_cluster_size,
                            n_clusters=params.n_clusters, seed=params.seed)
    timings["cluster"] = time.perf_counter() - t
    t = time.perf_counter()
    texts = pa.chunked_array(columns["text"], pa.utf8())
    # the tenant's own name (and, in clusters.py, words found all over the space) says nothing about a region
    keywords = cluster_keywords(texts.to_pylist(), labels, top_n=params.keywords, seed=params.seed,
                                exclude={space.owner})
    clusters = _cluster_summaries(xy, labels, keywords)
    label_of = {c.cluster: c.label for c in clusters}
    timings["keywords"] = time.perf_counter() - t

    points = pa.table({
        "id": pa.chunked_array(columns["id"], pa.utf8()),
        "x": pa.array(xy[:, 0], pa.float32()),
        "y": pa.array(xy[:, 1], pa.float32()),
        "cluster": pa.array(labels, pa.int32()),
        "label": pa.array([label_of.get(int(c), "") for c in labels], pa.utf8()),
        "type": pa.chunked_array(columns["type"], pa.utf8()),
        "source": pa.chunked_array(columns["source"], pa.utf8()),
        "text": texts,
        "content_hash": pa.chunked_array(columns["content_hash"], pa.utf8()),
    })
    t = time.perf_counter()
    title = f"{space.owner} / {space_id}"
    subtitle = f"{params.method} · table version {version} · {total:,} points · {len(clusters)} clusters"
    png = render_png(points, clusters, f"{title} · {subtitle}")
    shown = points if total <= params.html_max_points else points.take(
        np.sort(np.random.default_rng(params.seed).choice(total, params.html_max_points, replace=False)))
    page = render_html(shown, clusters, title=title, subtitle=subtitle, total_points=total).encode("utf-8")
    timings["render"] = time.perf_counter() - t

    counts = SnapshotCounts(
        rows=total, anchors=len(reducer.anchor_ids), fitted=known_rows if refitted else 0,
        kept=0 if refitted else known_rows, placed=placed, clusters=len(clusters),
        unclustered=int((labels < 0).sum()), html_points=shown.num_rows)
    t = time.perf_counter()
    write_snapshot_files(haze, space_id, snapshot_id, points, {"map.png": png, "map.html": page})
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    info = SnapshotInfo(
        snapshot_id=snapshot_id, space_id=space_id, created_at=created_at, method=params.method,
        params=params.as_dict(), table_version=version, embedder=embedder, reducer_id=reducer.reducer_id,
        refit=refitted, refit_reason=reason if refitted else None, counts=counts,
        bounds=Bounds(x=(float(xy[:, 0].min()), float(xy[:, 0].max())),
                      y=(float(xy[:, 1].min()), float(xy[:, 1].max()))),
        cluster_method=cluster_method, clusters=clusters,
        files={"points": "points.parquet", "png": "map.png", "html": "map.html"},
        timings={k: round(v, 3) for k, v in timings.items()})
    commit_snapshot(haze, info)
    removed = prune(haze, space_id, params.keep_snapshots)
    if removed:
        log(f"removed {len(removed)} older snapshot(s), keeping the newest {params.keep_snapshots}")
    log(f"snapshot {snapshot_id}: {total} points, {len(clusters)} clusters in {info.timings['total']:.1f}s")
    return ProjectionResult(version, counts, info, created=True, png=png)


@dataclass
class _Known:
    index: pd.Index
    xy: np.ndarray


def _keys(ids: list[str], hashes: list[str]) -> list[str]:
    return [f"{i}\x1f{h}" for i, h in zip(ids, hashes, strict=True)]


def _keyed(ids: list[str], hashes: list[str], xy: np.ndarray) -> _Known:
    """Coordinates by (id, content hash): a row keeps its place only while its content is unchanged."""
    return _Known(pd.Index(_keys(ids, hashes)), np.asarray(xy, dtype=np.float32))


def _batches(space: SpaceTable, batch_size: int, *, with_vectors: bool) -> Iterator[pa.RecordBatch]:
    columns = ["id", "type", "source", "text", "content_hash"] + (["vector"] if with_vectors else [])
    for batch in space.table.search().select(columns).limit(None).to_batches(batch_size):
        text = pc.utf8_slice_codeunits(batch.column("text"), 0, TEXT_PREVIEW_CHARS)
        yield batch.set_column(batch.schema.get_field_index("text"), "text", text)


def _read_sample(space: SpaceTable, fraction: float, params: ProjectionParams
                 ) -> tuple[list[str], list[str], np.ndarray]:
    """The rows the reducer is fitted on: all of them, or those whose seeded id hash falls below ``fraction``."""
    dimension = space.table.schema.field("vector").type.list_size
    ids: list[str] = []
    hashes: list[str] = []
    vectors: list[np.ndarray] = []
    query = space.table.search().select(["id", "content_hash", "vector"]).limit(None)
    for batch in query.to_batches(params.batch_size):
        batch_ids = batch.column("id").to_pylist()
        keep = np.array([in_sample(i, params.seed, fraction) for i in batch_ids], dtype=bool) \
            if fraction < 1.0 else np.ones(len(batch_ids), dtype=bool)
        ids.extend(i for i, k in zip(batch_ids, keep, strict=True) if k)
        hashes.extend(h for h, k in zip(batch.column("content_hash").to_pylist(), keep, strict=True) if k)
        vectors.append(_vectors(batch.column("vector"), dimension)[keep])
    return ids, hashes, np.concatenate(vectors) if vectors else np.zeros((0, dimension), np.float32)


def in_sample(row_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}\x1f{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def _vectors(column: pa.Array, dimension: int) -> np.ndarray:
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension).astype(np.float32, copy=False)


def _cluster_summaries(xy: np.ndarray, labels: np.ndarray, keywords: dict[int, list[str]]
                       ) -> list[ClusterSummary]:
    summaries = []
    for c in sorted(int(c) for c in np.unique(labels) if c >= 0):
        rows = labels == c
        words = keywords.get(c, [])
        summaries.append(ClusterSummary(cluster=c, label=cluster_label(words, c), keywords=words,
                                        size=int(rows.sum()), x=float(np.median(xy[rows, 0])),
                                        y=float(np.median(xy[rows, 1]))))
    return summaries
