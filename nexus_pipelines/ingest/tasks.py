"""Ingest task status, written where ``GET /nexus/tasks/{task_id}`` reads it (``nexus_query.landing``).

A run started for a landed batch carries the batch's task id in the ``nexus/task_id`` tag:
queued (when the batch landed) → running (``raw_docs`` starts) → succeeded with counts
(``space_table`` wrote and checked the space) or failed with the error (``ingest_failure_sensor``).
"""

from __future__ import annotations

import logging
from typing import Mapping

from nexus_query.errors import NotFound
from nexus_query.landing import LandingZone, TaskStatus

TASK_TAG = "nexus/task_id"


def report_task(zone: LandingZone, tags: Mapping[str, str], status: TaskStatus, log: logging.Logger | logging.LoggerAdapter,
                *, run_id: str, counts: Mapping[str, int] | None = None, error: str | None = None) -> None:
    """Move the run's task (if it has one) to ``status``; a missing task record is logged, not fatal:
    the data was written, only the report is lost."""
    task_id = tags.get(TASK_TAG)
    if not task_id:
        return
    try:
        zone.update_task(task_id, status, counts=counts, error=error, run_id=run_id)
    except NotFound:
        log.warning(f"task {task_id} has no record in the landing zone; status {status!r} not written")
