"""``haze_projection``: a map of each space, downstream of ``space_table``; and the sensor that turns
``POST /nexus/spaces/{space_id}/haze/snapshot`` requests into runs. Thin: the work is in ``projection``."""

import dataclasses
import typing
from typing import TYPE_CHECKING, Any

import dagster as dg
import pydantic

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.common.tasks import TASK_TAG, report_task
from nexus_pipelines.haze.checks import check_specs, inspect_snapshot
from nexus_pipelines.haze.projection import project_space
from nexus_pipelines.haze.reducer import ProjectionParams
from nexus_pipelines.partitions import SpaceKey, space_job, tags_for_partition, tenant_spaces
from nexus_pipelines.pictures import png_markdown, thumbnail_png
from nexus_pipelines.resources import NexusResource
from nexus_query.errors import InvalidRequest
from nexus_query.haze import ClusterSummary, HazeStore, finish_request, pending_requests, read_request
from nexus_query.store import SpaceTable

GROUP = "haze"
PROJECTION_STORE = "nexus_projection_store"
# Assets whose materializations write rows into a space's table: after them, the map gets the new rows.
SPACE_WRITERS = (dg.AssetKey("space_table"), dg.AssetKey("kpi_fact_docs"))


class HazeConfigBase(dg.Config):
    """How to map: ``refit`` here, every other field is one of ``ProjectionParams`` (its type and default),
    added by ``projection_config``; the defaults suit spaces up to millions of rows (fit on 50k, place the
    rest)."""

    refit: bool = False  # fit a new map instead of placing new rows into the current one

    def params(self) -> ProjectionParams:
        return ProjectionParams(**self.model_dump(exclude={"refit"}))


def projection_config() -> type[HazeConfigBase]:
    """``HazeConfigBase`` with a field per ``ProjectionParams`` field: the parameters have one source, and
    the Dagster launchpad offers each of them with the default a plain ``project_space`` call uses."""
    hints = typing.get_type_hints(ProjectionParams)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(ProjectionParams)}
    return pydantic.create_model("HazeConfig", __base__=HazeConfigBase, __module__=__name__,
                                 __doc__=HazeConfigBase.__doc__, **fields)


if TYPE_CHECKING:
    HazeConfig = HazeConfigBase
else:
    HazeConfig = projection_config()  # Dagster reads the config schema from the asset's annotation


def haze_store(nexus: NexusResource, key: SpaceKey) -> HazeStore:
    return HazeStore(nexus.files(key, PROJECTION_STORE))


def open_space(nexus: NexusResource, key: SpaceKey) -> SpaceTable:
    if key.is_global:
        return nexus.store.open_global(nexus.environment)
    return nexus.store.open(key.context(nexus.environment), key.space_id)


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, deps=["space_table"], kinds={"umap", "parquet"},
          check_specs=check_specs())
def haze_projection(context: dg.AssetExecutionContext, config: HazeConfig, nexus: NexusResource
                    ) -> dg.MaterializeResult:
    """A 2-D map of the space (PCA, then UMAP with cosine distance, or t-SNE) at one table version, with
    labelled clusters, a PNG and an interactive HTML map, in the tenant's projection store. New rows are
    placed into the existing map; ``refit`` (or changed parameters) draws a new one."""
    key = nexus.space_key(context.partition_key)
    zone = nexus.landing(key)
    report_task(zone, context.run.tags, "running", context.log, run_id=context.run.run_id)
    haze = haze_store(nexus, key)
    task_id = context.run.tags.get(TASK_TAG)
    try:
        # Read after the task is running: requests that joined this one while it waited are in it now.
        request = read_request(haze, key.space_id, task_id) if task_id else None
        params, refit = config.params(), config.refit or bool(request and request.refit)
        if request is not None and request.method:
            params = dataclasses.replace(params, method=request.method)
        result = project_space(open_space(nexus, key), haze, key.space_id, params, refit=refit,
                               log=context.log.info)
    except Exception as exc:
        report_task(zone, context.run.tags, "failed", context.log, run_id=context.run.run_id, error=str(exc)[:2000])
        raise
    finally:
        if task_id:  # answered either way: the task record keeps the outcome
            finish_request(haze, key.space_id, task_id)
    info = result.info
    counts = dataclasses.asdict(result.counts) if info else {"rows": 0}
    report_task(zone, context.run.tags, "succeeded", context.log, run_id=context.run.run_id, counts=counts)
    metadata: dict[str, Any] = {"table_version": result.table_version, **counts}
    if info is not None:
        snapshot = haze.open(key.space_id, info.snapshot_id)
        links = nexus.picture_links(key)
        map_png = links.url(*haze.snapshot_parts(key.space_id, info.snapshot_id, "map.png"))
        metadata.update({
            "snapshot_id": info.snapshot_id, "new_snapshot": result.created, "method": info.method,
            "refit": info.refit, "reducer_id": info.reducer_id, "cluster_method": info.cluster_method,
            **{f"seconds_{step}": seconds for step, seconds in info.timings.items()},
            # a thumbnail inline, the pictures and the map in the projection store (not the event log)
            "map": dg.MetadataValue.md(png_markdown(thumbnail_png(result.png), f"HAZE map of {key.partition_key}",
                                                    link=map_png)),
            "map_png": dg.MetadataValue.url(map_png),
            "cluster_labels": dg.MetadataValue.md(_cluster_table(info.clusters)),
            "html_map": dg.MetadataValue.path(snapshot.url("map.html")),
            "points": dg.MetadataValue.path(snapshot.url("points.parquet")),
            "html_map_url": dg.MetadataValue.url(links.url(*haze.snapshot_parts(key.space_id, info.snapshot_id,
                                                                                "map.html"))),
        })
    return dg.MaterializeResult(metadata=metadata,
                                check_results=inspect_snapshot(open_space(nexus, key), haze, key.space_id))


def _cluster_table(clusters: list[ClusterSummary]) -> str:
    """Cluster sizes only: keywords are words of the documents, and Dagster's event log keeps no document
    text (an erasure could not reach it there); they are on the map behind ``html_map_url``."""
    rows = [f"| {c.cluster} | {c.size} |" for c in clusters[:40]]
    return "\n".join(["| cluster | points |", "|---:|---:|", *rows]) if rows else "no clusters"


haze_job = space_job("haze_space", [haze_projection],
                     "Map one space (HAZE). Started by haze_request_sensor for POST .../haze/snapshot.")


@dg.sensor(job=haze_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           owners=OWNERS,
           description="Every 30 s: each waiting POST /nexus/spaces/{space_id}/haze/snapshot request becomes one "
                       "haze_space run (run key = its task id).")
def haze_request_sensor(context: dg.SensorEvaluationContext, nexus: NexusResource) -> dg.SensorResult:
    """Each waiting re-projection request becomes one run (run key = its task id, so none runs twice)."""
    requests, partitions = [], set()
    for tenant, project, files in nexus.tenant_areas(PROJECTION_STORE):  # requests only come from tenants
        for request in pending_requests(HazeStore(files)):
            try:
                key = SpaceKey(tenant, project, request.space_id)
            except InvalidRequest:
                context.log.warning("ignoring a HAZE request for space %r of %s", request.space_id, tenant)
                continue
            partitions.add(key.partition_key)
            config: dict[str, object] = {"refit": request.refit}
            if request.method:
                config["method"] = request.method
            requests.append(dg.RunRequest(
                run_key=f"haze:{request.task_id}", partition_key=key.partition_key,
                run_config={"ops": {"haze_projection": {"config": config}}},
                tags={**key.run_tags, TASK_TAG: request.task_id}))
    new = sorted(partitions - set(tenant_spaces.get_partition_keys(dynamic_partitions_store=context.instance)))
    return dg.SensorResult(run_requests=requests,
                           dynamic_partitions_requests=[tenant_spaces.build_add_request(new)] if new else [])


@dg.run_status_sensor(name="haze_refresh_sensor", run_status=dg.DagsterRunStatus.SUCCESS, request_job=haze_job,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="When a run writes rows into a space (space_table, kpi_fact_docs), place them on "
                                  "the space's map; existing points stay where they are (no refit).")
def haze_refresh_sensor(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
    written: dict[str, str] = {}  # partition key -> the table version written (once per version)
    records = context.instance.get_records_for_run(context.dagster_run.run_id,
                                                   of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        event = record.event_log_entry.asset_materialization
        if event is not None and event.asset_key in SPACE_WRITERS and event.partition:
            version = event.metadata.get("table_version")
            written[event.partition] = str(version.value if version is not None else context.dagster_run.run_id)
    return [dg.RunRequest(run_key=f"{partition}@{version}", partition_key=partition,
                          tags=tags_for_partition(partition)) for partition, version in sorted(written.items())]
