"""How late each refreshed asset may be before the Dagster UI says so (``freshness`` is on in dagster.yaml).

Dagster 1.13 evaluates a freshness policy per asset, from the newest materialization of any partition: it
says "the refresh as a whole has stalled" (a schedule off, the daemon down, every run failing), not which
space is behind; a space's own lateness is in its KPI status facts and its checks.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

# kpi_hourly_schedule runs at :05: one missed tick warns, two fail.
KPI_FACTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2, minutes=10),
                                                     warn_window=timedelta(hours=1, minutes=10))
# Tenants ingest all day; no space written for a day means the landing sensor or the runs have stopped.
SPACE_TABLE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=3), warn_window=timedelta(days=1))
