"""What a HAZE snapshot records about itself (its ``snapshot.json``), as typed values.

The pipeline writes a ``SnapshotInfo`` when it commits a snapshot and every reader (notebook, API, the
next pipeline run) reads one back, so the file has one schema on both sides instead of a dict read by key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SnapshotCounts:
    """How the snapshot's points came about: ``fitted`` by this run's fit, ``kept`` unchanged since the
    previous snapshot, ``placed`` new to the map (placed into an existing reducer's map)."""

    rows: int
    anchors: int = 0
    fitted: int = 0
    kept: int = 0
    placed: int = 0
    clusters: int = 0
    unclustered: int = 0
    html_points: int = 0


@dataclass(frozen=True)
class ClusterSummary:
    """One labelled region: its keywords (the first three make the label), size and median position."""

    cluster: int
    label: str
    keywords: list[str]
    size: int
    x: float
    y: float


@dataclass(frozen=True)
class Bounds:
    x: tuple[float, float]
    y: tuple[float, float]


@dataclass(frozen=True)
class SnapshotInfo:
    """One committed snapshot: how it was made (method, parameters, table version, reducer), what it holds
    (counts, bounds, clusters, files) and how long each step took (``timings``, seconds)."""

    snapshot_id: str
    space_id: str
    created_at: str
    method: str
    params: dict[str, Any]
    table_version: int
    embedder: str | None
    reducer_id: str
    refit: bool
    refit_reason: str | None
    counts: SnapshotCounts
    bounds: Bounds
    cluster_method: str
    clusters: list[ClusterSummary]
    files: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``snapshot.json`` document (bounds as ``[min, max]`` lists)."""
        data = asdict(self)
        data["bounds"] = {axis: list(span) for axis, span in data["bounds"].items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotInfo:
        bounds = data["bounds"]
        return cls(**{
            **data,
            "counts": SnapshotCounts(**data["counts"]),
            "bounds": Bounds(x=_span(bounds["x"]), y=_span(bounds["y"])),
            "clusters": [ClusterSummary(**c) for c in data.get("clusters", [])],
            "timings": data.get("timings", {}),
        })


def _span(values: list[float]) -> tuple[float, float]:
    low, high = values
    return float(low), float(high)
