"""Quotas that count what is queued and what it becomes, so no one walks past them.

- ``max_rows_per_space``: at admission, the space's rows plus every waiting batch's estimated rows plus
  this batch's (``landing.estimated_rows``: chunking turns a long item into many rows); at write time, the rows the
  space would hold (``check_rows_at_write``). A batch refused there has its task ``failed`` with
  ``nexus.quota_exceeded`` (``refused_for_quota``), and later runs leave it out until it is retried.
- ``max_landing_bytes_per_day``: bytes a tenant lands per UTC day. Each landing adds an empty file named
  for its size under ``usage/landing/{day}/`` (no counter to race on): the day's total is a listing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from nexus_query.errors import QuotaExceeded
from nexus_query.landing import LandingZone, Task
from nexus_query.store import SpaceTable
from nexus_query.store.filters import sql_string

QUOTA_RETRY_SECONDS = 3600  # a full space frees up only when rows are erased: try again in an hour
USAGE_DIR = ("usage", "landing")


def refused_for_quota(task: Task) -> bool:
    """A task failed by the write-time row quota: its batch stays out of runs until it is retried."""
    return task.status == "failed" and QuotaExceeded.code in (task.error or "")


def waiting_rows(zone: LandingZone, space_id: str) -> int:
    """Estimated rows of the space's batches not yet written (tasks ``queued`` or ``running``)."""
    waiting = [t for state in ("queued", "running") for t in zone.list_tasks(state, limit=10**9).tasks]
    return sum(t.estimated_rows if t.estimated_rows is not None else t.counts.get("items", 0) for t in waiting
               if t.kind == "ingest" and t.space_id == space_id)


def check_rows_at_admission(quota: int, zone: LandingZone, space_id: str, rows: int, incoming: int) -> None:
    """429 when the space's ``rows``, what waits to be written and this batch's ``incoming`` rows pass
    ``quota``."""
    waiting = waiting_rows(zone, space_id)
    if rows + waiting + incoming > quota:
        raise QuotaExceeded(f"space {space_id!r} holds {rows} rows and {waiting} more wait to be written; this "
                            f"batch would add about {incoming}; its quota is {quota}",
                            retry_after=QUOTA_RETRY_SECONDS, rows=rows, waiting_rows=waiting,
                            max_rows_per_space=quota)


def check_rows_at_write(quota: int | None, space: SpaceTable, source_rows: int, owned_types: Sequence[str]) -> None:
    """Before a run writes anything: the space would hold its ``source_rows`` plus the rows other writers
    own (types not in ``owned_types``, e.g. KPI facts). Over ``quota``: ``QuotaExceeded``, nothing written."""
    if quota is None:
        return
    owned = ", ".join(sql_string(t) for t in owned_types)
    others = int(space.table.count_rows(f"type NOT IN ({owned})")) if space.count() else 0
    if source_rows + others > quota:
        raise QuotaExceeded(f"{QuotaExceeded.code}: the space would hold {source_rows + others} rows; its quota "
                            f"is {quota}; nothing was written (erase rows, then retry the task)",
                            retry_after=QUOTA_RETRY_SECONDS, max_rows_per_space=quota)


def landed_bytes_today(zone: LandingZone, now: datetime | None = None) -> int:
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return sum(int(path.rsplit("/", 1)[-1].split("~", 1)[0]) for path in zone.files.list(*USAGE_DIR, day))


def check_landing_bytes(limit: int | None, zone: LandingZone, incoming: int, now: datetime | None = None) -> None:
    """429 (``Retry-After``: the next UTC midnight) when today's landed bytes plus ``incoming`` pass ``limit``."""
    if limit is None:
        return
    now = now or datetime.now(UTC)
    landed = landed_bytes_today(zone, now)
    if landed + incoming > limit:
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        raise QuotaExceeded(f"the tenant landed {landed} bytes today; {incoming} more would pass its daily "
                            f"quota of {limit}", retry_after=max(1, math.ceil((midnight - now).total_seconds())),
                            landed_bytes_today=landed, max_landing_bytes_per_day=limit)


def record_landing(zone: LandingZone, size: int, now: datetime | None = None) -> None:
    """Count ``size`` landed bytes into today's total (after the batch is durably written)."""
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    zone.files.write_bytes_atomic(b"", *USAGE_DIR, day, f"{size}~{uuid.uuid4().hex}")
