"""Ingest task status, written where ``GET /nexus/tasks/{task_id}`` reads it (``nexus_query.landing``).

An ingest run reads every batch of its space, not only the one it was started for, so the ledger follows
the items, not the run's tag: ``raw_docs`` claims the task of every batch it reads that is not yet
``succeeded`` (``running``, with its run id) and lists them in its materialization (``claimed_tasks``);
``space_table`` settles them all ``succeeded`` with counts once the space is written and checked; a failed
run (``ingest_failure_sensor``) marks ``failed``, with the root error, only the tasks it still holds, so
a later run that finished them is never contradicted. A run started for a landed batch also carries the
batch's task id in the ``nexus/task_id`` tag (HAZE runs report their own tasks through the same tag).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from nexus_query.claims import Claims
from nexus_query.errors import NotFound
from nexus_query.landing import LandingZone, TaskStatus

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

TASK_TAG = "nexus/task_id"
CLAIM_OWNER_TAG = "nexus/claim_owner"  # a run started by a claim's holder (--wait) carries its name
CLAIMED_METADATA = "claimed_tasks"
Log = logging.Logger | logging.LoggerAdapter


def report_task(zone: LandingZone, tags: Mapping[str, str], status: TaskStatus, log: Log,
                *, run_id: str, counts: Mapping[str, int] | None = None, error: str | None = None) -> None:
    """Move the run's own task (if it has one) to ``status``; a missing task record is logged, not fatal:
    the data was written, only the report is lost."""
    task_id = tags.get(TASK_TAG)
    if task_id:
        report_tasks(zone, [task_id], status, log, run_id=run_id, counts=counts, error=error)


def report_tasks(zone: LandingZone, task_ids: Sequence[str], status: TaskStatus, log: Log, *, run_id: str,
                 counts: Mapping[str, int] | None = None, error: str | None = None) -> None:
    """``running`` claims, ``succeeded`` settles, ``failed`` fails (``LandingZone``'s guarded moves)."""
    for task_id in dict.fromkeys(task_ids):
        try:
            if status == "running":
                zone.claim_task(task_id, run_id)
            elif status == "succeeded":
                zone.settle_task(task_id, run_id, counts)
            elif status == "failed":
                zone.fail_task(task_id, run_id, error or "run failed")
            else:
                zone.update_task(task_id, status, run_id=run_id)
        except NotFound:
            log.warning("task %s has no record in the landing zone; status %r not written", task_id, status)


def claim_landed_tasks(zone: LandingZone, space_id: str, run_id: str, log: Log,
                       claim_owner: str | None = None) -> list[str]:
    """Claim the task of every batch now in the space's landing zone that is not yet ``succeeded`` (the
    run reads them all); a batch whose task record was lost gets it back first. A batch someone else
    holds a live claim on (``nexus_query.claims``: the fast path, a ``--wait`` command; ``claim_owner``
    is this run's own) is left to its holder: the run writes its rows all the same (keyed, idempotent),
    but its task is the holder's to settle. Returns the claimed ids."""
    claims = Claims(zone.files)
    claimed = []
    for batch_id in zone.batch_ids(space_id):
        if claims.held_by_other(batch_id, claim_owner):
            continue
        try:
            if zone.task_of_batch(space_id, batch_id).status != "succeeded":
                claimed.append(batch_id)
        except (NotFound, ValueError) as exc:
            log.warning("batch %s: its task cannot be read (%s); not claimed", batch_id, exc)
    report_tasks(zone, claimed, "running", log, run_id=run_id)
    return claimed


def claimed_in_run(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The task ids ``raw_docs`` claimed in run ``run_id`` (from its materialization's metadata)."""
    claimed: list[str] = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.asset_materialization
        if materialization is not None and materialization.asset_key == dg.AssetKey("raw_docs"):
            value = materialization.metadata.get(CLAIMED_METADATA)
            if value is not None and isinstance(value.value, list):  # raw_docs writes a JSON list of ids
                claimed += [str(task_id) for task_id in value.value]
    return claimed


def root_cause(error: SerializableErrorInfo) -> str:
    """The user's error, not Dagster's "error occurred while executing op" wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message


def run_error(step_failures: Sequence[dg.DagsterEvent], fallback: str | None) -> str:
    """The first failed step's root error, else ``fallback`` (the run failure's message)."""
    errors = [root_cause(error) for error in (event.step_failure_data.error for event in step_failures)
              if error is not None]
    return (errors[0] if errors else fallback or "run failed").strip()[:2000]


def fail_run_tasks(zone: LandingZone, instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str], error: str,
                   log: Log) -> None:
    """A failed run: the tasks it still holds (its own and those its ``raw_docs`` claimed) are failed."""
    tasks = claimed_in_run(instance, run_id) + [t for t in [tags.get(TASK_TAG)] if t]
    report_tasks(zone, tasks, "failed", log, run_id=run_id, error=error)
