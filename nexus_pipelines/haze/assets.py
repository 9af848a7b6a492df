"""``haze_projection``: a map of each space, downstream of ``space_table``; and the sensor that turns
``POST /nexus/spaces/{space_id}/haze/snapshot`` requests into runs. Thin: the work is in ``projection``."""

import base64

import dagster as dg

from nexus_query.errors import InvalidRequest
from nexus_query.haze import HazeStore
from nexus_query.store import SpaceTable
from nexus_pipelines.haze.projection import project_space
from nexus_pipelines.haze.reducer import ProjectionParams
from nexus_pipelines.ingest.tasks import TASK_TAG, report_task
from nexus_pipelines.partitions import SpaceKey, tags_for_partition, tenant_spaces
from nexus_pipelines.resources import NexusResource

GROUP = "haze"
PROJECTION_STORE = "nexus_projection_store"


class HazeConfig(dg.Config):
    """How to map; the defaults suit spaces up to millions of rows (fit on 50k, place the rest)."""

    method: str = "umap"          # umap | tsne
    refit: bool = False           # fit a new map instead of placing new rows into the current one
    seed: int = 42
    pca_components: int = 50
    n_neighbors: int = 15
    min_dist: float = 0.1
    perplexity: float = 30.0
    sample_size: int = 50_000
    cluster_method: str = "auto"  # auto | hdbscan | kmeans

    def params(self) -> ProjectionParams:
        return ProjectionParams(**{k: v for k, v in self.model_dump().items() if k != "refit"})


def haze_store(nexus: NexusResource, key: SpaceKey) -> HazeStore:
    return HazeStore(nexus.files(key, PROJECTION_STORE))


def open_space(nexus: NexusResource, key: SpaceKey) -> SpaceTable:
    if key.is_global:
        return nexus.store.open_global(nexus.environment)
    return nexus.store.open(key.context(nexus.environment), key.space_id)


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, deps=["space_table"], kinds={"umap", "parquet"})
def haze_projection(context: dg.AssetExecutionContext, config: HazeConfig, nexus: NexusResource
                    ) -> dg.MaterializeResult:
    """A 2-D map of the space (PCA, then UMAP with cosine distance, or t-SNE) at one table version, with
    labelled clusters, a PNG and an interactive HTML map, in the tenant's projection store. New rows are
    placed into the existing map; ``refit`` (or changed parameters) draws a new one."""
    key = nexus.space_key(context.partition_key)
    zone = nexus.landing(key)
    report_task(zone, context.run.tags, "running", context.log, run_id=context.run_id)
    haze = haze_store(nexus, key)
    task_id = context.run.tags.get(TASK_TAG)
    try:
        result = project_space(open_space(nexus, key), haze, key.space_id, config.params(), refit=config.refit,
                               log=context.log.info)
    except Exception as exc:
        report_task(zone, context.run.tags, "failed", context.log, run_id=context.run_id, error=str(exc)[:2000])
        raise
    finally:
        if task_id:  # answered either way: the task record keeps the outcome
            haze.finish_request(key.space_id, task_id)
    info = result.info
    counts = info["counts"]
    report_task(zone, context.run.tags, "succeeded", context.log, run_id=context.run_id,
                counts={k: v for k, v in counts.items() if isinstance(v, int)})
    metadata: dict[str, object] = {"table_version": info["table_version"], **counts}
    if result.snapshot_id is not None:
        snapshot = haze.open(key.space_id, result.snapshot_id)
        metadata.update({
            "snapshot_id": result.snapshot_id, "new_snapshot": result.created, "method": info["method"],
            "refit": info["refit"], "reducer_id": info["reducer_id"], "cluster_method": info["cluster_method"],
            **{f"seconds_{step}": seconds for step, seconds in info["timings"].items()},
            "map": dg.MetadataValue.md(f"![HAZE map of {key.partition_key}](data:image/png;base64,"
                                       f"{base64.b64encode(result.png).decode()})"),
            "cluster_labels": dg.MetadataValue.md(_cluster_table(info["clusters"])),
            "html_map": dg.MetadataValue.path(snapshot.url("map.html")),
            "points": dg.MetadataValue.path(snapshot.url("points.parquet")),
        })
    return dg.MaterializeResult(metadata=metadata)


def _cluster_table(clusters: list[dict]) -> str:
    rows = [f"| {c['cluster']} | {c['size']} | {', '.join(c['keywords'])} |" for c in clusters[:40]]
    return "\n".join(["| cluster | points | keywords |", "|---:|---:|---|", *rows]) if rows else "no clusters"


haze_job = dg.define_asset_job(
    "haze_space",
    selection=dg.AssetSelection.assets(haze_projection),
    partitions_def=tenant_spaces,
    config=dg.PartitionedConfig(partitions_def=tenant_spaces, run_config_for_partition_key_fn=lambda _: {},
                                tags_for_partition_key_fn=tags_for_partition),
    description="Map one space (HAZE). Started by haze_request_sensor for POST .../haze/snapshot.",
)


@dg.sensor(job=haze_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def haze_request_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """Each waiting re-projection request becomes one run (run key = its task id, so none runs twice)."""
    requests, partitions = [], set()
    for tenant, project, files in nexus.tenant_areas(PROJECTION_STORE):  # requests only come from tenants
        for request in HazeStore(files).pending_requests():
            try:
                key = SpaceKey(tenant, project, request["space_id"])
            except InvalidRequest:
                context.log.warning(f"ignoring a HAZE request for space {request['space_id']!r} of {tenant}")
                continue
            partitions.add(key.partition_key)
            config = {"refit": bool(request.get("refit"))}
            if request.get("method"):
                config["method"] = request["method"]
            requests.append(dg.RunRequest(
                run_key=f"haze:{request['task_id']}", partition_key=key.partition_key,
                run_config={"ops": {"haze_projection": {"config": config}}},
                tags={**key.run_tags, TASK_TAG: request["task_id"]}))
    new = sorted(partitions - set(context.instance.get_dynamic_partitions(tenant_spaces.name)))
    return dg.SensorResult(run_requests=requests,
                           dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [])
