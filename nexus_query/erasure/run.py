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
    ErasureIncomplete,
    ErasurePlan,
    ErasureReceipt,
    ErasureRequest,
    Scope,
    Step,
)
from nexus_query.erasure.names import name_hash
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
from nexus_query.erasure.scan import ScanResult, scan_for, take_fingerprints
from nexus_query.erasure.target import ErasureTarget, tenant_target
from nexus_query.erasure.verify import require_erased, verify_erased
from nexus_query.fence import put_up, refuse_if_erasing, take_down
from nexus_query.landing import LandingZone, Task, now_iso, require_space
from nexus_query.routing import RoutingRegistry

Progress = Callable[[str], None]
# Draws the space's HAZE map again after snapshots were dropped; returns 1 when it drew one. The
# projection code lives in the pipelines package, so the caller passes it in.
Remap = Callable[[ErasureTarget], int]
StepHook = Callable[[Step], None]


def new_request(space_id: str, scope: Scope, names: Sequence[str] = (), *, reason: str | None = None,
                task_id: str | None = None, allow_none: bool = False, all_spaces: bool = False) -> ErasureRequest:
    return validate_request(ErasureRequest(task_id=task_id or uuid.uuid4().hex, space_id=space_id, scope=scope,
                                           names=tuple(dict.fromkeys(names)), requested_at=now_iso(),
                                           reason=reason or "erasure request", allow_none=allow_none,
                                           all_spaces=all_spaces))


def request_erasure(ctx: RequestContext, space_id: str, scope: Scope, names: Sequence[str] = (), *,
                    reason: str | None = None, registry: RoutingRegistry | None = None, allow_none: bool = False,
                    all_spaces: bool = False, task_id: str | None = None) -> Task:
    """Accept an erasure: its task (``queued``) and its request are written; the pipeline's sensor
    starts the run. Refuses the global space, names outside the rule (422), a space being erased (409),
    a space that does not exist (404) and names that match nothing (404 ``nexus.nothing_to_erase``, unless
    ``allow_none``) before anything is written. A whole-space erasure fences the space
    (``nexus_query.fence``). ``task_id``: an id chosen (and claimed, ``nexus_query.claims``) by a caller
    that runs the erasure itself."""
    target = tenant_target(ctx, space_id, registry)
    refuse_if_erasing(target.files, space_id)
    request = new_request(space_id, scope, names, reason=reason, allow_none=allow_none, all_spaces=all_spaces,
                          task_id=task_id)
    require_space(ctx, space_id, registry)
    if scope != "space":
        plan_erasure(target, request, target.open_table(), require_match=True)
    stamp = now_iso()
    task = Task(task_id=request.task_id, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                kind=ERASURE_TASK_KIND, counts={"names": len(request.names)})
    if scope == "space":
        put_up(target.files, space_id, request.task_id)
    LandingZone(target.files).write_task(task)
    save_request(target, request)
    return task


def run_erasure(target: ErasureTarget, request: ErasureRequest, *, remap: Remap | None = None,
                progress: Progress = lambda message: None, after_step: StepHook | None = None,
                needles: Sequence[bytes] = (), scan_roots: Sequence[str] = ()) -> ErasureReceipt:
    """Carry out ``request`` on ``target`` (idempotent; resumes a crashed attempt of the same task id).
    ``after_step`` is called after each step (tests crash there); ``needles`` are extra bytes the
    verification looks for (a canary); ``scan_roots`` are further local folders the verification scan
    reads (Dagster's home)."""
    request = validate_request(request)
    plan = load_plan(target, request)
    if plan is None and target.files.exists(*receipt_parts(request.space_id, request.task_id)):
        # Finished before (a crash after the receipt was written): check again, answer the same receipt.
        fresh = ErasurePlan(request)
        fresh.merge(plan_erasure(target, request, target.open_table()))
        require_erased(verify_erased(target, fresh, needles=needles))
        _finish(target, request)
        return ErasureReceipt.from_dict(read_receipt(target, request.space_id, request.task_id))
    first_attempt, plan = plan is None, plan or ErasurePlan(request)
    space = target.open_table()
    # What matched when the request was accepted must still match when it first runs.
    fresh = plan_erasure(target, request, space, require_match=first_attempt)
    plan.merge(fresh)
    # Fingerprints come from the stores themselves, before anything is removed (kept as hex: a plan left
    # behind by a crash holds no byte string the scan would find).
    plan.needles.update(n.hex() for n in take_fingerprints(target, plan, space))
    save_plan(target, plan)
    progress(f"planned: {len(plan.doc_ids)} document(s), {len(plan.row_ids)} row(s), "
             f"{len(plan.landed_files)} landed file(s), {len(plan.conversation_sources)} conversation(s), "
             f"{len(plan.needles)} fingerprint(s)")
    _done(after_step, "plan")

    def step(name: Step, counts: dict[str, int]) -> None:
        plan.record(name, counts)
        save_plan(target, plan)
        progress(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        _done(after_step, name)

    step("rows", drop_table(target) if plan.whole_space else purge_rows(space, plan))
    step("intermediates", purge_intermediates(target, plan))
    landing = purge_landing(target, plan)
    step("landing", {**landing, "tasks_cancelled": _cancel_tasks(target, plan)})
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
    scan = scan_for(target, plan, [bytes.fromhex(n) for n in plan.needles] + list(needles), scan_roots)
    progress("verify: " + ", ".join(f"{k} {v}" for k, v in verification.remaining.items())
             + f"; scanned {scan.files} file(s), {scan.size} byte(s), {scan.versions} table version(s) for "
             f"{scan.fingerprints} fingerprint(s): found {sum(scan.found.values())}")
    require_erased(verification)
    if not scan.clean:
        raise ErasureIncomplete(f"erasure incomplete: the verification scan still found the erased documents "
                                f"in {scan.found}", remaining=scan.found)
    _require_something_removed(plan)
    receipt = _receipt(plan, scan)
    target.files.write_bytes_atomic(json.dumps(receipt.to_dict()).encode(),
                                    *receipt_parts(request.space_id, request.task_id))
    _finish(target, request)
    _done(after_step, "verify")
    return receipt


def _finish(target: ErasureTarget, request: ErasureRequest) -> None:
    """The plan holds content hashes: it goes once the receipt is written; so do the request and the fence."""
    drop_plan(target, request)
    finish_request(target, request)
    take_down(target.files, request.space_id, request.task_id)


def _cancel_tasks(target: ErasureTarget, plan: ErasurePlan) -> int:
    """Tasks whose batches the erasure removed end ``cancelled``; for a whole space, so does every task
    of the space still waiting or running (none is left queued without its batch)."""
    zone = LandingZone(target.files)
    cancelled = sum(zone.cancel_task(batch_id, plan.request.task_id) for batch_id in sorted(plan.batches))
    if plan.whole_space:
        for status in ("queued", "running"):
            page = zone.list_tasks(status, limit=1_000_000)
            cancelled += sum(zone.cancel_task(t.task_id, plan.request.task_id) for t in page.tasks
                             if t.space_id == plan.request.space_id and t.kind != ERASURE_TASK_KIND)
    return cancelled


_REMOVALS = ("rows_deleted", "intermediate_rows_removed", "landing_items_removed", "landing_files_removed",
             "landing_files_rewritten", "blobs_removed", "exports_rewritten", "shared_files_kept")


def _require_something_removed(plan: ErasurePlan) -> None:
    """A plan that found documents but removed no row or file of them is a failure to explain."""
    totals: dict[str, int] = {}
    for counts in plan.completed.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    if plan.row_ids and not totals.get("rows_deleted"):
        raise ErasureIncomplete("erasure found rows to erase but deleted none", documents=len(plan.found_doc_ids))
    if plan.landed_files and not (totals.get("landing_files_removed") or totals.get("landing_files_rewritten")):
        raise ErasureIncomplete("erasure found landed files to erase but removed none",
                                files=len(plan.landed_files))
    found = plan.doc_ids or plan.conversation_sources
    if not plan.whole_space and found and not any(totals.get(k) for k in _REMOVALS):
        raise ErasureIncomplete("erasure named documents but found no row, item or file of them to remove",
                                documents=len(plan.doc_ids), conversations=len(plan.conversation_sources))


def _done(hook: StepHook | None, name: Step) -> None:
    if hook is not None:
        hook(name)


def _receipt(plan: ErasurePlan, scan: ScanResult) -> ErasureReceipt:
    """The counts of every step, summed over the attempts that carried it out, and what the scan read."""
    totals: dict[str, int] = {}
    for counts in plan.completed.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    request = plan.request
    return ErasureReceipt(task_id=request.task_id, space_id=request.space_id, scope=request.scope,
                          name_count=len(request.names), name_hashes=tuple(name_hash(n) for n in request.names),
                          documents=len(plan.found_doc_ids), **{name: totals.get(name, 0) for name in COUNTED},
                          scanned_files=scan.files, scanned_bytes=scan.size, scanned_versions=scan.versions,
                          fingerprints=scan.fingerprints, found=sum(scan.found.values()), verified=True,
                          completed_at=now_iso())


def read_receipt(target: ErasureTarget, space_id: str, task_id: str) -> dict:
    return json.loads(target.files.read_bytes(*receipt_parts(space_id, task_id)))
