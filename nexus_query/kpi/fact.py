"""A KPI fact as it is stored: one sentence about one series, its deterministic id and its source.

The id and the source are what a re-run uses to find the same fact again (see nexus_query.kpi.refresh),
so they depend on nothing but (tenant, series, type, onset).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from nexus_query.kpi.windows import iso
from nexus_query.store.rows import Record

FactType = Literal["change", "trend", "outside_band", "threshold_breach", "new_extreme", "missing_data",
                   "stale_data", "spike", "status"]
FACT_TYPES: tuple[FactType, ...] = ("change", "trend", "outside_band", "threshold_breach", "new_extreme",
                                    "missing_data", "stale_data", "spike", "status")
EpisodeType = Literal["outside_band", "threshold_breach", "missing_data"]
EPISODE_TYPES: tuple[EpisodeType, ...] = ("outside_band", "threshold_breach", "missing_data")


@dataclass(frozen=True)
class Fact:
    """One sentence about one series, with everything behind it in ``metadata``. Episode facts speak for
    consecutive windows: ``window_start``/``window_end`` name the one they were last checked on."""

    id: str
    type: FactType
    text: str
    source: str  # ``kpi/{series}/{onset}``: the unit a re-run replaces (``.../stale``, ``.../status``)
    window_start: str
    window_end: str
    metadata: dict[str, Any]

    @property
    def episode_start(self) -> str | None:
        return self.metadata.get("episode_start")

    @property
    def episode_end(self) -> str | None:
        return self.metadata.get("episode_end")

    def to_record(self) -> Record:
        return Record(text=self.text, source=self.source, type="kpi", metadata=self.metadata, id=self.id,
                      chunk_index=FACT_TYPES.index(self.type))

    def to_json(self) -> dict[str, Any]:
        """The CLI's line: type, window, episode, text and the numbers."""
        keep = ("metric", "series", "unit", "assessment", "as_of", "position", "episode_start", "episode_end",
                "episode", "numbers", "points", "severity", "baseline", "window_complete", "method")
        return {"id": self.id, "type": self.type, "window_start": self.window_start,
                "window_end": self.window_end, "text": self.text,
                **{k: self.metadata[k] for k in keep if k in self.metadata}}


def fact_id(tenant: str, series_key: str, fact_type: str, onset: str) -> str:
    """Deterministic: the same fact (an episode, or a window's change) has the same id however often it is
    re-judged, so a re-run or the next hour's run updates it in place."""
    key = "\x1f".join([tenant, series_key, fact_type, onset])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def fact_source(series_key: str, onset_us: int | None) -> str:
    return f"kpi/{series_key}/" + ("stale" if onset_us is None else iso(onset_us))


def status_source(series_key: str) -> str:
    """The status fact's source: one per series, whatever window it speaks of."""
    return f"kpi/{series_key}/status"
