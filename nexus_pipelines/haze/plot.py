"""Pictures of a HAZE map with matplotlib: the pipeline's PNG, and ``plot_snapshot`` for notebooks.

Here, not in ``nexus_query``: drawing needs matplotlib, which the light reader does not depend on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from nexus_pipelines.pictures import figure_png
from nexus_query.errors import InvalidRequest
from nexus_query.haze import ClusterSummary, HazeSnapshot

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ColorBy = Literal["cluster", "type"]
TYPE_COLORS = {"text": "#1f77b4", "image": "#ff7f0e", "kpi": "#2ca02c"}
NOISE_COLOR = "#c7c7c7"


def cluster_colors(clusters: Iterable[Any]) -> dict[int, str]:
    """A stable colour per cluster id, grey for points in no cluster: tab10's strong colours for the ten
    largest clusters, then their light variants (cycling)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(colormaps["tab10"](i)) for i in range(10)] + \
              [to_hex(colormaps["tab20"](2 * i + 1)) for i in range(10)]
    return {-1: NOISE_COLOR, **{int(c): palette[int(c) % len(palette)] for c in clusters if int(c) >= 0}}


def plot_points(points: pa.Table, *, clusters: Sequence[ClusterSummary] | None = None, color_by: str = "cluster",
                ax: Axes | None = None, title: str | None = None, max_labels: int = 25,
                point_size: float | None = None) -> Axes:
    """Scatter the points coloured by ``cluster`` or ``type``, with each large cluster's label at its
    centre. Used by notebooks (``ax=None`` makes a pyplot figure) and by the pipeline's PNG."""
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
        colors: Any = np.array([palette[int(c)] for c in ids[order]]) if n else []
        ax.scatter(x[order], y[order], s=size, c=colors, linewidths=0, alpha=0.8, rasterized=True)
    else:
        kinds = np.array(points.column("type").to_pylist())
        for kind in sorted(set(kinds.tolist())):
            mask = kinds == kind
            ax.scatter(x[mask], y[mask], s=size, c=TYPE_COLORS.get(kind, "#7f7f7f"), linewidths=0,
                       alpha=0.8, label=kind, rasterized=True)
        if n:
            ax.legend(loc="best", markerscale=max(1.0, 6 / max(size, 0.1)), frameon=False)
    for cluster in sorted(clusters or [], key=lambda c: -c.size)[:max_labels]:
        ax.annotate(cluster.label or f"cluster {cluster.cluster}", (cluster.x, cluster.y),
                    ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_snapshot(snapshot: HazeSnapshot, color_by: ColorBy = "cluster", ax: Axes | None = None,
                  **kwargs: Any) -> Axes:
    """A stored map in one call, titled with its space, method and snapshot id."""
    title = kwargs.pop("title", f"{snapshot.space_id} · {snapshot.info.method} · {snapshot.snapshot_id}")
    return plot_points(snapshot.to_arrow(), clusters=snapshot.clusters, color_by=color_by, ax=ax, title=title,
                       **kwargs)


def render_png(points: pa.Table, clusters: Sequence[ClusterSummary], title: str) -> bytes:
    """The labelled map as a PNG, drawn without pyplot (no display or global state needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 7), dpi=100)
    FigureCanvasAgg(figure)
    plot_points(points, clusters=clusters, ax=figure.add_subplot(), title=title)
    return figure_png(figure)
