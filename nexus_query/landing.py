"""The landing zone: where accepted ingest batches wait for the pipeline, and where tasks report.

Layout inside the tenant's ``nexus_blob_store`` area (``{bucket}/{prefix}/{tenant}/{project}/``):

    landing/{space_id}/batches/{batch_id}.json   one accepted API batch (written atomically, once)
    landing/{space_id}/files/...                 files dropped in directly (.txt .md .jsonl, images
                                                 with a sidecar ``<name>.json``, chat exports)
    tasks/{task_id}.json                         a task's status, read by GET /nexus/tasks/{task_id}

A batch's ``task_id`` is its ``batch_id``: one batch, one run, one task. Once a batch (or a file dropped
through the API) is durably written, an entry goes into the environment's inbox (``nexus_query.inbox``),
which is how the landing sensor finds new work without listing every tenant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Sequence

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest, NotFound
from nexus_query.inbox import EntryKind, Inbox, inbox_for
from nexus_query.paths import TenantFiles

GLOBAL_SPACE_ID = "global"  # reserved: names the shared global space, never a tenant space
MAX_ITEMS_PER_BATCH = 1000
MAX_CONTENT_CHARS = 1_000_000
INGEST_TYPES = ("text", "image")
TaskStatus = Literal["queued", "running", "succeeded", "failed"]
log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_items(files: TenantFiles, items: Any) -> list[dict[str, Any]]:
    """Check every item before anything is accepted; returns normalized items."""
    if not isinstance(items, list) or not items:
        raise InvalidRequest("items must be a non-empty list", field="items")
    if len(items) > MAX_ITEMS_PER_BATCH:
        raise InvalidRequest(f"at most {MAX_ITEMS_PER_BATCH} items per batch", field="items")
    normalized = []
    for index, item in enumerate(items):
        def bad(message: str, field_name: str) -> InvalidRequest:
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
            if not files.exists(blob_path):
                raise bad(f"blob {blob_path!r} does not exist in the tenant's blob store", "blob_path")
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

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class LandingZone:
    """A tenant's landing zone and task records. Built from a context, so it only sees that tenant."""

    def __init__(self, files: TenantFiles, inbox: Inbox | None = None) -> None:
        self.files = files
        self.inbox = inbox  # None: nothing is announced (system runs; the sweep still finds what landed)

    def land_batch(self, space_id: str, items: Sequence[Mapping[str, Any]]) -> Task:
        """Validate and durably write a batch; the returned task is ``queued`` for the pipeline."""
        validate_id(space_id, "space_id")
        if space_id == GLOBAL_SPACE_ID:
            raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")
        normalized = validate_items(self.files, list(items) if isinstance(items, (list, tuple)) else items)
        batch_id = uuid.uuid4().hex
        stamp = now_iso()
        task = Task(task_id=batch_id, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                    counts={"items": len(normalized)})
        # The task record goes first: a batch visible to the sensor always has a task to report to.
        self.write_task(task)
        body = {"batch_id": batch_id, "task_id": batch_id, "space_id": space_id, "received_at": stamp,
                "items": normalized}
        self.files.write_bytes_atomic(json.dumps(body).encode(), *self.batch_parts(space_id, batch_id))
        self.announce(space_id, "batch", batch_id)
        return task

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

    def write_task(self, task: Task) -> None:
        self.files.write_bytes_atomic(json.dumps(task.to_dict()).encode(), "tasks", f"{task.task_id}.json")

    def update_task(self, task_id: str, status: TaskStatus, *, counts: Mapping[str, int] | None = None,
                    error: str | None = None, run_id: str | None = None) -> Task:
        task = self.read_task(task_id)
        task.status, task.updated_at = status, now_iso()
        task.counts.update(counts or {})
        task.error = error if status == "failed" else None
        task.run_id = run_id or task.run_id
        self.write_task(task)
        return task

    def read_task(self, task_id: str) -> Task:
        try:
            validate_id(task_id, "task_id")
        except InvalidRequest:
            raise NotFound("no such task", task_id=str(task_id)[:80]) from None
        try:  # one read, no existence probe first: sensors read a task per landed batch
            return Task(**json.loads(self.files.read_bytes("tasks", f"{task_id}.json")))
        except FileNotFoundError:
            raise NotFound("no such task", task_id=task_id) from None


def landing_zone(ctx: RequestContext, registry=None) -> LandingZone:
    from nexus_query.routing import RoutingRegistry

    registry = registry or RoutingRegistry.default()
    return LandingZone(TenantFiles.for_tenant(registry.blob_route(ctx), ctx), inbox_for(registry, ctx.environment))
