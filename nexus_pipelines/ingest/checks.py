"""What must hold for every row of a space, checked over the whole table in streamed batches (the
``space_table`` asset reports each as an asset check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nexus_pipelines.partitions import tenant_spaces
from nexus_query.store import SpaceTable

NORM_TOLERANCE = 1e-3
CHECKS = {
    "vectors_valid": "every vector has the space's dimension, is finite and has unit length",
    "ids_unique": "no id appears twice",
    "text_not_empty": "no row has empty or whitespace-only text",
    "rows_belong_to_owner": "every row belongs to the partition's tenant (or to the global space)",
}


def check_specs(asset: str = "space_table") -> list[dg.AssetCheckSpec]:
    """Blocking, and partitioned like the asset: each result belongs to the space it checked, so the UI
    shows every partition's checks as evaluated (an unpartitioned result reads "Not evaluated")."""
    return [dg.AssetCheckSpec(name, asset=asset, description=text, blocking=True, partitions_def=tenant_spaces)
            for name, text in CHECKS.items()]


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return CHECKS[self.name]


def inspect_space(space: SpaceTable, owner: str, dimension: int) -> list[CheckOutcome]:
    """Scan the table once; ``owner`` is the tenant id (``_global`` for the global space)."""
    stored_dimension = space.table.schema.field("vector").type.list_size
    rows = non_finite = not_unit = empty = foreign = 0
    ids: list[pa.Array] = []
    reader = space.table.search().select(["id", "text", "tenant_id", "vector"]).limit(None).to_batches(8192)
    for batch in reader:
        rows += batch.num_rows
        ids.append(batch.column("id"))
        vectors = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(-1, stored_dimension)
        finite = np.isfinite(vectors).all(axis=1)
        non_finite += int((~finite).sum())
        norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0), axis=1)
        not_unit += int((finite & (np.abs(norms - 1) > NORM_TOLERANCE)).sum())
        empty += int(pc.sum(pc.equal(pc.utf8_trim_whitespace(batch.column("text")), "")).as_py() or 0)
        foreign += int(pc.sum(pc.not_equal(batch.column("tenant_id"), owner)).as_py() or 0)
    distinct = pc.count_distinct(pa.chunked_array(ids, pa.utf8())).as_py() if ids else 0
    return [
        CheckOutcome("vectors_valid", stored_dimension == dimension and non_finite == 0 and not_unit == 0,
                     {"dimension": stored_dimension, "expected_dimension": dimension, "non_finite": non_finite,
                      "not_unit_length": not_unit}),
        CheckOutcome("ids_unique", distinct == rows, {"rows": rows, "duplicate_rows": rows - distinct}),
        CheckOutcome("text_not_empty", empty == 0, {"empty_text_rows": empty}),
        CheckOutcome("rows_belong_to_owner", foreign == 0, {"owner": owner, "foreign_rows": foreign}),
    ]
