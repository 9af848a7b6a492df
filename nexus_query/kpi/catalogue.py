"""A tenant's metric catalogue: what each metric is called, its unit, which way is good, its window.

The catalogue is the allow-list of the fact worker: measurements of metrics it does not name are
reported by the pipeline, never turned into facts. File form (YAML, ``kpi/{space}/catalogue.yaml``)::

    retention_days: 90            # facts of windows older than this are removed (null: keep all)
    defaults: {window: 1h, min_change_pct: 10}
    metrics:
      - name: checkout_latency_p95
        label: p95 latency of checkout
        unit: ms
        direction: down_is_good   # up_is_good | down_is_good | neutral
        thresholds: {above: 250}
      - name: orders_per_hour
        unit: orders/h
        direction: up_is_good
        seasonality: daily        # compare with the same hour a day earlier (default auto: the data decides)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

import yaml

from nexus_query.errors import InvalidRequest
from nexus_query.kpi.windows import SEASONS, parse_window

DIRECTIONS = ("up_is_good", "down_is_good", "neutral")
AGGREGATIONS = ("mean", "median", "sum", "min", "max", "last")
# Metric names go into fact sources and ids: letters, digits and a few separators (dots are common).
METRIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)


def validate_metric_name(name: object) -> str:
    if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
        raise InvalidRequest(f"metric name must match {METRIC_NAME.pattern}, got {name!r}", field="metric")
    return name


@dataclass(frozen=True)
class MetricSpec:
    """One metric and the guard-rail settings the fact worker applies to it."""

    name: str
    label: str = ""  # how sentences name it ("p95 latency of checkout"); default: the name, spaced
    unit: str = ""
    direction: str = "neutral"
    window: timedelta | None = None  # None: chosen from the data's sampling
    aggregation: str = "mean"  # how a window's readings become its one value
    above: float | None = None  # threshold: readings above it are a breach
    below: float | None = None
    seasonality: str = "auto"  # auto (found in the data) | none | daily | weekly: compare like with like
    min_points: int = 6  # readings a window needs before anything is said about it
    min_change_pct: float = 10.0  # smaller moves are not worth a sentence

    def __post_init__(self) -> None:
        validate_metric_name(self.name)
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))
        _choice("direction", self.direction, DIRECTIONS)
        _choice("aggregation", self.aggregation, AGGREGATIONS)
        _choice("seasonality", self.seasonality, tuple(SEASONS))
        if self.window is not None:
            object.__setattr__(self, "window", parse_window(self.window))
        for name in ("above", "below"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidRequest(f"threshold {name} must be a finite number", field=f"thresholds.{name}")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise InvalidRequest("threshold below must be smaller than above", field="thresholds")
        if not isinstance(self.min_points, int) or self.min_points < 2:
            raise InvalidRequest("min_points must be an integer of at least 2", field="min_points")
        if not isinstance(self.min_change_pct, (int, float)) or not 0 < self.min_change_pct < 1000:
            raise InvalidRequest("min_change_pct must be a number between 0 and 1000", field="min_change_pct")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> MetricSpec:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("each metric must be a mapping", field="metrics")
        merged = {**(defaults or {}), **raw}
        thresholds = merged.pop("thresholds", None) or {}
        if not isinstance(thresholds, Mapping) or set(thresholds) - {"above", "below"}:
            raise InvalidRequest("thresholds takes 'above' and/or 'below'", field="thresholds")
        known = {f.name for f in fields(cls)} - {"above", "below"}
        unknown = set(merged) - known
        if unknown:
            raise InvalidRequest(f"unknown metric settings {sorted(unknown)}", field=sorted(unknown)[0],
                                 metric=merged.get("name"))
        return cls(**merged, **thresholds)


@dataclass(frozen=True)
class Catalogue:
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    retention_days: int | None = 90

    def get(self, name: str) -> MetricSpec | None:
        return self.metrics.get(name)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> Catalogue:
        raw = raw or {}
        if not isinstance(raw, Mapping) or set(raw) - {"version", "defaults", "metrics", "retention_days"}:
            raise InvalidRequest("a KPI catalogue takes version, defaults, metrics and retention_days",
                                 field="catalogue")
        defaults = raw.get("defaults") or {}
        if not isinstance(defaults, Mapping) or "name" in defaults:
            raise InvalidRequest("defaults must be a mapping of metric settings (without name)", field="defaults")
        items = raw.get("metrics") or []
        if not isinstance(items, list):
            raise InvalidRequest("metrics must be a list", field="metrics")
        metrics: dict[str, MetricSpec] = {}
        for item in items:
            spec = MetricSpec.from_mapping(item, defaults)
            if spec.name in metrics:
                raise InvalidRequest(f"metric {spec.name!r} is listed twice", field="metrics", metric=spec.name)
            metrics[spec.name] = spec
        retention = raw.get("retention_days", 90)
        if retention is not None and (not isinstance(retention, int) or retention < 1):
            raise InvalidRequest("retention_days must be a positive integer or null", field="retention_days")
        return cls(metrics=metrics, retention_days=retention)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Catalogue:
        try:
            return cls.from_mapping(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"the KPI catalogue is not valid YAML: {exc}", field="catalogue") from exc


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {allowed}, got {value!r}", field=name)
