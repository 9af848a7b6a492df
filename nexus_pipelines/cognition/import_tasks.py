"""The tasks of conversation imports (``nexus cognition import``), moved on by the ingest run that reads
their exports: whether the landing sensor started that run or ``--wait`` ran it in process.

A landed export stays in the landing zone (the latest version of each conversation wins at every run), so
later runs read it again; they leave a task that is already settled alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from nexus_query.errors import NotFound
from nexus_query.landing import LandingZone, TaskStatus

METADATA_KEY = "import_tasks"  # raw_docs lists the import tasks whose exports it read under this key
_MOVES: dict[TaskStatus, tuple[str, ...]] = {"running": ("queued",), "succeeded": ("queued", "running"),
                                             "failed": ("queued", "running")}


def advance_import_tasks(zone: LandingZone, task_ids: Iterable[str], status: TaskStatus,
                         log: logging.Logger | logging.LoggerAdapter, *, run_id: str,
                         counts: Mapping[str, int] | None = None, error: str | None = None) -> list[str]:
    """Move each unsettled import task in ``task_ids`` to ``status``; returns the ones moved."""
    moved = []
    for task_id in task_ids:
        try:
            if zone.read_task(task_id).status not in _MOVES[status]:
                continue
            zone.update_task(task_id, status, counts=counts, error=error, run_id=run_id)
            moved.append(task_id)
        except NotFound:
            log.warning("import task %s has no record in the landing zone; status %r not written", task_id, status)
    return moved
