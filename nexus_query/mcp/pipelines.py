"""The two tool calls that run a pipeline job here and wait for it: ``nexus_store(wait=true)`` (the space's
ingest) and ``nexus_forget`` (the erasure), as ``nexus ingest --wait`` and ``nexus erase --wait`` do. The
pipelines are imported when first needed (``nexus_query`` never imports dagster at import time).

One place on purpose: the freshness work's "land a batch and wait until it is queryable" entry point (one
run per batch whether a daemon or this process runs it) replaces ``ingest_and_wait``'s body alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from nexus_query.context import RequestContext
from nexus_query.errors import MissingExtra
from nexus_query.landing import Task, landing_zone
from nexus_query.routing import RoutingRegistry

WAIT_BOUND_SECONDS = 120.0  # nexus_store(wait=true) answers by then, with the task's state if not done
log = logging.getLogger("nexus_query.mcp")
_space_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _space_lock(ctx: RequestContext, space_id: str) -> threading.Lock:
    """One run at a time per space in this server (two waits on one space share the later run)."""
    with _locks_guard:
        return _space_locks.setdefault((ctx.environment, ctx.tenant_id, ctx.project_id, space_id), threading.Lock())


def import_runners() -> None:
    """Import the in-process runners ahead of the first wait (Dagster's import is most of a cold wait);
    without the pipelines extra there is nothing to import and the tools say so when called."""
    try:
        import nexus_pipelines.erasure.inprocess  # noqa: F401
        import nexus_pipelines.ingest.run_in_process  # noqa: F401
    except ImportError:
        pass


def _pipelines_needed(what: str) -> MissingExtra:
    return MissingExtra("pipelines", f"{what} runs the pipeline in this server and needs the pipelines extra: "
                                     "pip install 'nexus[pipelines]'")


def ingest_and_wait(ctx: RequestContext, registry: RoutingRegistry, space_id: str, task_id: str,
                    bound_seconds: float = WAIT_BOUND_SECONDS) -> Task:
    """Ingest the landed task now and return it once it succeeded or failed; past ``bound_seconds`` the run
    goes on and the task is returned as it stands."""
    try:
        from nexus_pipelines.common.in_process import dagster_instance
        from nexus_pipelines.common.tasks import TASK_TAG, fail_run_tasks
        from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
        from nexus_pipelines.partitions import SpaceKey
    except ImportError:
        raise _pipelines_needed("nexus_store with wait=true") from None

    def run() -> None:
        with _space_lock(ctx, space_id), dagster_instance() as instance:
            if landing_zone(ctx, registry).read_task(task_id).status == "succeeded":  # an earlier run took it
                return
            outcome = ingest_space_in_process(SpaceKey(ctx.tenant_id, ctx.project_id, space_id), instance=instance,
                                              task_id=task_id, progress=False)
            if not outcome.success:  # what ingest_failure_sensor does for a daemon's run
                fail_run_tasks(landing_zone(ctx, registry), instance, outcome.run_id, {TASK_TAG: task_id},
                               outcome.error or "the ingest run failed", log)

    worker = threading.Thread(target=_logged(run, task_id), name=f"nexus-ingest-{task_id}", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(bound_seconds)
    if worker.is_alive():
        log.info("task %s: still running after %.0f s; answering with its state", task_id, time.monotonic() - started)
    return landing_zone(ctx, registry).read_task(task_id)


def _logged(run: Callable[[], None], task_id: str) -> Callable[[], None]:
    def logged() -> None:
        try:
            run()
        except Exception:  # the task's state tells the caller; the log has the details
            log.exception("the in-process ingest of task %s failed", task_id)
    return logged


def erase_and_wait(ctx: RequestContext, space_id: str, task_id: str) -> dict[str, Any]:
    """Run the accepted erasure ``task_id`` now; its receipt."""
    try:
        from nexus_pipelines.erasure.inprocess import erase_in_process
    except ImportError:
        raise _pipelines_needed("nexus_forget") from None
    with _space_lock(ctx, space_id):
        return erase_in_process(ctx, space_id, task_id)
