"""What the fact worker saw in one series: its complete windows, the ones a run judged, what it said."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from nexus_query.kpi.catalogue import MetricSpec
from nexus_query.kpi.fact import Fact, fact_source, status_source
from nexus_query.kpi.source import Series
from nexus_query.kpi.windows import to_us


@dataclass
class SeriesReport:
    """What the worker saw in one series: its windows, the ones it judged, and what it said."""

    series: Series
    spec: MetricSpec
    window: timedelta
    lag: int  # comparison lag (windows) of the latest judged window
    expected: int  # readings a window holds at the usual sampling
    required: int  # readings a window needs to be judged
    starts_us: np.ndarray  # start of each complete window, oldest first
    counts: np.ndarray
    values: np.ndarray  # the window's value (its aggregation), NaN where too few readings
    judged: list[int] = field(default_factory=list)  # window starts judged in this run
    stale_checked: bool = False
    last_reading_us: int | None = None  # the data's as_of: the last reading the run saw
    facts: list[Fact] = field(default_factory=list)

    @property
    def sources(self) -> set[str]:
        """The fact sources this run speaks for: their old facts are replaced by ``facts``."""
        judged = {fact_source(self.series.key, start) for start in self.judged} | {status_source(self.series.key)}
        return judged | ({fact_source(self.series.key, None)} if self.stale_checked else set())

    def start_us(self, i: int) -> int:
        return int(self.starts_us[i])

    def end_us(self, i: int) -> int:
        return int(self.starts_us[i]) + to_us(self.window)
