"""The two tool calls that run a pipeline job here and wait for it: ``nexus_store(wait=true)`` (the space's
ingest) and ``nexus_forget`` (the erasure), as ``nexus ingest --wait`` and ``nexus erase --wait`` do. The
pipelines are imported when first needed (``nexus_query`` never imports dagster at import time).

A store goes through ``nexus_pipelines.ingest.fast.land_and_wait``, as ``nexus ingest --wait`` does: the
batch is claimed before it lands, so a running daemon never runs it too, and a small one is queryable
within seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nexus_query.context import RequestContext
from nexus_query.erasure.model import Scope
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
        import nexus_pipelines.ingest.fast  # noqa: F401
    except ImportError:
        pass


def _pipelines_needed(what: str) -> MissingExtra:
    return MissingExtra("pipelines", f"{what} runs the pipeline in this server and needs the pipelines extra: "
                                     "pip install 'nexus[pipelines]'")


def ingest_and_wait(ctx: RequestContext, registry: RoutingRegistry, space_id: str, item: Mapping[str, Any],
                    bound_seconds: float = WAIT_BOUND_SECONDS) -> Task:
    """Land ``item`` as one batch and ingest it now (``land_and_wait``: claimed, so a running daemon never
    runs it too); the task once it succeeded or failed, or as it stands past ``bound_seconds`` (the ingest
    goes on)."""
    try:
        from nexus_pipelines.ingest.fast import land_and_wait
    except ImportError:
        raise _pipelines_needed("nexus_store with wait=true") from None
    landed: list[Task] = []

    def land(batch_id: str) -> Task:
        landed.append(landing_zone(ctx, registry).land_batch(space_id, [item], max_items=1, batch_id=batch_id))
        return landed[0]

    errors: list[Exception] = []

    def run() -> None:
        try:
            land_and_wait(ctx, space_id, land=land, registry=registry)
        except Exception as exc:  # after landing, the task's state tells the caller; the log has the details
            errors.append(exc)
            log.exception("storing into space %s failed", space_id)

    worker = threading.Thread(target=run, name=f"nexus-store-{space_id}", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(bound_seconds)
    if not landed:  # refused before anything was stored
        raise errors[0] if errors else RuntimeError(f"the batch was not landed within {bound_seconds:.0f} s")
    if worker.is_alive():
        log.info("task %s: still running after %.0f s; answering with its state", landed[0].task_id,
                 time.monotonic() - started)
    return landing_zone(ctx, registry).read_task(landed[0].task_id)


def erase_and_wait(ctx: RequestContext, registry: RoutingRegistry, space_id: str, scope: Scope,
                   names: Sequence[str], reason: str | None) -> dict[str, Any]:
    """Accept and run an erasure now, claimed as ``nexus erase --wait`` does; its receipt."""
    try:
        from nexus_pipelines.erasure.inprocess import claim_and_erase
    except ImportError:
        raise _pipelines_needed("nexus_forget") from None
    with _space_lock(ctx, space_id):
        return claim_and_erase(ctx, space_id, scope, names, reason=reason, registry=registry)
