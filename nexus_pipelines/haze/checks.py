"""Checks on ``haze_projection``, read back from the stores, never from what the projection reported: the
latest snapshot holds a point for every row of the table version it maps, and every file of it opens."""

from __future__ import annotations

import dagster as dg

from nexus_pipelines.partitions import tenant_spaces
from nexus_query.haze import HazeStore
from nexus_query.store import SpaceTable

POINTS_CHECK = "points_match_rows"
READABLE_CHECK = "snapshot_readable"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_specs() -> list[dg.AssetCheckSpec]:
    """Partitioned like the asset: each result belongs to the space whose map it checked."""
    return [
        dg.AssetCheckSpec(POINTS_CHECK, asset="haze_projection", partitions_def=tenant_spaces,
                          description="the latest map has one point per row of the table version it maps"),
        dg.AssetCheckSpec(READABLE_CHECK, asset="haze_projection", partitions_def=tenant_spaces,
                          description="the latest snapshot's description, points, picture and HTML map open"),
    ]


def inspect_snapshot(space: SpaceTable, haze: HazeStore, space_id: str) -> list[dg.AssetCheckResult]:
    latest = haze.latest_snapshot_id(space_id)
    if latest is None:  # an empty space has no map; a space with rows must have one
        rows = space.count()
        return [dg.AssetCheckResult(check_name=POINTS_CHECK, passed=rows == 0, metadata={"rows": rows}),
                dg.AssetCheckResult(check_name=READABLE_CHECK, passed=rows == 0, metadata={"snapshot": "none"})]
    snapshot = haze.open(space_id, latest)
    problems = []
    try:
        version = snapshot.info.table_version
        ids = snapshot.to_arrow(("id",)).column("id")
        png_ok, html_ok = snapshot.png().startswith(PNG_MAGIC), b'id="haze-data"' in snapshot.html()
    except Exception as exc:  # the check reports a broken file, it does not fail the run
        return [dg.AssetCheckResult(check_name=POINTS_CHECK, passed=False, metadata={"error": str(exc)[:500]}),
                dg.AssetCheckResult(check_name=READABLE_CHECK, passed=False, metadata={"error": str(exc)[:500]})]
    if not png_ok:
        problems.append("map.png is not a PNG")
    if not html_ok:
        problems.append("map.html holds no map data")
    space.table.checkout(version)
    rows = space.count()
    distinct = len(set(ids.to_pylist()))
    return [
        dg.AssetCheckResult(check_name=POINTS_CHECK, passed=len(ids) == distinct == rows,
                            metadata={"points": len(ids), "distinct_ids": distinct, "rows": rows,
                                      "table_version": version}),
        dg.AssetCheckResult(check_name=READABLE_CHECK, passed=not problems,
                            metadata={"snapshot_id": latest, "problems": ", ".join(problems) or "none"}),
    ]
