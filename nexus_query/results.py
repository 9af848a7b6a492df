"""What a query returns: hits with their scores and where they came from, the page's cursor and table
versions, and the mode that ranked them (convertible to polars and pandas for notebooks)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nexus_query.scoring import ScoreDetails

if TYPE_CHECKING:
    import polars as pl

QueryMode = Literal["vector", "hybrid"]
MODES: tuple[QueryMode, ...] = ("vector", "hybrid")
SpaceLabel = Literal["tenant", "global"]  # the tenant's own space, or the shared global one
# Chosen with bench/retrieval_eval.py: on the example documents (309 title -> text queries) hybrid scored
# nDCG@10 0.9047 against vector's 0.9037 (the tiny fixture: 1.0 both), so it never lost, and it puts exact
# identifiers (serial numbers, order codes) first where the embedding alone does not. It costs a full-text
# search per query (bench/query_bench.py: about +6 ms at 10k rows, +17 ms at 100k).
DEFAULT_MODE: QueryMode = "hybrid"


@dataclass(frozen=True)
class Hit:
    """One ranked row: its document, content and metadata, and a score that says how relevant it is."""

    doc_id: str
    score: float  # relevance in [0, 1], higher is better (nexus_query.scoring says what it means)
    content: str
    metadata: dict[str, Any]
    type: str = "text"
    source: str = ""
    space: SpaceLabel = "tenant"  # where the hit came from
    score_details: ScoreDetails = field(default_factory=ScoreDetails)


@dataclass
class QueryResult:
    """One page of hits; ``next_cursor`` asks for the next page (None: this is the last)."""

    hits: list[Hit]
    next_cursor: str | None = None
    table_versions: dict[str, int | None] = field(default_factory=dict)
    mode: QueryMode = DEFAULT_MODE

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.hits]

    def to_polars(self, *, expand_metadata: bool = False) -> pl.DataFrame:
        """One row per hit. ``metadata`` is a JSON string; ``expand_metadata=True`` adds one column per
        metadata key (``meta_<key>``) instead, for filtering and grouping in the notebook."""
        import polars as pl

        rows = [{**asdict(h), "metadata": json.dumps(h.metadata, sort_keys=True)} for h in self.hits]
        details = pl.Struct({"vector": pl.Float64(), "text": pl.Float64(), "rank_vector": pl.Int64(),
                             "rank_text": pl.Int64()})
        schema = pl.Schema({"doc_id": pl.Utf8(), "score": pl.Float64(), "content": pl.Utf8(), "metadata": pl.Utf8(),
                            "type": pl.Utf8(), "source": pl.Utf8(), "space": pl.Utf8(), "score_details": details})
        frame = pl.DataFrame(rows, schema=schema)
        if expand_metadata:
            keys = sorted({k for h in self.hits for k in h.metadata})
            frame = frame.drop("metadata").with_columns(
                pl.Series(f"meta_{k}", [_cell(h.metadata.get(k)) for h in self.hits], dtype=pl.Utf8) for k in keys
            )
        return frame

    def to_pandas(self, *, expand_metadata: bool = False):
        return self.to_polars(expand_metadata=expand_metadata).to_pandas()


def _cell(value: Any) -> str | None:
    return value if isinstance(value, str) or value is None else json.dumps(value, sort_keys=True)
