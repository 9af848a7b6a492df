"""The ingest assets, one partition per space: landing zone → raw_docs → chunks → embeddings → space_table.

Thin on purpose: the work is in ``sources``, ``chunking``, ``pipeline``, ``prune``, ``checks`` and
``common.load``. The three intermediate assets are Parquet files in the space owner's store
(``SpaceParquetIOManager``); ``space_table`` is the space's LanceDB table itself.
"""

import dagster as dg
import pyarrow.dataset as ds

from nexus_pipelines.catalog import column_schema
from nexus_pipelines.cognition.import_tasks import METADATA_KEY as IMPORT_TASKS
from nexus_pipelines.cognition.import_tasks import advance_import_tasks
from nexus_pipelines.common.freshness import SPACE_TABLE_FRESHNESS
from nexus_pipelines.common.load import IngestStats
from nexus_pipelines.common.parquet_io import ArrowStream, previous_output
from nexus_pipelines.common.tasks import (
    CLAIM_OWNER_TAG,
    CLAIMED_METADATA,
    TASK_TAG,
    claim_landed_tasks,
    claimed_in_run,
    record_claims,
    report_task,
    report_tasks,
)
from nexus_pipelines.ingest.checks import check_specs, inspect_space
from nexus_pipelines.ingest.chunking import Chunker
from nexus_pipelines.ingest.pipeline import (
    ChunkStats,
    chunk_batches,
    chunks_schema,
    embed_batches,
    embeddings_schema,
    write_batches,
)
from nexus_pipelines.ingest.prune import prune_departed
from nexus_pipelines.ingest.sources import DOC_SCHEMA, LandingReader
from nexus_pipelines.maintenance.optimize import compact_if_fragmented, fragment_counts
from nexus_pipelines.partitions import tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.landing import INGEST_TYPES, MAX_TASK_PROBLEMS
from nexus_query.paths import GLOBAL_TENANT_DIR
from nexus_query.quotas import check_rows_at_write

GROUP = "ingest"
PARQUET_IO = "nexus_parquet"
PROBLEMS = "problems"  # what raw_docs skipped, as a JSON list: the tasks the run settles keep it


class ChunkConfig(dg.Config):
    max_tokens: int | None = None  # None: the embedding model's own limit (256 word pieces for MiniLM)
    overlap_tokens: int = 32


class SpaceTableConfig(dg.Config):
    # An empty source never deletes a space's rows unless a run asks for it here.
    allow_empty_source: bool = False


# Chat exports that `nexus cognition import` lands beside the documents: raw_docs turns their blocks into
# conversation bricks, so the lineage shows them feeding the space.
conversation_exports = dg.AssetSpec(
    "conversation_exports", group_name="cognition", kinds={"json"},
    description="ChatGPT / Claude / canonical conversation exports, kept under conversation-exports/ and landed "
                "at landing/{space}/files/conversations/ by `nexus cognition import`; not computed here.")


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, io_manager_key=PARQUET_IO, kinds={"parquet"},
          deps=[conversation_exports])
def raw_docs(context: dg.AssetExecutionContext, nexus: NexusResource) -> ArrowStream:
    """Every document in the space's landing zone (API batches, dropped text, markdown, JSON-lines and
    image files), normalized and content-hashed; a document id keeps its latest version."""
    key = nexus.space_key(context.partition_key)
    zone = nexus.landing(key)
    # Before reading: every batch claimed here is one the reader below reads (batches are never removed).
    claimed = claim_landed_tasks(zone, key.space_id, context.run.run_id, context.log,
                                 context.run.tags.get(CLAIM_OWNER_TAG))
    record_claims(context, claimed)
    report_task(zone, context.run.tags, "running", context.log, run_id=context.run.run_id)
    reader = LandingReader(zone, key.space_id)

    def summary() -> dict:
        for problem in reader.problems:
            context.log.warning(problem)
        advance_import_tasks(zone, reader.import_tasks, "running", context.log, run_id=context.run.run_id)
        return {**reader.summary(), CLAIMED_METADATA: dg.MetadataValue.json(claimed),
                IMPORT_TASKS: dg.MetadataValue.json(reader.import_tasks),
                PROBLEMS: dg.MetadataValue.json(reader.problems[:MAX_TASK_PROBLEMS]),
                "problem_list": dg.MetadataValue.md("\n".join(f"- {p}" for p in reader.problems[:50]) or "none")}

    return ArrowStream(DOC_SCHEMA, reader.batches(), summary)


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, io_manager_key=PARQUET_IO, kinds={"parquet"})
def chunks(context: dg.AssetExecutionContext, config: ChunkConfig, nexus: NexusResource,
           raw_docs: ds.Dataset) -> ArrowStream:
    """Token-aware, heading-aware, overlapping chunks, each an exact substring of its document at its
    recorded character offsets; images stay whole."""
    key = nexus.space_key(context.partition_key)
    chunker = Chunker.for_provider(nexus.provider_for(key), config.max_tokens, config.overlap_tokens)
    previous = previous_output(nexus.files(key), context.asset_key.path, key.space_id)
    stats = ChunkStats()
    context.log.info("chunking to at most %d word pieces, %d overlapping", chunker.max_tokens, chunker.overlap_tokens)
    batches = chunk_batches(raw_docs.to_batches(batch_size=1024), chunker, stats, previous)
    return ArrowStream(chunks_schema(chunker), batches,
                       lambda: {**stats.as_metadata(), "max_tokens": chunker.max_tokens})


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, io_manager_key=PARQUET_IO, kinds={"parquet"})
def embeddings(context: dg.AssetExecutionContext, nexus: NexusResource, chunks: ds.Dataset) -> ArrowStream:
    """Vectors for the chunks the space does not already hold as they are, in batches; a chunk whose
    text this embedder already embedded reuses the stored vector, an unchanged row is skipped."""
    key = nexus.space_key(context.partition_key)
    provider = nexus.provider_for(key)
    space = nexus.open_space(key, provider.info)
    stats = IngestStats()

    def progress(done: int, total: int) -> None:
        context.log.info("%d/%d chunks planned, %d embedded (%.0f/s), %d reused", done, total, stats.embedded,
                         stats.embed_per_second, stats.reused)

    batches = embed_batches(chunks, space, provider, nexus.owner_context(key), stats, progress)

    def summary() -> dict:
        counts = stats.as_metadata()
        return {**{k: counts[k] for k in ("records", "embedded", "reused", "unchanged", "embed_seconds",
                                          "embed_per_second")},
                "embedder": provider.info.id, "planned_against_version": space.version}

    return ArrowStream(embeddings_schema(provider.info.dimension), batches, summary)


@dg.asset(partitions_def=tenant_spaces, group_name=GROUP, kinds={"lancedb"}, check_specs=check_specs(),
          freshness_policy=SPACE_TABLE_FRESHNESS,
          # Other domains write rows into the same table: the lineage shows them feeding the space.
          deps=[dg.AssetDep("kpi_fact_docs")])
def space_table(context: dg.AssetExecutionContext, config: SpaceTableConfig, nexus: NexusResource,
                embeddings: ds.Dataset) -> dg.MaterializeResult:
    """The space's LanceDB table: keyed upsert of new and changed chunks, deletion of rows whose documents
    left the source, compaction when fragmented, then checks over every row."""
    key = nexus.space_key(context.partition_key)
    provider = nexus.provider_for(key)
    space = nexus.open_space(key, provider.info)
    ctx = nexus.owner_context(key)
    if not key.is_global:  # over the row quota: the run fails (its tasks with it) before writing a row
        check_rows_at_write(nexus.registry.config.api.max_rows_per_space, space, embeddings.count_rows(),
                            INGEST_TYPES)
    written, keep = write_batches(embeddings, space, ctx, provider)
    pruned = prune_departed(space, keep, allow_empty_source=config.allow_empty_source)
    if pruned.refused_empty_source:
        context.log.warning("the source is empty: kept every row (run with allow_empty_source to wipe the space)")
    compacted = compact_if_fragmented(space, nexus.registry.config.cursor.ttl_seconds)
    outcomes = inspect_space(space, ctx.tenant_id if ctx else GLOBAL_TENANT_DIR, provider.info.dimension)
    embedded = _upstream_metadata(context, key="embeddings")
    counts = {"rows": space.count(), "rows_added": written.inserted, "rows_updated": written.updated,
              "rows_deleted": pruned.deleted, "rows_skipped": written.unchanged}
    failed = [o.name for o in outcomes if not o.passed]
    zone = nexus.landing(key)
    read = _upstream_metadata(context, key="raw_docs")
    imports, problems = read.get(IMPORT_TASKS) or [], read.get(PROBLEMS) or []
    # Every task whose batch this run read is settled by it, not only the one it was started for.
    tasks = claimed_in_run(context.instance, context.run.run_id) + [t for t in [context.run.tags.get(TASK_TAG)] if t]
    if failed:
        error = f"asset checks failed: {', '.join(failed)}"
        report_tasks(zone, tasks, "failed", context.log, run_id=context.run.run_id, error=error, problems=problems)
        advance_import_tasks(zone, imports, "failed", context.log, run_id=context.run.run_id, error=error)
    else:
        report_tasks(zone, tasks, "succeeded", context.log, run_id=context.run.run_id, counts=counts,
                     problems=problems)
        advance_import_tasks(zone, imports, "succeeded", context.log, run_id=context.run.run_id, counts=counts)
    return dg.MaterializeResult(
        metadata={**counts, "table_version": space.version, "compacted": compacted is not None,
                  "fragments": compacted.fragments_after if compacted else fragment_counts(space).fragments,
                  "empty_source_kept_rows": pruned.refused_empty_source,
                  "commit_conflicts_retried": written.conflicts_retried,
                  "embedded": embedded.get("embedded", 0), "embed_per_second": embedded.get("embed_per_second", 0.0),
                  "uri": space.location.dataset_uri, "embedder": provider.info.id,
                  "dagster/column_schema": column_schema(space.table.schema),
                  "dagster/row_count": counts["rows"]},
        check_results=[dg.AssetCheckResult(check_name=o.name, passed=o.passed, metadata=o.metadata)
                       for o in outcomes],
    )


def _upstream_metadata(context: dg.AssetExecutionContext, key: str) -> dict:
    """The latest materialization metadata of ``key`` for this partition (its embedding throughput)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


ingest_assets = [raw_docs, chunks, embeddings, space_table]
external_assets = [conversation_exports]
