"""Land a small batch and make it queryable in about a second, with Dagster still the record.

A pipeline run costs a sensor tick (up to 30 s), a fresh process that loads the code location and the
model, four steps and the checks: fine for bulk, a minute and a half for one memory an agent wants back in
the same conversation. So a process that already holds the model (``nexus serve``, a ``--wait`` command,
the MCP server) ingests a small batch itself, through the pipeline's own functions (``LandingReader``,
``chunk_batches``, ``upsert_records``), so the rows are exactly those a run would write and the next run
finds nothing left to do. The invariants:

* **One runner per request.** The batch id is claimed (``nexus_query.claims``) before the batch is
  published, so no sensor starts a run for it while the claim is live, and a run that reads the space
  meanwhile leaves its task to the holder (it writes the same rows: keyed upserts, LanceDB's conflict
  retries). A holder that dies stops renewing; its claim lapses, the task is still ``queued``, and the
  sweep (or the next run of the space) ingests it: nothing lost, nothing twice.
* **The ledger follows the data.** The task turns ``succeeded`` only after the rows are committed.
* **Dagster is the record.** Each fast write is an ``AssetMaterialization`` of ``space_table`` for the
  space's partition (runless: ``report_runless_asset_event``), with its task id and counts.
* **Bulk still runs.** A batch over ``FAST_MAX_ITEMS`` items is run as a pipeline run in this process
  (``ingest_space_in_process``), tagged with the claim's owner; the server leaves a conversation export over
  ``nexus_query.api.import_body.FAST_MAX_EXPORT_BYTES`` to the sensors' runs.

``land_and_wait`` is the one entry point: ``nexus ingest --wait``, ``nexus cognition import --wait``, the
server's fast path, ``nexus kpi add`` and the agents' store call it (or ``ingest_claimed`` for a batch they
landed themselves under a claim); conversation imports go through ``import_and_wait`` (in process) or
``ServerFastLane.import_export`` (``nexus serve``), which claim the space's dropped files instead.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import pyarrow as pa

from nexus_pipelines.cognition.import_tasks import advance_import_tasks
from nexus_pipelines.common.in_process import dagster_instance
from nexus_pipelines.common.load import upsert_records
from nexus_pipelines.common.tasks import CLAIM_OWNER_TAG, fail_run_tasks, report_tasks
from nexus_pipelines.ingest.chunking import Chunker
from nexus_pipelines.ingest.pipeline import ChunkStats, chunk_batches, chunk_records
from nexus_pipelines.ingest.requests import files_claim_id, record_files_seen
from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.ingest.sources import DOC_SCHEMA, LandingReader
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.claims import ClaimHeld, Claims, Holding, claimed, hold_claim, new_owner
from nexus_query.cognition.bricks import ImportReceipt, check_export, land_export
from nexus_query.context import RequestContext
from nexus_query.errors import ImportInProgress, NexusError
from nexus_query.landing import LandingZone, Task, landing_zone
from nexus_query.routing import RoutingRegistry
from nexus_query.store.filters import sql_string

FAST_MAX_ITEMS = 64  # batches up to this many items are ingested in process; larger ones by a pipeline run
FAST_MAX_CHARS = 400_000  # ... and up to this much text
IMPORT_CLAIM_WAIT_SECONDS = 900.0  # how long a --wait import waits for another importer of the space
SERVER_IMPORT_CLAIM_WAIT_SECONDS = 60.0  # ... and a request to the server, which then answers 409
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Landed:
    """How a request ended: its task as it is now, and how it was run (``fast``: in this process without
    a run; ``run``: a pipeline run in this process)."""

    task: Task
    path: Literal["fast", "run"]
    run_id: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.task.status == "succeeded"


def land_and_wait(ctx: RequestContext, space_id: str, items: Sequence[Mapping[str, Any]] = (), *,
                  land: Callable[[str], Task] | None = None, registry: RoutingRegistry | None = None,
                  instance: dg.DagsterInstance | None = None, progress: bool = False) -> Landed:
    """Land one batch in ``space_id`` and return once it is queryable (task ``succeeded``) or its task
    failed: the one call for "store this and let me find it" (``nexus ingest --wait``, the agents' store).

    The batch is ``items`` (the ingest API's items), or whatever ``land(batch_id)`` lands under the id it
    is given (``nexus ingest`` lands files that way) and returns the task of. Either way the id is
    claimed before anything is published, so a running daemon never runs the batch too. Small batches
    are embedded and upserted here with the process's warm model and recorded in Dagster (``instance``:
    the one at ``$DAGSTER_HOME``, else ephemeral) as a ``space_table`` materialization of the space;
    larger ones run the space's pipeline here. Bad items raise as ``LandingZone.land_batch`` does,
    before anything is stored."""
    zone = landing_zone(ctx, registry)
    with claimed(zone.files) as holding:
        batch_id = holding.claim.request_id
        task = land(batch_id) if land is not None else zone.land_batch(space_id, items, batch_id=batch_id)
        return ingest_claimed(ctx, space_id, task.task_id, holding, registry=registry, instance=instance,
                              progress=progress)


def ingest_claimed(ctx: RequestContext, space_id: str, task_id: str, holding: Holding, *,
                   registry: RoutingRegistry | None = None, instance: dg.DagsterInstance | None = None,
                   progress: bool = False, exports: Sequence[str] = ()) -> Landed:
    """Ingest a landed request this process holds the claim on (``holding``): an ingest batch
    (``task_id`` is its batch id) or, with ``exports``, a conversation import's landed exports."""
    if instance is None:
        with dagster_instance() as own:
            return ingest_claimed(ctx, space_id, task_id, holding, registry=registry, instance=own,
                                  progress=progress, exports=exports)
    zone = landing_zone(ctx, registry)
    key = SpaceKey(ctx.tenant_id, ctx.project_id, space_id)
    batch_id = None if exports else task_id
    if batch_id is not None and not is_small(zone.read_batch(space_id, batch_id)):
        return _run_pipeline(zone, key, task_id, holding, instance, progress)
    # The task stays queued until the rows are in (a second or so): a holder that dies leaves it queued,
    # which is what the sensors pick up once its claim has lapsed.
    run_id = f"fast-{uuid.uuid4().hex}"
    try:
        counts = ingest_documents(NexusResource(environment=ctx.environment), key, zone,
                                  batch_id=batch_id, exports=exports)
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the task says so (and can be retried)
        log.exception("fast ingest of task %s failed", task_id)
        error = (exc.message if isinstance(exc, NexusError) else f"{type(exc).__name__}: {exc}")[:2000]
        _settle(zone, task_id, bool(exports), "failed", run_id, error=error)
        return Landed(zone.read_task(task_id), "fast", run_id, error=error)
    record_materialization(instance, key, task_id, counts)
    _settle(zone, task_id, bool(exports), "succeeded", run_id, counts=counts)
    if exports:
        record_files_seen(zone, space_id)
    return Landed(zone.read_task(task_id), "fast", run_id, counts)


def is_small(batch: Mapping[str, Any]) -> bool:
    items = batch.get("items", [])
    return (not batch.get("files") and len(items) <= FAST_MAX_ITEMS
            and sum(len(item.get("content") or "") for item in items) <= FAST_MAX_CHARS)


def ingest_documents(nexus: NexusResource, key: SpaceKey, zone: LandingZone, *, batch_id: str | None = None,
                     exports: Sequence[str] = ()) -> dict[str, int]:
    """Chunk, embed and upsert the documents of one batch (and/or landed exports) into the space, as a
    run would write them; a document that got shorter loses its tail chunks. Returns the counts."""
    provider = nexus.provider_for(key)
    reader = LandingReader(zone, key.space_id)
    docs = list(reader.documents_of(batch_id, exports))
    chunker = Chunker.for_provider(provider)
    batches = list(chunk_batches([pa.RecordBatch.from_pylist(docs, schema=DOC_SCHEMA)], chunker, ChunkStats()))
    records = [record for batch in batches for record in chunk_records(batch)]
    space = nexus.open_space(key, provider.info)
    deleted = _drop_tails(space, {doc["doc_id"] for doc in docs}, {r.row_id for r in records})
    stats = upsert_records(space, nexus.owner_context(key), records, provider)
    return {"documents": len(docs), "rows": space.count(), "rows_added": stats.inserted,
            "rows_updated": stats.updated, "rows_deleted": deleted, "rows_skipped": stats.unchanged,
            "embedded": stats.embedded, "table_version": stats.version or space.version}


def _drop_tails(space: Any, sources: set[str], keep: set[str]) -> int:
    """Rows of ``sources`` that the new versions no longer have (a document that got shorter)."""
    if not sources or space.count() == 0:
        return 0
    where = f"source IN ({', '.join(sql_string(s) for s in sorted(sources))})"
    stored = space.table.search().where(where).select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    return space.delete_ids([i for i in stored if i not in keep])


def record_materialization(instance: dg.DagsterInstance, key: SpaceKey, task_id: str,
                           counts: Mapping[str, int]) -> None:
    """The fast write in Dagster's record: a ``space_table`` materialization of the space's partition."""
    if not instance.has_dynamic_partition(TENANT_SPACES, key.partition_key):
        instance.add_dynamic_partitions(TENANT_SPACES, [key.partition_key])
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="space_table", partition=key.partition_key,
        description="ingested in process by the fast path (no run)",
        metadata={**counts, "task_id": task_id, "path": "fast", "dagster/row_count": counts["rows"]}))


def _settle(zone: LandingZone, task_id: str, is_import: bool, status: Literal["succeeded", "failed"],
            run_id: str, counts: Mapping[str, int] | None = None, error: str | None = None) -> None:
    task_counts = {k: v for k, v in (counts or {}).items() if k != "table_version"}
    if is_import:
        advance_import_tasks(zone, [task_id], status, log, run_id=run_id, counts=task_counts, error=error)
    else:
        report_tasks(zone, [task_id], status, log, run_id=run_id, counts=task_counts, error=error)


def _run_pipeline(zone: LandingZone, key: SpaceKey, task_id: str, holding: Holding, instance: dg.DagsterInstance,
                  progress: bool) -> Landed:
    """A bulk batch: the space's pipeline run, here, under this process's claim."""
    outcome = ingest_space_in_process(key, instance=instance, task_id=task_id, progress=progress,
                                      tags={CLAIM_OWNER_TAG: holding.claim.owner})
    if not outcome.success:  # what ingest_failure_sensor does for a daemon's run
        fail_run_tasks(zone, instance, outcome.run_id, {"nexus/task_id": task_id},
                       outcome.error or "the ingest run failed", log)
    return Landed(zone.read_task(task_id), "run", outcome.run_id, outcome.table, outcome.error)


def import_and_wait(ctx: RequestContext, space_id: str, land: Callable[[], ImportReceipt], *,
                    registry: RoutingRegistry | None = None,
                    instance: dg.DagsterInstance | None = None) -> tuple[ImportReceipt, Landed]:
    """A conversation import (``land()`` lands it and returns its ``ImportReceipt``) ingested now: the
    space's dropped files are claimed first, so the sensors start no run for them meanwhile (a second
    ``--wait`` import into the same space waits for the first to finish)."""
    zone = landing_zone(ctx, registry)
    with claimed(zone.files, files_claim_id(space_id), role="import", wait=IMPORT_CLAIM_WAIT_SECONDS) as holding:
        receipt = land()
        return receipt, ingest_claimed(ctx, space_id, receipt.task_id, holding, registry=registry,
                                       instance=instance, exports=[receipt.landed])


class ServerFastLane:
    """``nexus serve``'s fast path: a small API batch is claimed and landed in the request (202 as
    before), then ingested by one writer thread (one writer per process; the model stays warm), which
    records it in ``instance`` and settles its task. Larger batches are left to the sensors."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-fast-ingest")

    def land(self, ctx: RequestContext, space_id: str, items: Sequence[Mapping[str, Any]],
             registry: RoutingRegistry, max_items: int) -> Task | None:
        """The landed task, its ingest queued on the writer; None (nothing done) for a batch too large."""
        if not is_small({"items": items}):
            return None
        zone = landing_zone(ctx, registry)
        claims = Claims(zone.files)
        claim = claims.acquire(uuid.uuid4().hex, new_owner("serve"))
        if claim is None:  # a fresh id is never held; only a failing store gets here
            return None
        holding = claims.hold(claim)
        try:
            task = zone.land_batch(space_id, items, max_items=max_items, batch_id=claim.request_id)
        except BaseException:
            holding.release()
            raise
        self.writer.submit(self._ingest, ctx, space_id, task.task_id, holding, registry)
        return task

    def import_export(self, ctx: RequestContext, space_id: str, file_name: str, data: bytes,
                      registry: RoutingRegistry) -> ImportReceipt:
        """``nexus cognition import`` of one export through the server: the space's dropped files are
        claimed (as ``import_and_wait`` does; waiting a while for another import of the space), the export
        landed in the request (its receipt is the 202's answer), then ingested by the writer thread with the
        warm model, recorded in ``instance`` and its task settled. A bad export raises before anything is
        stored; ``ImportInProgress`` (409) when the space's files stay claimed."""
        zone = landing_zone(ctx, registry)
        counts = check_export(zone.files, space_id, data)
        try:
            holding = hold_claim(zone.files, files_claim_id(space_id), "serve-import", SERVER_IMPORT_CLAIM_WAIT_SECONDS)
        except ClaimHeld:
            raise ImportInProgress(space_id) from None
        try:
            receipt = land_export(zone.files, space_id, file_name, data, counts)
        except BaseException:
            holding.release()
            raise
        self.writer.submit(self._ingest, ctx, space_id, receipt.task_id, holding, registry, [receipt.landed])
        return receipt

    def _ingest(self, ctx: RequestContext, space_id: str, task_id: str, holding: Holding,
                registry: RoutingRegistry, exports: Sequence[str] = ()) -> None:
        with holding:
            ingest_claimed(ctx, space_id, task_id, holding, registry=registry, instance=self.instance,
                           exports=exports)

    def close(self) -> None:
        self.writer.shutdown(wait=True)


def server_fast_lane() -> ServerFastLane | None:
    """The fast lane for ``nexus serve`` when a Dagster instance records it (``$DAGSTER_HOME``, the one
    ``dagster dev`` uses); None without one, so every write still shows in Dagster."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)  # as `dagster dev` and the --wait commands do
    instance = dg.DagsterInstance.get()
    # A fresh instance creates the databases a runless materialization is written to on its first one
    # (about half a second on SQLite): done at start, not in the first write a caller waits for.
    instance.get_records_for_run("", limit=1)  # runless events' run id
    instance.fetch_materializations(dg.AssetKey("space_table"), limit=1)
    return ServerFastLane(instance)

