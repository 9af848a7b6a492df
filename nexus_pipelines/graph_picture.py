"""A picture of the code location's asset graph, drawn from the definitions themselves (the README shows it):
one box per asset, in columns by depth, coloured by group, an arrow per dependency.

    .venv/bin/python -m nexus_pipelines.graph_picture docs/images/asset-graph.png
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import dagster as dg

from nexus_pipelines.pictures import figure_png


def asset_layers(defs: dg.Definitions) -> tuple[dict[str, int], list[tuple[str, str]], dict[str, str]]:
    """Each asset's column (its longest path from a root), the dependency edges, and each asset's group."""
    graph = defs.resolve_asset_graph()
    names = {key: key.to_user_string() for key in graph.get_all_asset_keys()}
    edges = [(names[parent], names[key]) for key in names for parent in graph.get(key).parent_keys
             if parent in names]
    parents: dict[str, list[str]] = defaultdict(list)
    for parent, child in edges:
        parents[child].append(parent)
    depth: dict[str, int] = {}

    def column(name: str) -> int:
        if name not in depth:
            depth[name] = 0  # a cycle cannot occur in an asset graph; this only stops re-entry
            depth[name] = max((column(p) + 1 for p in parents[name]), default=0)
        return depth[name]

    for name in names.values():
        column(name)
    groups = {names[key]: graph.get(key).group_name or "default" for key in names}
    return depth, edges, groups


def asset_graph_png(defs: dg.Definitions) -> bytes:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    depth, edges, groups = asset_layers(defs)
    columns: dict[int, list[str]] = defaultdict(list)
    for name in sorted(depth, key=lambda n: (groups[n], n)):
        columns[depth[name]].append(name)
    rows = max(len(c) for c in columns.values())
    position = {name: (x * 3.2, (rows - 1) / 2 - y) for x, names in columns.items() for y, name in enumerate(names)}
    palette = {g: colormaps["Pastel1"](i % 9) for i, g in enumerate(sorted(set(groups.values())))}
    figure = Figure(figsize=(2.4 * len(columns) + 1, 0.7 * rows + 1.2))
    ax = figure.add_subplot()
    for parent, child in edges:
        (x0, y0), (x1, y1) = position[parent], position[child]
        ax.annotate("", xy=(x1 - 1.05, y1), xytext=(x0 + 1.05, y0),
                    arrowprops={"arrowstyle": "->", "color": "#888", "lw": 0.8})
    for name, (x, y) in position.items():
        ax.text(x, y, name, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": palette[groups[name]], "edgecolor": "#666"})
    for i, (group, colour) in enumerate(palette.items()):
        ax.text(-1.2 + i * 1.6, rows / 2 + 0.5, group, fontsize=8, ha="left", va="center",
                bbox={"boxstyle": "round,pad=0.3", "facecolor": colour, "edgecolor": "none"})
    ax.set_xlim(-1.4, 3.2 * (len(columns) - 1) + 1.4)
    ax.set_ylim(-rows / 2 - 0.2, rows / 2 + 0.9)
    ax.axis("off")
    return figure_png(figure)


if __name__ == "__main__":
    from nexus_pipelines.definitions import defs

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "asset-graph.png")
    out.write_bytes(asset_graph_png(defs))
    print(out)
