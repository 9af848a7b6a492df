"""kpi_measurements (observed, not computed here) → kpi_fact_docs (facts embedded into the space)."""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from nexus_pipelines.common.batches import PartitionDone, partition_checks, run_partitions
from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG
from nexus_pipelines.common.freshness import KPI_FACTS_FRESHNESS
from nexus_pipelines.kpi.chart import charts_metadata
from nexus_pipelines.kpi.refresh import RefreshResult, refresh_facts
from nexus_pipelines.maintenance.optimize import compact_if_fragmented
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey, tenant_spaces
from nexus_pipelines.pictures import markdown_text
from nexus_pipelines.resources import NexusResource
from nexus_query.errors import NexusError
from nexus_query.kpi import read_source
from nexus_query.kpi.landing import settle_landed
from nexus_query.kpi.retirement import kpi_rows
from nexus_query.kpi.source import source_version

KPI_BATCH_SIZE = 25  # tenant spaces per run, for the hourly schedule and for UI backfills
MAX_CHARTS = 12  # charts per partition: series with facts first
SOURCE_CHECK = "kpi_sources_readable"


@dg.observable_source_asset(
    name="kpi_measurements",
    group_name="kpi",
    partitions_def=tenant_spaces,
    tags={"dagster/kind/csv": "", "dagster/kind/parquet": ""},  # kinds, as a SourceAsset can carry them
    description="Each tenant space's KPI measurements and catalogue, written by the tenant's own systems to "
                "kpi/{space}/ in its blob store (CSV or Parquet). Observing records a fingerprint per space; "
                "a run that observes or materializes a new one triggers kpi_fact_docs (kpi_measurements_sensor).",
)
def kpi_measurements(context: dg.OpExecutionContext, nexus: NexusResource) -> dg.DataVersionsByPartition:
    # Only changed fingerprints are recorded, so an observation means new measurements (what the hourly
    # schedule and kpi_measurements_sensor act on); one query reads the previous ones of every space.
    previous = context.instance.event_log_storage.get_latest_tags_by_partition(
        context.asset_key, dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG])
    versions = {}
    for partition_key in context.instance.get_dynamic_partitions(TENANT_SPACES):
        key = SpaceKey.parse(partition_key)
        if key.is_global:
            continue
        try:
            version = source_version(nexus.files(key), key.space_id)
        except NexusError as exc:  # one tenant's missing route must not hide the others' sources
            context.log.warning("%s: %s", partition_key, exc.message)
            continue
        if version is not None and version != previous.get(partition_key, {}).get(DATA_VERSION_TAG):
            versions[partition_key] = dg.DataVersion(version)
    context.log.info("%d tenant space(s) have new KPI measurements", len(versions))
    return dg.DataVersionsByPartition(versions)


class KpiFactsConfig(dg.Config):
    history: bool = Field(False, description="Backfill: the facts of every complete window within the catalogue's "
                                             "retention, as when a tenant with months of measurements is onboarded.")
    as_of: str | None = Field(None, description="Check time (ISO 8601); default: when the run starts. The hourly "
                                                "schedule pins it to its tick, so a re-executed run says the same.")


@dg.asset(
    name="kpi_fact_docs",
    group_name="kpi",
    partitions_def=tenant_spaces,
    deps=[kpi_measurements],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=KPI_BATCH_SIZE),
    check_specs=[dg.AssetCheckSpec(SOURCE_CHECK, asset="kpi_fact_docs", partitions_def=tenant_spaces,
                                   description="the space's KPI source could be read (one result per space of "
                                               "the run; its fact count plotted per space)")],
    kinds={"lancedb", "polars"},
    freshness_policy=KPI_FACTS_FRESHNESS,
    description="Typed facts about each catalogued metric (change, trend, episodes outside the usual band, "
                "of threshold breaches and of missing data, stale data), one exact sentence each, embedded into "
                "the space with type='kpi'; an episode is one fact, updated in place while it lasts. Runs may "
                "cover many spaces (a partition range).",
)
def kpi_fact_docs(context: dg.AssetExecutionContext, config: KpiFactsConfig,
                  nexus: NexusResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)

    def refresh(partition_key: str) -> PartitionDone[int]:
        metadata = refresh_partition(nexus, partition_key, history=config.history, now=now, run_id=context.run.run_id)
        facts = int(metadata.get("facts", 0))
        return PartitionDone(facts, metadata, f"{facts} fact(s)")

    outcome = run_partitions(context, refresh)
    yield from partition_checks(context, SOURCE_CHECK, outcome, lambda facts: {"facts": facts or 0})
    yield dg.MaterializeResult(metadata={"partitions_in_run": outcome.partitions,
                                         "facts_in_run": sum(outcome.results.values()),
                                         "as_of": now.isoformat(), "history": config.history})


def refresh_partition(nexus: NexusResource, partition_key: str, *, history: bool, now: datetime, run_id: str) -> dict:
    """Refresh one space's facts, then settle the measurement tasks whose files it read; returns the
    materialization metadata for its partition."""
    key = SpaceKey.parse(partition_key)
    if key.is_global:
        return {"status": "skipped", "reason": "the global space has no KPI source", "facts": 0}
    source = read_source(nexus.files(key), key.space_id)
    if source is None:
        return {"status": "no KPI source", "facts": 0}
    provider = nexus.provider_for(key)
    ctx = key.context(nexus.environment)
    space = nexus.open_space(key, provider.info)
    result = refresh_facts(space, ctx, source, provider, history=history, now=now)
    # Index the facts now, as the ingest run does its rows: else the next ingest run, with nothing new,
    # would write a table version (and so a new map) for them.
    compact_if_fragmented(space, nexus.registry.config.cursor.ttl_seconds)
    charted = sorted(result.reports, key=lambda r: (not r.facts, r.series.key))[:MAX_CHARTS]
    charts = charts_metadata(nexus.files(key, "nexus_projection_store"), nexus.picture_links(key), key.space_id,
                             charted)
    settled = settle_landed(nexus.files(key), key.space_id, source.files, run_id)
    return {**partition_metadata(result, source.version, len(kpi_rows(space)), charts), "tasks_settled": len(settled)}


def partition_metadata(result: RefreshResult, version: str, kpi_row_count: int, charts: dict) -> dict:
    facts = result.facts
    by_type = Counter(f.type for f in facts)
    table = "\n".join(["| type | since | until | fact |", "|---|---|---|---|",
                       *[f"| {f.type} | {f.episode_start or f.window_start} | "
                         f"{f.episode_end or ('open' if f.episode_start else f.window_end)} | {markdown_text(f.text)} |"
                         for f in facts]])
    return {
        "status": "refreshed",
        "facts": len(facts),
        "facts_by_type": dg.MetadataValue.json(dict(sorted(by_type.items()))),
        "fact_sentences": dg.MetadataValue.md(table if facts else "_nothing happened that is worth a sentence_"),
        "series": len(result.reports),
        "uncatalogued_metrics": dg.MetadataValue.json(result.uncatalogued),
        "source_version": version,
        "retired": dg.MetadataValue.json(result.retired),
        **{f"ingest/{k}": v for k, v in result.stats.as_metadata().items()},
        "dagster/row_count": kpi_row_count,  # the space's KPI fact rows after the run
        **charts,  # links to the charts in the projection store, one thumbnail inline
    }
