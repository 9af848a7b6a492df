"""Commits that lose to a concurrent writer: recognised, and run again from the table's latest version.

Lance resolves most commit conflicts itself (``MergeResult.num_attempts`` counts its tries). What it gives
up on (a concurrent overwrite, two index builds at once, too much contention) is run again here, a bounded
number of times with jittered backoff: keyed upserts, deletes by key and index builds that first look for
the index are idempotent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from nexus_query.errors import WriteConflict

if TYPE_CHECKING:
    import lancedb

COMMIT_ATTEMPTS = 8
BACKOFF_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
_CONFLICT_MARKERS = ("commit conflict", "incompatible transaction", "too many concurrent writ")
T = TypeVar("T")


def is_commit_conflict(exc: BaseException) -> bool:
    return isinstance(exc, (RuntimeError, OSError)) and any(m in str(exc).lower() for m in _CONFLICT_MARKERS)


def retry_commit(table: lancedb.table.Table, operation: Callable[[], T],
                 attempts: int = COMMIT_ATTEMPTS) -> tuple[T, int]:
    """``operation()``'s result and how many commit conflicts made it run again. Between tries: a random
    wait up to an exponentially growing cap (full jitter, so colliding writers spread out), then the
    table's latest version. After ``attempts`` tries: ``WriteConflict``."""
    attempt = 1
    while True:
        try:
            return operation(), attempt - 1
        except (RuntimeError, OSError) as exc:
            if not is_commit_conflict(exc):
                raise
            if attempt >= attempts:
                raise WriteConflict(f"gave up after {attempts} commit conflicts on the space's table",
                                    attempts=attempts) from exc
            time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** attempt)))
            table.checkout_latest()
            attempt += 1
