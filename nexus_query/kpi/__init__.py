"""KPI fact docs, the part without Dagster: the measurement source, the metric catalogue, windows and
the fact worker. The pipelines (nexus_pipelines.kpi) and the ``nexus kpi facts`` CLI both use it."""

from nexus_query.kpi.catalogue import Catalogue, MetricSpec
from nexus_query.kpi.fact import FACT_TYPES, Fact
from nexus_query.kpi.facts import analyse_series, analyse_source, facts_for_series
from nexus_query.kpi.report import SeriesReport
from nexus_query.kpi.source import KpiSource, Series, read_series_file, read_source

__all__ = ["FACT_TYPES", "Catalogue", "Fact", "KpiSource", "MetricSpec", "Series", "SeriesReport",
           "analyse_series", "analyse_source", "facts_for_series", "read_series_file", "read_source"]
