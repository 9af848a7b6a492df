"""The landing zone: where accepted ingest batches wait for the pipeline, and where tasks report.

Layout inside the tenant's ``nexus_blob_store`` area (``{bucket}/{prefix}/{tenant}/{project}/``):

    landing/{space_id}/batches/{batch_id}.json   one accepted API batch (written atomically, once)
    landing/{space_id}/files/...                 files dropped in directly (.txt .md .jsonl, images
                                                 with a sidecar ``<name>.json``, chat exports)
    tasks/{task_id}.json                         a task's status, read by GET /nexus/tasks/{task_id}
    task-index/{status}/{created}~{task_id}      an empty file per task, under its status: GET /nexus/tasks
                                                 lists these names and reads only the page's tasks

A batch's ``task_id`` is its ``batch_id``: one batch, one task. A batch carries a copy of its task as it
was landed, so neither exists without the other (``LandingZone``). Once a batch (or a file dropped
through the API) is durably written, an entry goes into the environment's inbox (``nexus_query.inbox``),
which is how the landing sensor finds new work without listing every tenant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import typing
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import (
    BlobNotFound,
    GlobalSpaceReadOnly,
    InvalidRequest,
    NotFound,
    SpaceErasing,
    SpaceNotFound,
    TaskGone,
    TaskNotRetryable,
    ValidationFailed,
)
from nexus_query.fence import erasing, refuse_if_erasing
from nexus_query.inbox import EntryKind, Inbox, inbox_for
from nexus_query.paths import TenantFiles

GLOBAL_SPACE_ID = "global"  # reserved: names the shared global space, never a tenant space
MAX_ITEMS_PER_BATCH = 1000
MAX_CONTENT_CHARS = 1_000_000
MAX_TASK_PROBLEMS = 50  # problems a task keeps (the run's log has them all)
# About what one row holds: the chunker cuts at 256 word pieces with 32 overlapping, ~1,000 characters of
# prose (a 200,000-character item became 199 rows).
CHARS_PER_ROW = 1000
INGEST_TYPES = ("text", "image")
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TASK_INDEX = "task-index"
TERMINAL: tuple[TaskStatus, ...] = ("succeeded", "cancelled")  # states no run moves a task out of
MEDIA_DIR = "media"  # the tenant's media area: the only place an image item's blob_path may name
log = logging.getLogger(__name__)


def estimated_rows(items: Sequence[Mapping[str, Any]]) -> int:
    """Rows a batch will become: an image is one, a text one per ``CHARS_PER_ROW`` characters begun."""
    return sum(max(1, -(-len(item.get("content") or "") // CHARS_PER_ROW)) for item in items)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_items(files: TenantFiles, items: Any, max_items: int = MAX_ITEMS_PER_BATCH) -> list[dict[str, Any]]:
    """Check every item before anything is accepted; returns normalized items."""
    if not isinstance(items, list) or not items:
        raise InvalidRequest("items must be a non-empty list", field="items")
    if len(items) > max_items:
        raise InvalidRequest(f"at most {max_items} items per batch", field="items", max_items=max_items)
    normalized = []
    for index, item in enumerate(items):
        def bad(message: str, field_name: str, index: int = index) -> InvalidRequest:
            return InvalidRequest(f"items[{index}]: {message}", field=f"items[{index}].{field_name}",
                                  item_index=index)

        if not isinstance(item, Mapping):
            raise bad("must be an object", "")
        unknown = set(item) - {"type", "content", "blob_path", "metadata", "id"}
        if unknown:
            raise bad(f"unknown fields {sorted(unknown)}", sorted(unknown)[0])
        kind = item.get("type")
        if kind not in INGEST_TYPES:
            raise bad(f"type must be one of {INGEST_TYPES}", "type")
        content = item.get("content")
        if content is not None and (not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS):
            raise bad(f"content must be a string of at most {MAX_CONTENT_CHARS} characters", "content")
        metadata = item.get("metadata")
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise bad("metadata must be an object with string keys", "metadata")
        blob_path = item.get("blob_path")
        if kind == "text":
            if not content or not content.strip():
                raise bad("a text item needs non-empty content", "content")
            if blob_path is not None:
                raise bad("a text item takes content, not blob_path", "blob_path")
        else:
            if not isinstance(blob_path, str) or not blob_path:
                raise bad("an image item needs blob_path", "blob_path")
            blob_path = files.relative(blob_path)  # refuses anything outside the tenant's store
            if not blob_path.startswith(f"{MEDIA_DIR}/"):
                # Task records, receipts, artifacts, landing and pipeline files are never a blob: an
                # erasure of the image would delete them.
                raise ValidationFailed(f"items[{index}]: blob_path must name a file in the tenant's media area "
                                       f"({MEDIA_DIR}/...)", field=f"items[{index}].blob_path", item_index=index)
            if not files.exists(blob_path):
                raise BlobNotFound(f"items[{index}]: blob {blob_path!r} does not exist in the tenant's blob store",
                                   field=f"items[{index}].blob_path", item_index=index)
        doc_id = item.get("id")
        if doc_id is None:
            digest = hashlib.sha256(json.dumps([kind, content, blob_path]).encode()).hexdigest()
            doc_id = f"item-{digest[:24]}"
        else:
            try:
                validate_id(doc_id, "id")
            except InvalidRequest:
                raise bad("id must match [a-z0-9][a-z0-9_-]{0,62}", "id") from None
        normalized.append({"id": doc_id, "type": kind, "content": content, "blob_path": blob_path,
                           "metadata": dict(metadata)})
    return normalized


@dataclass
class Task:
    task_id: str
    space_id: str
    status: TaskStatus
    created_at: str
    updated_at: str
    kind: str = "ingest"
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    attempts: int = 1  # how often the batch was landed: 1, plus one per retry
    problems: list[str] = field(default_factory=list)  # what the run that settled it skipped (refused files)
    estimated_rows: int | None = None  # what an ingest batch will become (``estimated_rows``): row quotas
    reason: str | None = None      # cancelled: why ("erased")
    erasure_id: str | None = None  # cancelled by this erasure

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Task:
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_offset: int | None


class LandingZone:
    """A tenant's landing zone and task records. Built from a context, so it only sees that tenant.

    The ledger's rules: a batch and its task never exist one without the other (the batch, which carries
    its task, is written first; a batch whose task record is missing gets it back from the batch, and a
    task record is only written for a batch that exists). A task moves ``queued`` → ``running`` (claimed
    by a run that read its batch) → ``succeeded`` (that run wrote the space) or ``failed`` (that run
    failed); a run that ingested a task's items settles it whoever started it, and a failure only touches
    tasks the failed run still holds, so a later run's success is never overwritten.
    """

    def __init__(self, files: TenantFiles, inbox: Inbox | None = None) -> None:
        self.files = files
        self.inbox = inbox  # None: nothing is announced (system runs; the sweep still finds what landed)

    def land_batch(self, space_id: str, items: Sequence[Mapping[str, Any]], *,
                   max_items: int = MAX_ITEMS_PER_BATCH, attached_files: Sequence[str] = (),
                   batch_id: str | None = None) -> Task:
        """Validate and durably write a batch; the returned task is ``queued`` for the pipeline.
        ``attached_files``: files already landed in the space's ``files/`` that the task stands for too
        (the run that reads the batch reads them as well); with them, ``items`` may be empty.
        ``batch_id``: an id chosen (and claimed, ``nexus_query.claims``) by a caller that runs the batch
        itself, so no sensor starts a run for it; a fresh one otherwise."""
        validate_id(space_id, "space_id")
        if space_id == GLOBAL_SPACE_ID:
            raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")
        refuse_if_erasing(self.files, space_id)
        items = list(items) if isinstance(items, (list, tuple)) else items
        normalized = validate_items(self.files, items, max_items=max_items) if items or not attached_files else []
        batch_id = validate_id(batch_id, "batch_id") if batch_id else uuid.uuid4().hex
        stamp = now_iso()
        counts = {"items": len(normalized), **({"files": len(attached_files)} if attached_files else {})}
        task = Task(task_id=batch_id, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                    counts=counts, estimated_rows=estimated_rows(normalized) + len(attached_files))
        body = {"batch_id": batch_id, "task_id": batch_id, "space_id": space_id, "received_at": stamp,
                "task": task.to_dict(), "items": normalized,
                **({"files": list(attached_files)} if attached_files else {})}
        self._publish_batch(space_id, batch_id, json.dumps(body).encode())
        self.write_task(task)
        self._withdraw_if_fenced(space_id, batch_id)
        self.announce(space_id, "batch", batch_id)
        return task

    def _withdraw_if_fenced(self, space_id: str, batch_id: str) -> None:
        """The fence went up while the batch was written: take it back and refuse (the erasure may
        already have passed the landing zone)."""
        erasure_id = erasing(self.files, space_id)
        if erasure_id is None:
            return
        for parts in (self.batch_parts(space_id, batch_id), ("tasks", f"{batch_id}.json")):
            if self.files.exists(*parts):
                self.files.fs.rm_file(self.files.path(*parts))
        raise SpaceErasing("the space is being erased; try again when the erasure has ended",
                           space_id=space_id, erasure_id=erasure_id)

    def _publish_batch(self, space_id: str, batch_id: str, data: bytes) -> None:
        """Write (or re-write, for a retry) a batch where the pipeline finds it; one atomic write."""
        self.files.write_bytes_atomic(data, *self.batch_parts(space_id, batch_id))

    def announce(self, space_id: str, kind: EntryKind, ref: str | None = None) -> None:
        """Tell the landing sensor that ``space_id`` has new landed data (after it is durably written).
        A failure here loses nothing: the batch is stored and the reconciliation sweep finds it, so it is
        logged rather than turned into an error for data that was accepted."""
        if self.inbox is None:
            return
        tenant_dir, project_id = self.files.root.rstrip("/").split("/")[-2:]
        try:
            self.inbox.post(tenant_dir, project_id, space_id, kind, ref)
        except Exception as exc:  # noqa: BLE001 - any store failure; the sweep is the fallback
            log.warning("could not write the inbox entry for %s/%s/%s (%s %s): %s; the landing sweep will "
                        "find it", tenant_dir, project_id, space_id, kind, ref, exc)

    @staticmethod
    def batch_parts(space_id: str, batch_id: str) -> tuple[str, ...]:
        return ("landing", space_id, "batches", f"{batch_id}.json")

    def batch_ids(self, space_id: str) -> list[str]:
        prefix = f"landing/{space_id}/batches/"
        return [p[len(prefix):-5] for p in self.files.list("landing", space_id, "batches")
                if p.startswith(prefix) and p.endswith(".json")]

    def read_batch(self, space_id: str, batch_id: str) -> dict[str, Any]:
        return json.loads(self.files.read_bytes(*self.batch_parts(space_id, validate_id(batch_id, "batch_id"))))

    def spaces(self) -> list[str]:
        """Space ids that have anything landed (batches or files)."""
        return sorted({p.split("/")[1] for p in self.files.list("landing") if p.count("/") >= 2})

    # -- task records --------------------------------------------------------------------------------
    def write_task(self, task: Task) -> None:
        self.files.write_bytes_atomic(json.dumps(task.to_dict()).encode(), "tasks", f"{task.task_id}.json")
        self._index_task(task)

    def _index_task(self, task: Task) -> None:
        """The task's index entry under its status, and none under another. Written after the record: a
        crash in between leaves a task without an entry, which the next listing indexes."""
        name = _index_name(task)
        self.files.write_bytes_atomic(b"", TASK_INDEX, task.status, name)
        for state in typing.get_args(TaskStatus):
            if state != task.status:
                self._drop_index_entry(state, name)

    def _drop_index_entry(self, state: str, name: str) -> None:
        try:
            self.files.fs.rm_file(self.files.path(TASK_INDEX, state, name))
        except FileNotFoundError:
            pass

    def task_of_batch(self, space_id: str, batch_id: str) -> Task:
        """The batch's task; a record lost between the batch's write and its own is written back from the
        copy the batch carries."""
        try:
            return self.read_task(batch_id)
        except NotFound:
            body = self.read_batch(space_id, batch_id)
            stamp = body.get("received_at") or now_iso()
            task = Task.from_dict(body.get("task") or {
                "task_id": batch_id, "space_id": space_id, "status": "queued", "created_at": stamp,
                "updated_at": stamp, "counts": {"items": len(body.get("items", []))}})
            self.write_task(task)
            return task

    def update_task(self, task_id: str, status: TaskStatus, *, counts: Mapping[str, int] | None = None,
                    error: str | None = None, run_id: str | None = None,
                    problems: Sequence[str] | None = None) -> Task:
        task = self.read_task(task_id)
        task.status, task.updated_at = status, now_iso()
        task.counts.update(counts or {})
        task.reason = task.erasure_id = None
        task.error = error if status == "failed" else None
        task.run_id = run_id or task.run_id
        if problems is not None:
            task.problems = list(problems)[:MAX_TASK_PROBLEMS]
        self.write_task(task)
        return task

    def claim_task(self, task_id: str, run_id: str) -> bool:
        """A run that read the task's items holds it (``running``); a succeeded task stays as it is."""
        task = self.read_task(task_id)
        if task.status in TERMINAL:
            return False
        if (task.status, task.run_id) != ("running", run_id):
            self.update_task(task_id, "running", run_id=run_id)
        return True

    def settle_task(self, task_id: str, run_id: str, counts: Mapping[str, int] | None = None, *,
                    problems: Sequence[str] = ()) -> bool:
        """``run_id`` ingested the task's items: ``succeeded`` with that run, unless it already was;
        ``problems``: what the run skipped (files whose names it refused, lines it could not read)."""
        task = self.read_task(task_id)
        if task.status in TERMINAL:
            return False
        self.update_task(task_id, "succeeded", counts=counts, run_id=run_id, problems=problems)
        return True

    def fail_task(self, task_id: str, run_id: str, error: str, *, problems: Sequence[str] = ()) -> bool:
        """``run_id`` failed: its tasks that no other run took over or finished are ``failed`` with the
        root error."""
        task = self.read_task(task_id)
        if task.status in TERMINAL or task.run_id not in (None, run_id):
            return False
        self.update_task(task_id, "failed", error=error, run_id=run_id, problems=problems)
        return True

    def retry_task(self, task_id: str) -> Task:
        """Land a failed ingest task's batch again, as it was: the task is ``queued`` (attempt + 1)."""
        task = self.read_task(task_id)
        if task.kind != "ingest":
            raise TaskNotRetryable(f"a {task.kind} task cannot be retried here", task_id=task_id)
        if task.status == "cancelled":
            raise TaskGone("the task's batch was erased; there is nothing to retry", task_id=task_id,
                           reason=task.reason, erasure_id=task.erasure_id)
        refuse_if_erasing(self.files, task.space_id)
        if task.status != "failed":
            raise TaskNotRetryable(f"only a failed task can be retried; this one is {task.status}",
                                   task_id=task_id, status=task.status)
        try:
            data = self.files.read_bytes(*self.batch_parts(task.space_id, task_id))
        except FileNotFoundError:
            raise TaskGone("the task's batch is gone; there is nothing to retry", task_id=task_id) from None
        # The batch is published again first (a fresh write the sensor notices), then the task queued: a
        # crash in between leaves the task failed, and the retry can simply be asked for again.
        self._publish_batch(task.space_id, task_id, data)
        task.status, task.updated_at, task.error = "queued", now_iso(), None
        task.attempts += 1
        self.write_task(task)
        self.announce(task.space_id, "batch", task_id)
        return task

    def cancel_task(self, task_id: str, erasure_id: str) -> bool:
        """The erasure ``erasure_id`` removed the task's batch: the task ends ``cancelled`` (reason
        ``erased``) unless it had already ended. False when it had, or there is no such task."""
        try:
            task = self.read_task(task_id)
        except NotFound:
            return False
        if task.status in TERMINAL:
            return False
        task.status, task.updated_at, task.error = "cancelled", now_iso(), None
        task.reason, task.erasure_id = "erased", erasure_id
        self.write_task(task)
        return True

    def read_task(self, task_id: str) -> Task:
        try:
            validate_id(task_id, "task_id")
        except InvalidRequest:
            raise NotFound("no such task", task_id=str(task_id)[:80]) from None
        try:  # one read, no existence probe first: sensors read a task per landed batch
            return Task.from_dict(json.loads(self.files.read_bytes("tasks", f"{task_id}.json")))
        except FileNotFoundError:
            raise NotFound("no such task", task_id=task_id) from None

    def list_tasks(self, state: TaskStatus | None = None, *, offset: int = 0, limit: int = 50) -> TaskPage:
        """The tenant's tasks, newest first, optionally only those in ``state``; a page of ``limit``. Reads
        the index's names and the page's tasks, not every task (a task found without an entry, written
        before the index or by a writer that crashed in between, is indexed here once)."""
        entries = self._index_entries()
        for path in self.files.list("tasks"):
            name = path.rsplit("/", 1)[-1]
            if path.count("/") == 1 and name.endswith(".json") and name[:-5] not in entries:
                try:
                    task = self.read_task(name[:-5])
                except (NotFound, ValueError, TypeError):
                    continue
                self._index_task(task)
                entries[task.task_id] = (_index_name(task), {task.status})
        listed = sorted(((name, task_id, states) for task_id, (name, states) in entries.items()
                         if state is None or state in states), reverse=True)
        page = []
        for name, task_id, states in listed[offset:offset + limit]:
            try:
                task = self.read_task(task_id)
            except (NotFound, ValueError, TypeError):  # the record is gone: so is its entry
                for old in states:
                    self._drop_index_entry(old, name)
                continue
            if states != {task.status}:  # an entry a concurrent or interrupted writer left behind
                self._index_task(task)
            if state is None or task.status == state:
                page.append(task)
        return TaskPage(page, offset + limit if offset + limit < len(listed) else None)

    def _index_entries(self) -> dict[str, tuple[str, set[str]]]:
        """task id -> (its index entry's name, the states it is listed under)."""
        entries: dict[str, tuple[str, set[str]]] = {}
        for path in self.files.list(TASK_INDEX):
            parts = path.split("/")
            if len(parts) == 3 and "~" in parts[2]:
                task_id = parts[2].rsplit("~", 1)[1]
                entries.setdefault(task_id, (parts[2], set()))[1].add(parts[1])
        return entries


def _index_name(task: Task) -> str:
    """``{created, digits only}~{task_id}``: names sort as tasks were created, then by id."""
    return f"{re.sub(r'[^0-9]', '', task.created_at)}~{task.task_id}"


def landing_zone(ctx: RequestContext, registry=None) -> LandingZone:
    from nexus_query.routing import RoutingRegistry

    registry = registry or RoutingRegistry.default()
    return LandingZone(TenantFiles.for_tenant(registry.blob_route(ctx), ctx), inbox_for(registry, ctx.environment))


def require_space(ctx: RequestContext, space_id: str, registry=None) -> None:
    """Refuse a space that does not exist (no table, nothing landed for it) with ``space_not_found``, so a
    request to change it (an erasure) creates nothing: no task, no request, no Dagster partition."""
    from nexus_query.routing import RoutingRegistry
    from nexus_query.store import SpaceStore

    registry = registry or RoutingRegistry.default()
    store = SpaceStore(registry)
    if store.exists(ctx, space_id) or landing_zone(ctx, registry).files.exists("landing", space_id):
        return
    existing = store.space_ids(ctx)
    there = f"the spaces that exist: {', '.join(existing)}" if existing else "no space exists yet"
    raise SpaceNotFound(f"space {space_id!r} does not exist; {there}", space_id=space_id, existing_spaces=existing)
