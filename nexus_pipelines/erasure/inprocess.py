"""``nexus erase --wait`` and ``nexus_forget``: run the erasure job in this process (Dagster's instance from
DAGSTER_HOME when set, else a throwaway one), so the run and its receipt are recorded like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nexus_pipelines.common.in_process import STEPS_ONLY, asset_metadata, dagster_instance, first_step_error
from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.erasure.assets import erasure_run_config
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey
from nexus_query.claims import claimed
from nexus_query.context import RequestContext
from nexus_query.erasure import request_erasure
from nexus_query.erasure.model import Scope
from nexus_query.errors import NexusError
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry


def erase_in_process(ctx: RequestContext, space_id: str, task_id: str) -> dict[str, Any]:
    """Run the accepted request ``task_id``; the materialization's metadata (the receipt)."""
    from nexus_pipelines.definitions import defs

    key = SpaceKey(ctx.tenant_id, ctx.project_id, space_id)
    with dagster_instance() as instance:
        instance.add_dynamic_partitions(TENANT_SPACES, [key.partition_key])
        result = defs.resolve_job_def("erase_space").execute_in_process(
            partition_key=key.partition_key, instance=instance,
            run_config={**STEPS_ONLY, **erasure_run_config(task_id)}, tags={**key.run_tags, TASK_TAG: task_id},
            raise_on_error=False)
        if not result.success:
            message = first_step_error(result.all_events, root=False) or "the erasure run failed"
            raise ErasureRunFailed(message.strip()[:2000], task_id=task_id, run_id=result.run_id)
        (receipt,) = asset_metadata(result).values()
        return receipt


def claim_and_erase(ctx: RequestContext, space_id: str, scope: Scope, names: Sequence[str] = (), *,
                    reason: str | None = None, allow_none: bool = False,
                    registry: RoutingRegistry | None = None) -> dict[str, Any]:
    """Accept an erasure and run it here (``nexus erase --wait``, the agents' ``nexus_forget``): its id is
    claimed before the request is written, so a running daemon's erasure sensor leaves it to this process."""
    with claimed(landing_zone(ctx, registry).files, role="erase") as holding:
        task = request_erasure(ctx, space_id, scope, names, reason=reason, registry=registry,
                               allow_none=allow_none, task_id=holding.claim.request_id)
        return erase_in_process(ctx, space_id, task.task_id)


class ErasureRunFailed(NexusError):
    code = "nexus.erasure_failed"
    status = 500
