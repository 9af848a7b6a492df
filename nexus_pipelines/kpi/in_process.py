"""Refresh one space's KPI facts in this process (``nexus kpi add --wait``): one run of ``kpi_facts_job``
for its partition, recorded in the Dagster instance at ``$DAGSTER_HOME`` when it is set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from nexus_pipelines.common.in_process import QUIET, asset_metadata, first_step_error
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey


@dataclass(frozen=True)
class KpiOutcome:
    run_id: str
    success: bool
    metadata: dict[str, Any]  # kpi_fact_docs' metadata (facts, facts_by_type, ...)
    error: str | None = None


def kpi_facts_in_process(key: SpaceKey, *, instance: dg.DagsterInstance, as_of: datetime | None = None) -> KpiOutcome:
    """One run of ``kpi_facts_job`` for ``key`` as of ``as_of`` (default: now); a failed step is reported in
    the outcome, not raised."""
    from nexus_pipelines.definitions import defs  # the code location: resources and every job

    if not instance.has_dynamic_partition(TENANT_SPACES, key.partition_key):
        instance.add_dynamic_partitions(TENANT_SPACES, [key.partition_key])
    moment = (as_of or datetime.now(UTC)).isoformat()
    result = defs.resolve_job_def("kpi_facts_job").execute_in_process(
        partition_key=key.partition_key, instance=instance, tags=key.run_tags, raise_on_error=False,
        run_config={**QUIET, "ops": {"kpi_fact_docs": {"config": {"as_of": moment}}}})
    error = None if result.success else (first_step_error(result.all_events, root=True) or "the KPI run failed")
    return KpiOutcome(result.run_id, result.success, asset_metadata(result).get("kpi_fact_docs", {}), error)
