"""``space_erasure``: one erasure of a space partition, its receipt in the materialization's metadata;
and the sensor that turns ``POST /nexus/spaces/{space_id}/erase`` requests into runs. Thin: the work is
in ``nexus_query.erasure``; this adds the HAZE re-projection (the projection code lives here).

Only ids, counts and hashes reach Dagster's event log: hashes of the names asked for, counts of what went."""

import os
from collections.abc import Callable
from typing import Literal

import dagster as dg

from nexus_pipelines.common.tasks import TASK_TAG, report_task
from nexus_pipelines.haze.projection import project_space
from nexus_pipelines.haze.reducer import ProjectionParams
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey, space_job, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.claims import Claims
from nexus_query.erasure import ErasureRequest, ErasureTarget, erase_tenant, new_request, run_erasure, tenant_target
from nexus_query.erasure.plan import pending_requests, read_request
from nexus_query.errors import InvalidRequest, MissingRoute
from nexus_query.haze import HazeStore
from nexus_query.paths import GLOBAL_TENANT_DIR

GROUP = "erasure"


class ErasureConfig(dg.Config):
    """A run erases what an accepted request (``task_id``) names; a system run (the global space, an
    operator) may name it here instead. Names are ids, never content."""

    task_id: str = ""
    sources: list[str] = []
    doc_ids: list[str] = []
    whole_space: bool = False
    reason: str = "erasure request"


def erasure_target(nexus: NexusResource, key: SpaceKey) -> ErasureTarget:
    """The partition's space and its owner's stores; the global space's only on this system path."""
    if not key.is_global:
        return tenant_target(key.context(nexus.environment), key.space_id, nexus.registry)
    files = nexus.files(key)
    try:
        projections = nexus.files(key, "nexus_projection_store")
    except MissingRoute:
        projections = files
    return ErasureTarget(space_id=key.space_id, owner=GLOBAL_TENANT_DIR,
                         location=nexus.store.global_location(nexus.environment), files=files,
                         projections=projections)


def config_request(config: ErasureConfig, key: SpaceKey, task_id: str) -> ErasureRequest:
    if config.whole_space:
        return new_request(key.space_id, "space", reason=config.reason, task_id=task_id)
    if config.sources and config.doc_ids:
        raise InvalidRequest("name sources or doc_ids, not both")
    scope: Literal["sources", "doc_ids"] = "sources" if config.sources else "doc_ids"
    return new_request(key.space_id, scope, config.sources or config.doc_ids, reason=config.reason, task_id=task_id)


def remap_space(log: Callable[[str], None]) -> Callable[[ErasureTarget], int]:
    def remap(target: ErasureTarget) -> int:
        space = target.open_table()
        if space is None or space.count() == 0:
            return 0
        result = project_space(space, HazeStore(target.projections), target.space_id, ProjectionParams(),
                               refit=True, log=log)
        return int(result.snapshot_id is not None)
    return remap


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, kinds={"lancedb"})
def space_erasure(context: dg.AssetExecutionContext, config: ErasureConfig,
                  nexus: NexusResource) -> dg.MaterializeResult:
    """Erase documents (or the whole space) from the table and every older version, the full-text index,
    the Parquet intermediates, the landing zone, blobs, HAZE maps and cognition artifacts; verify by
    reading every store again; the receipt (counts only) is this materialization's metadata."""
    key = nexus.space_key(context.partition_key)
    target = erasure_target(nexus, key)
    zone = nexus.landing(key)
    task_id = config.task_id or context.run.tags.get(TASK_TAG) or ""
    request = (read_request(target, key.space_id, task_id) if task_id and not (config.sources or config.doc_ids
               or config.whole_space) else config_request(config, key, task_id or context.run.run_id.replace("-", "")))
    tags = {**context.run.tags, TASK_TAG: request.task_id} if task_id else context.run.tags
    report_task(zone, tags, "running", context.log, run_id=context.run.run_id)
    try:
        receipt = run_erasure(target, request, remap=remap_space(context.log.info), progress=context.log.info,
                              scan_roots=instance_folders(context.instance))
    except Exception as exc:
        report_task(zone, tags, "failed", context.log, run_id=context.run.run_id, error=str(exc)[:2000])
        raise
    report_task(zone, tags, "succeeded", context.log, run_id=context.run.run_id, counts=receipt.counts())
    return dg.MaterializeResult(metadata={
        "task_id": receipt.task_id, "scope": receipt.scope, "name_count": receipt.name_count,
        "name_hashes": dg.MetadataValue.json(list(receipt.name_hashes[:100])),
        **receipt.counts(), "verified": receipt.verified, "completed_at": receipt.completed_at})


def instance_folders(instance: dg.DagsterInstance) -> list[str]:
    """The instance's local folder (SQLite event log and run storage, compute logs), for the scan."""
    root = getattr(instance, "root_directory", None)
    return [root] if isinstance(root, str) and os.path.isdir(root) else []


erase_job = space_job("erase_space", [space_erasure],
                      "Erase documents or a whole space, verify, and record a receipt. Started by "
                      "erasure_request_sensor for POST .../erase and DELETE /nexus/spaces/{space_id}.")


def erasure_run_config(task_id: str) -> dict:
    return {"ops": {"space_erasure": {"config": {"task_id": task_id}}}}


@dg.sensor(job=erase_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def erasure_request_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """Each waiting erasure request becomes one run (run key = its task id, so none runs twice); one that
    a ``nexus erase --wait`` holds a live claim on (``nexus_query.claims``) is left to it."""
    requests, partitions = [], set()
    for tenant, project, files in nexus.tenant_areas():
        claims = Claims(files)
        for request in pending_requests(files):
            if claims.held_by_other(request.task_id):
                continue
            try:
                key = SpaceKey(tenant, project, request.space_id)
            except InvalidRequest:
                context.log.warning("ignoring an erasure request for space %r of %s", request.space_id, tenant)
                continue
            partitions.add(key.partition_key)
            requests.append(dg.RunRequest(run_key=f"erase:{request.task_id}", partition_key=key.partition_key,
                                          run_config=erasure_run_config(request.task_id),
                                          tags={**key.run_tags, TASK_TAG: request.task_id}))
    new = sorted(partitions - set(context.instance.get_dynamic_partitions(TENANT_SPACES)))
    return dg.SensorResult(run_requests=requests,
                           dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [])


class TenantErasureConfig(dg.Config):
    tenant_id: str
    reason: str = "tenant erased"


@dg.op(out=dg.Out(dg.Nothing))
def erase_tenant_op(context: dg.OpExecutionContext, config: TenantErasureConfig, nexus: NexusResource):
    """Every space of every project of the tenant, erased and verified; then the tenant's files."""
    receipt = erase_tenant(config.tenant_id, nexus.environment, nexus.registry, progress=context.log.info)
    totals: dict[str, int] = {}
    for space in receipt.spaces:
        for name, value in space.counts().items():
            totals[name] = totals.get(name, 0) + value
    return dg.Output(None, metadata={"tenant_id": receipt.tenant_id, "spaces": len(receipt.spaces),
                                     "projects": dg.MetadataValue.json(list(receipt.projects)), **totals,
                                     "files_removed": receipt.files_removed,
                                     "table_folders_removed": receipt.table_folders_removed,
                                     "verified": receipt.verified})


@dg.job(description="System job: erase a whole tenant (no API reaches it). "
                    "Config: ops.erase_tenant_op.config.tenant_id.")
def erase_tenant_job():
    erase_tenant_op()
