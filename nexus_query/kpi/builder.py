"""The fact builder: a draft with named fields becomes a stored fact with its id, source and metadata.

Every fact's metadata has the same frame (metric, series, label, unit, direction, assessment, window,
numbers, points, method); floats are rounded to 6 significant digits so that the same input gives the
same JSON and the same fact text, id and metadata on every run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from nexus_query.kpi.baselines import BaselineEvidence
from nexus_query.kpi.fact import Fact, FactType, fact_id, fact_source
from nexus_query.kpi.report import SeriesReport
from nexus_query.kpi.stats import Severity
from nexus_query.kpi.windows import iso, window_code
from nexus_query.kpi.wording import Assessment, Wording


@dataclass(frozen=True)
class EpisodeSummary:
    """An episode's span as the metadata states it; the peak fields are absent for missing data, the
    record fields for anything but an excursion beyond the band."""

    start: str
    end: str | None  # None while the episode lasts
    windows: int
    duration: str | None  # None while the episode lasts
    peak: float | None = None
    peak_at: str | None = None
    level_shift: bool | None = None
    record: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.peak is not None:
            out.update(peak=self.peak, peak_at=self.peak_at)
        out.update(windows=self.windows, duration=self.duration)
        if self.level_shift is not None:
            out.update(level_shift=self.level_shift, record=self.record)
        return out


@dataclass(frozen=True, kw_only=True)
class FactDraft:
    """What a check found, before it has an id: the builder adds the frame every fact shares."""

    kind: FactType
    checked: int  # index of the window the fact was last checked on
    onset_us: int  # what the fact's id and source name: its episode's onset, or its window's start
    text: str
    numbers: dict[str, Any]
    points: dict[str, Any]
    method: dict[str, Any]
    assessment: Assessment
    start_us: int | None = None  # the fact's window_start where it is not the checked window's (a trend)
    severity: Severity | None = None
    episode: EpisodeSummary | None = None
    baseline: BaselineEvidence | None = None


class FactBuilder:
    """Builds the facts of one series (its report, its tenant, its wording)."""

    def __init__(self, report: SeriesReport, tenant: str, wording: Wording) -> None:
        self.r, self.tenant, self.wording = report, tenant, wording

    def build(self, draft: FactDraft) -> Fact:
        r, i = self.r, draft.checked
        start = iso(draft.start_us if draft.start_us is not None else r.start_us(i))
        end = iso(r.end_us(i))
        metadata = self.metadata(draft.kind, start, end, draft.numbers, draft.points, draft.method,
                                 draft.assessment)
        metadata["window_complete"] = bool(r.counts[i] >= r.expected)
        if draft.episode is not None:
            episode = draft.episode.as_dict()
            metadata.update(episode_start=episode["start"], episode_end=episode["end"], episode=rounded(episode))
        if draft.severity is not None:
            metadata["severity"] = rounded(asdict(draft.severity))
        if draft.baseline is not None:
            metadata["baseline"] = rounded({k: (rounded(v) if isinstance(v, dict) else v)
                                            for k, v in draft.baseline.as_dict().items()})
        return Fact(fact_id(self.tenant, r.series.key, draft.kind, iso(draft.onset_us)), draft.kind, draft.text,
                    fact_source(r.series.key, draft.onset_us), start, end, metadata)

    def stale(self, *, text: str, numbers: dict[str, Any], window_start: str, window_end: str) -> Fact:
        """The one fact about the present: its id names the last reading, its source is ``.../stale``."""
        metadata = self.metadata("stale_data", window_start, window_end, numbers, {"current": 0},
                                 {"check": "no reading in the latest complete window"}, "neutral")
        return Fact(fact_id(self.tenant, self.r.series.key, "stale_data", window_start), "stale_data", text,
                    fact_source(self.r.series.key, None), window_start, window_end, metadata)

    def metadata(self, kind: FactType, start: str, end: str, numbers: dict[str, Any], points: dict[str, Any],
                 method: dict[str, Any], assessment: Assessment) -> dict[str, Any]:
        r, spec, series = self.r, self.r.spec, self.r.series
        method = {"comparison_lag_windows": r.lag, **method, "window": window_code(r.window),
                  "window_chosen_from_data": spec.window is None, "min_points": r.required,
                  "seasonality": spec.seasonality}
        as_of = iso(r.last_reading_us) if r.last_reading_us is not None else None
        return {"kind": "kpi_fact", "fact_type": kind, "metric": series.metric, "series": series.key, "as_of": as_of,
                "label": self.wording.label, "unit": self.wording.unit, "dimensions": dict(series.dimensions),
                "direction": spec.direction, "assessment": assessment, "window": window_code(r.window),
                "window_start": start, "window_end": end, "numbers": rounded(numbers), "points": points,
                "method": rounded(method)}


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 significant digits: metadata stays readable and the same input gives the same JSON."""
    def one(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.6g}") if math.isfinite(v) else None
        if isinstance(v, list):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in values.items()}
