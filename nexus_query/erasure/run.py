"""One erasure from start to finish: plan (stored first), purge each store, draw the HAZE map again,
tombstone artifacts, verify, and keep a receipt. Plain functions: the Dagster asset
(``nexus_pipelines.erasure``) and tests call ``run_erasure``; the API and the CLI call ``request_erasure``.

Crash safety: the plan is written before anything is removed and updated after every step, and every
step is idempotent, so running the same erasure (same task id) again after a crash at any point
finishes it; the receipt adds up what each attempt removed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence

from nexus_query.context import RequestContext
from nexus_query.erasure.model import (
    COUNTED,
    ERASURE_TASK_KIND,
    ErasurePlan,
    ErasureReceipt,
    ErasureRequest,
    Scope,
    Step,
)
from nexus_query.erasure.plan import (
    drop_plan,
    finish_request,
    load_plan,
    plan_erasure,
    receipt_parts,
    save_plan,
    save_request,
    validate_request,
)
from nexus_query.erasure.purge import (
    purge_blobs,
    purge_haze,
    purge_intermediates,
    purge_landing,
    tombstone_artifacts,
)
from nexus_query.erasure.purge_table import drop_table, purge_rows
from nexus_query.erasure.target import ErasureTarget, tenant_target
from nexus_query.erasure.verify import require_erased, verify_erased
from nexus_query.landing import LandingZone, Task, now_iso
from nexus_query.routing import RoutingRegistry

Progress = Callable[[str], None]
# Draws the space's HAZE map again after snapshots were dropped; returns 1 when it drew one. The
# projection code lives in the pipelines package, so the caller passes it in.
Remap = Callable[[ErasureTarget], int]
StepHook = Callable[[Step], None]


def new_request(space_id: str, scope: Scope, names: Sequence[str] = (), *, reason: str | None = None,
                task_id: str | None = None) -> ErasureRequest:
    return validate_request(ErasureRequest(task_id=task_id or uuid.uuid4().hex, space_id=space_id, scope=scope,
                                           names=tuple(dict.fromkeys(names)), requested_at=now_iso(),
                                           reason=reason or "erasure request"))


def request_erasure(ctx: RequestContext, space_id: str, scope: Scope, names: Sequence[str] = (), *,
                    reason: str | None = None, registry: RoutingRegistry | None = None,
                    task_id: str | None = None) -> Task:
    """Accept an erasure: its task (``queued``) and its request are written; the pipeline's sensor
    starts the run. Refuses the global space and bad names before anything is written. ``task_id``: an
    id chosen (and claimed, ``nexus_query.claims``) by a caller that runs the erasure itself."""
    target = tenant_target(ctx, space_id, registry)
    request = new_request(space_id, scope, names, reason=reason, task_id=task_id)
    stamp = now_iso()
    task = Task(task_id=request.task_id, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                kind=ERASURE_TASK_KIND, counts={"names": len(request.names)})
    LandingZone(target.files).write_task(task)
    save_request(target, request)
    return task


def run_erasure(target: ErasureTarget, request: ErasureRequest, *, remap: Remap | None = None,
                progress: Progress = lambda message: None, after_step: StepHook | None = None,
                needles: Sequence[bytes] = ()) -> ErasureReceipt:
    """Carry out ``request`` on ``target`` (idempotent; resumes a crashed attempt of the same task id).
    ``after_step`` is called after each step (tests crash there); ``needles`` are extra bytes the
    verification looks for in every file (a canary)."""
    request = validate_request(request)
    plan = load_plan(target, request)
    if plan is None and target.files.exists(*receipt_parts(request.space_id, request.task_id)):
        # Finished before (a crash after the receipt was written): check again, answer the same receipt.
        fresh = ErasurePlan(request)
        fresh.merge(plan_erasure(target, request, None if fresh.whole_space else target.open_table()))
        require_erased(verify_erased(target, fresh, needles=needles))
        finish_request(target, request)
        return ErasureReceipt.from_dict(read_receipt(target, request.space_id, request.task_id))
    plan = plan or ErasurePlan(request)
    space = None if plan.whole_space else target.open_table()
    fresh = plan_erasure(target, request, space)
    plan.merge(fresh)
    save_plan(target, plan)
    progress(f"planned: {len(plan.doc_ids)} document(s), {len(plan.row_ids)} row(s), "
             f"{len(plan.landed_files)} landed file(s), {len(plan.conversation_sources)} conversation(s)")
    _done(after_step, "plan")

    def step(name: Step, counts: dict[str, int]) -> None:
        plan.record(name, counts)
        save_plan(target, plan)
        progress(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        _done(after_step, name)

    step("rows", drop_table(target) if plan.whole_space else purge_rows(space, plan))
    step("intermediates", purge_intermediates(target, plan))
    step("landing", purge_landing(target, plan))
    step("blobs", purge_blobs(target, plan, None if plan.whole_space else target.open_table()))
    haze = purge_haze(target, plan)
    if haze["haze_snapshots_removed"]:
        plan.remap_pending = True
        save_plan(target, plan)
    remapped = 0
    if plan.remap_pending and not plan.whole_space:
        remapped = remap(target) if remap is not None else 0
        plan.remap_pending = False
    step("haze", {**haze, "haze_remapped": remapped})
    step("artifacts", tombstone_artifacts(target, plan))
    verification = verify_erased(target, plan, needles=needles)
    progress("verify: " + ", ".join(f"{k} {v}" for k, v in verification.remaining.items()))
    require_erased(verification)
    receipt = _receipt(plan)
    target.files.write_bytes_atomic(json.dumps(receipt.to_dict()).encode(),
                                    *receipt_parts(request.space_id, request.task_id))
    drop_plan(target, request)
    finish_request(target, request)
    _done(after_step, "verify")
    return receipt


def _done(hook: StepHook | None, name: Step) -> None:
    if hook is not None:
        hook(name)


def _receipt(plan: ErasurePlan) -> ErasureReceipt:
    """The counts of every step, summed over the attempts that carried it out."""
    totals: dict[str, int] = {}
    for counts in plan.completed.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    request = plan.request
    return ErasureReceipt(task_id=request.task_id, space_id=request.space_id, scope=request.scope,
                          names=request.names, documents=len(plan.found_doc_ids),
                          **{name: totals.get(name, 0) for name in COUNTED},
                          verified=True, completed_at=now_iso())


def read_receipt(target: ErasureTarget, space_id: str, task_id: str) -> dict:
    return json.loads(target.files.read_bytes(*receipt_parts(space_id, task_id)))
