"""``nexus erase --wait``: run the erasure job in this process (Dagster's instance from DAGSTER_HOME
when set, else a throwaway one), so the run and its receipt are recorded like any other."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from nexus_pipelines.erasure.assets import erasure_run_config
from nexus_pipelines.ingest.tasks import TASK_TAG
from nexus_pipelines.partitions import SpaceKey, tenant_spaces
from nexus_query.context import RequestContext
from nexus_query.errors import NexusError


@contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def erase_in_process(ctx: RequestContext, space_id: str, task_id: str) -> dict:
    """Run the accepted request ``task_id``; the materialization's metadata (the receipt)."""
    from nexus_pipelines.definitions import defs

    key = SpaceKey(ctx.tenant_id, ctx.project_id, space_id)
    with _instance() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, [key.partition_key])
        result = defs.resolve_job_def("erase_space").execute_in_process(
            partition_key=key.partition_key, instance=instance, run_config=erasure_run_config(task_id),
            tags={**key.run_tags, TASK_TAG: task_id}, raise_on_error=False)
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            message = failure.event_specific_data.error.message if failure else "the erasure run failed"
            raise ErasureRunFailed(message.strip()[:2000], task_id=task_id, run_id=result.run_id)
        (event,) = result.get_asset_materialization_events()
        metadata = event.event_specific_data.materialization.metadata
        return {k: v.value for k, v in metadata.items()}


class ErasureRunFailed(NexusError):
    code = "nexus.erasure_failed"
    status = 500
