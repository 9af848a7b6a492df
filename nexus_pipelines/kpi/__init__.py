"""KPI fact docs: kpi_measurements (observed) → kpi_fact_docs (facts embedded into the space), refreshed
hourly and at the end of runs that bring measurements. The fact worker itself is nexus_query.kpi."""

import dagster as dg

from nexus_pipelines.kpi.assets import kpi_fact_docs, kpi_measurements
from nexus_pipelines.kpi.triggers import (
                                          kpi_facts_job,
                                          kpi_hourly_schedule,
                                          kpi_measurements_sensor,
                                          kpi_observe_job,
                                          kpi_observe_schedule,
)

defs = dg.Definitions(
    assets=[kpi_measurements, kpi_fact_docs],
    jobs=[kpi_facts_job, kpi_observe_job],
    schedules=[kpi_hourly_schedule, kpi_observe_schedule],
    sensors=[kpi_measurements_sensor],
)
