"""cognition_artifacts: per tenant space, the artifact of each configured topic (nexus_query.cognition
does the work; this asset runs it after space_table and reports what came out)."""

from collections import Counter

import dagster as dg
from pydantic import Field

from nexus_pipelines.partitions import space_job, tenant_spaces
from nexus_pipelines.resources import NexusResource
from nexus_query.cognition import ArtifactStore, assemble
from nexus_query.cognition.artifacts import unresolved_citations
from nexus_query.cognition.recall import DEFAULT_K, MAX_K

GROUP = "cognition"
CONTENT_ADDRESSED = "artifacts_hash_to_their_ids"
CITATIONS_RESOLVE = "every_citation_names_a_block_of_its_excerpt"


class CognitionConfig(dg.Config):
    topics: list[str] = Field(default_factory=list, description="Topics to assemble an artifact for, one each.")
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="Bricks recalled per topic (the seed's cap).")


@dg.asset(
    partitions_def=tenant_spaces,
    group_name=GROUP,
    deps=[dg.AssetKey("space_table")],
    kinds={"json"},
    check_specs=[
        dg.AssetCheckSpec(CONTENT_ADDRESSED, asset="cognition_artifacts", partitions_def=tenant_spaces,
                          description="each artifact read back from the store hashes to its artifact_id"),
        dg.AssetCheckSpec(CITATIONS_RESOLVE, asset="cognition_artifacts", partitions_def=tenant_spaces,
                          description="each coverage span names a message and block present in its excerpt"),
    ],
)
def cognition_artifacts(context: dg.AssetExecutionContext, config: CognitionConfig,
                        nexus: NexusResource) -> dg.MaterializeResult:
    """Immutable, cited TOPIC_COGNITION_V1 artifacts for the configured topics, assembled from a
    read-only recall of the space's conversation bricks and stored write-once in the tenant's store."""
    key = nexus.space_key(context.partition_key)
    if key.is_global:
        context.log.info("the global space has no tenant, hence no cognition artifacts")
        return dg.MaterializeResult(metadata={"artifacts": 0, "skipped": "global space"}, check_results=[
            dg.AssetCheckResult(check_name=name, passed=True) for name in (CONTENT_ADDRESSED, CITATIONS_RESOLVE)])
    ctx = key.context(nexus.environment)
    store, provider = nexus.store, nexus.provider_for(key)
    artifacts = ArtifactStore(nexus.files(key))
    rows, skipped, unresolved, corrupt = [], {}, [], []
    statuses: Counter[str] = Counter()
    for number, topic in enumerate(config.topics, 1):
        result = assemble(ctx, key.space_id, topic, config.k, store=store, provider=provider)
        artifact, payload = result.artifact, result.artifact["payload"]
        statuses[payload["coverage_status"]] += 1
        skipped.update(result.skipped_sources)
        unresolved += unresolved_citations(artifact)
        if artifacts.get(artifact["artifact_id"]) != artifact:
            corrupt.append(artifact["artifact_id"])
        rows.append((topic, artifact["artifact_id"], payload["coverage_status"], len(payload["raw_excerpts"]),
                     len(artifact["derived_from"]), "new" if result.created else "already stored"))
        context.log.info("[%d/%d] %r: %s, %d excerpt(s) -> %s", number, len(config.topics), topic,
                         payload["coverage_status"], len(payload["raw_excerpts"]), artifact["artifact_id"])
    table = "\n".join(["| topic | artifact_id | coverage_status | excerpts | bricks | stored |",
                       "|---|---|---|---|---|---|",
                       *(f"| {t} | `{a}` | {s} | {e} | {b} | {n} |" for t, a, s, e, b, n in rows)])
    if not config.topics:
        context.log.warning("no topics configured: set ops.cognition_artifacts.config.topics in the run config")
    return dg.MaterializeResult(
        metadata={
            "artifacts": len(rows),
            "artifact_ids": dg.MetadataValue.json([r[1] for r in rows]),
            "coverage_status": dg.MetadataValue.json(dict(statuses)),
            "new_artifacts": sum(r[5] == "new" for r in rows),
            "skipped_sources": dg.MetadataValue.json(skipped),
            "artifacts_table": dg.MetadataValue.md(table if rows else "no topics configured"),
            "k": config.k,
        },
        check_results=[
            dg.AssetCheckResult(check_name=CONTENT_ADDRESSED, passed=not corrupt,
                                metadata={"mismatched": len(corrupt)}),
            dg.AssetCheckResult(check_name=CITATIONS_RESOLVE, passed=not unresolved,
                                metadata={"unresolved": dg.MetadataValue.json(unresolved[:50])}),
        ],
    )


cognition_job = space_job("cognition_space", [cognition_artifacts],
                          "Assemble the configured topics' cognition artifacts of one tenant space "
                          "(ops.cognition_artifacts.config.topics).")
