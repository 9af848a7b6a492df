"""HAZE: 2-D maps of a space. The projection store's layout, its readers, and re-projection requests.

Layout inside the tenant's ``nexus_projection_store`` area (``{bucket}/{prefix}/{tenant}/{project}/``):

    haze/{space_id}/latest.json                            pointer to the newest complete snapshot
    haze/{space_id}/snapshots/{snapshot_id}/points.parquet id, x, y, cluster, label, type, source, text, content_hash
    haze/{space_id}/snapshots/{snapshot_id}/snapshot.json  method, params, table version, counts, timings, clusters
    haze/{space_id}/snapshots/{snapshot_id}/map.png        the labelled map
    haze/{space_id}/snapshots/{snapshot_id}/map.html       a self-contained interactive map
    haze/{space_id}/reducers/{reducer_id}/...              the fitted reducer in open formats (nexus_pipelines.haze)
    haze/{space_id}/requests/{task_id}.json                re-projection requests waiting for the pipeline

``read`` reads maps, ``info`` types ``snapshot.json``, ``requests`` queues re-projections. Everything that
makes a map (UMAP, clustering, pictures, writing snapshots) lives in ``nexus_pipelines.haze``, so
``nexus_query`` stays light: no matplotlib, no umap-learn.
"""

from nexus_query.haze.info import Bounds, ClusterSummary, SnapshotCounts, SnapshotInfo
from nexus_query.haze.read import (
    METHODS,
    POINT_COLUMNS,
    POINTS_SCHEMA,
    TEXT_PREVIEW_CHARS,
    HazeSnapshot,
    HazeSnapshotNotFound,
    HazeStore,
    Method,
    open_snapshot,
)
from nexus_query.haze.requests import (
    SNAPSHOT_TASK_KIND,
    ReprojectionRequest,
    finish_request,
    pending_requests,
    read_request,
    request_snapshot,
)

__all__ = [
    "METHODS", "POINTS_SCHEMA", "POINT_COLUMNS", "SNAPSHOT_TASK_KIND", "TEXT_PREVIEW_CHARS", "Bounds",
    "ClusterSummary", "HazeSnapshot", "HazeSnapshotNotFound", "HazeStore", "Method", "ReprojectionRequest",
    "SnapshotCounts", "SnapshotInfo", "finish_request", "open_snapshot", "pending_requests", "read_request",
    "request_snapshot",
]
