"""``space_maintenance``: each space compacted, indexed and cleaned up, nightly, many spaces per run, only for
the spaces written since (``nexus_pipelines.changes``). Thin: the work is ``optimize.optimize_space``."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.changes import changed_after, changed_since_done
from nexus_pipelines.common.batches import PartitionDone, run_partitions
from nexus_pipelines.maintenance.optimize import OptimizeReport, default_retention, optimize_space
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey, changed_range_run_requests, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.errors import SpaceNotFound
from nexus_query.store import SpaceTable

GROUP = "maintenance"
MAINTENANCE_BATCH_SIZE = 50  # spaces per run: optimizing a small space takes well under a second
BATCH_TAG = "nexus/maintenance_batch"
# The assets whose runs write rows into a space's table.
WRITING_ASSETS = (dg.AssetKey("space_table"), dg.AssetKey("kpi_fact_docs"))


class MaintenanceConfig(dg.Config):
    retention_hours: float | None = Field(
        None, description="Keep versions this long after they stopped being the latest; default: the cursor "
                          "lifetime (cursor.ttl_seconds) plus an hour. Shorter than the cursor lifetime is refused.")


def open_existing(nexus: NexusResource, key: SpaceKey) -> SpaceTable | None:
    """The space's table, writable (the global one through the system path), or None when it has none yet
    (or one that records no embedder: every table Nexus creates records its own, so it wrote none there)."""
    try:
        existing = (nexus.store.open_global(nexus.environment) if key.is_global
                    else nexus.store.open(key.context(nexus.environment), key.space_id))
    except SpaceNotFound:
        return None
    embedder = existing.embedder
    return nexus.open_space(key, embedder) if embedder is not None else None


@dg.asset(
    partitions_def=tenant_spaces,
    group_name=GROUP,
    deps=["space_table"],
    kinds={"lancedb"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAINTENANCE_BATCH_SIZE),
    description="Each space's LanceDB table compacted, its indexes refreshed (created once the space has grown "
                "into them) and versions older than the retention removed; a version stays readable for the "
                "retention after it stopped being the latest, so every live cursor keeps working.",
)
def space_maintenance(context: dg.AssetExecutionContext, config: MaintenanceConfig,
                      nexus: NexusResource) -> dg.MaterializeResult:
    ttl = nexus.registry.config.cursor.ttl_seconds
    retention = timedelta(hours=config.retention_hours) if config.retention_hours is not None else None

    def optimize(partition_key: str) -> PartitionDone[OptimizeReport]:
        space = open_existing(nexus, SpaceKey.parse(partition_key))
        if space is None:
            return PartitionDone(None, {"status": "no table yet"})
        report = optimize_space(space, ttl, retention)
        return PartitionDone(report, {"status": "optimized", **report.as_metadata()},
                             f"{report.fragments_before} -> {report.fragments_after} fragments, "
                             f"{report.versions_removed} old version(s) removed in {report.seconds:.2f}s")

    outcome = run_partitions(context, optimize)
    reports = outcome.results
    table = "\n".join(["| space | rows | fragments | versions kept | removed | indexes created | seconds |",
                       "|---|---|---|---|---|---|---|",
                       *(f"| {k} | {r.rows} | {r.fragments_before} → {r.fragments_after} | {r.versions_kept} | "
                         f"{r.versions_removed} | {', '.join(r.indexes_created) or '-'} | "
                         f"{r.seconds:.2f} |" for k, r in reports.items())])
    if outcome.all_failed:
        raise dg.Failure(f"every space of the run failed: {outcome.failed}")
    return dg.MaterializeResult(metadata={
        "spaces_in_run": outcome.partitions, "optimized": len(reports),
        "failed": dg.MetadataValue.json(outcome.failed),
        "versions_removed": sum(r.versions_removed for r in reports.values()),
        "spaces": dg.MetadataValue.md(table if reports else "_no space had a table yet_"),
    })


space_maintenance_job = dg.define_asset_job(
    "space_maintenance_job", selection=[space_maintenance],
    description="Compact, re-index and clean up tenant spaces (one partition, or a range from the schedule).")


def spaces_due(instance: dg.DagsterInstance, now: datetime, retention: timedelta) -> set[str]:
    """Spaces written since their last maintenance (fragments to compact, rows to index), and spaces written
    within the retention plus a day: the versions that write superseded expire before the next night, and
    that night's run removes them. A space nobody writes is left alone."""
    due = changed_since_done(instance, WRITING_ASSETS, dg.AssetKey("space_maintenance"))
    return due | changed_after(instance, WRITING_ASSETS, now - retention - timedelta(days=1))


@dg.schedule(name="space_maintenance_nightly", cron_schedule="17 3 * * *", execution_timezone="UTC",
             job=space_maintenance_job, default_status=dg.DefaultScheduleStatus.RUNNING, owners=OWNERS,
             description=f"At 03:17 UTC the spaces written since their last maintenance (or recently enough that "
                         f"old versions expire) are optimized, {MAINTENANCE_BATCH_SIZE} spaces per run.")
def space_maintenance_nightly(context: dg.ScheduleEvaluationContext,
                              nexus: NexusResource) -> list[dg.RunRequest] | dg.SkipReason:
    tick = context.scheduled_execution_time
    tick = tick if tick.tzinfo else tick.replace(tzinfo=UTC)
    due = spaces_due(context.instance, tick, default_retention(nexus.registry.config.cursor.ttl_seconds))
    if not due:
        return dg.SkipReason("no space was written since its last maintenance")
    keys = context.instance.get_dynamic_partitions(TENANT_SPACES)
    return changed_range_run_requests(keys, due, MAINTENANCE_BATCH_SIZE, run_key=tick.isoformat(),
                                      batch_tag=BATCH_TAG)
