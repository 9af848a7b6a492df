"""`make demo`: land the bundled example data and ingest every demo space through Dagster; then, for
acme, KPI facts from its example measurements, a HAZE map and a cognition artifact from its example chat
export; finally sample queries.

Each space is one run of the ``ingest_space`` job (the same one the landing sensor starts), run in process
by ``nexus_pipelines.ingest.run_in_process`` and recorded in the Dagster instance at ``$DAGSTER_HOME`` when
it is set (so ``make dev`` shows the runs afterwards), else in a throwaway in-memory one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
from tqdm import tqdm

from nexus_pipelines.common.in_process import QUIET, asset_metadata, dagster_instance
from nexus_pipelines.common.progress import progress
from nexus_pipelines.definitions import defs, nexus
from nexus_pipelines.ingest.requests import files_request, space_files
from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey
from nexus_query.cli import format_hits, quiet_libraries
from nexus_query.client import connect
from nexus_query.cognition import ArtifactStore
from nexus_query.paths import TenantFiles

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
SPACES = {SpaceKey("acme", "default", "main"): "acme", SpaceKey("globex", "default", "main"): "globex",
          SpaceKey.global_space(): "global"}
SAMPLES = [("acme-demo-key", "how do I return a tent?"), ("acme-demo-key", "how is checkout latency?"),
           ("globex-demo-key", "documents for customs clearance")]
ACME = SpaceKey("acme", "default", "main")
KPI_AS_OF = "2026-11-16T14:05:00+00:00"  # the bundled measurements end at 14:00 that day
TOPIC = "Embercore stove from an affected batch"


def copy_unchanged_aside(files: TenantFiles, path: Path, *parts: str) -> None:
    """Copy one example file into the tenant's store; an unchanged file is left untouched, so a running
    landing sensor sees nothing new."""
    data = path.read_bytes()
    if not files.exists(*parts) or files.read_bytes(*parts) != data:
        files.write_bytes_atomic(data, *parts)


def land_examples(files: TenantFiles, space_id: str, folder: Path) -> int:
    """Documents into the landing zone, chat exports beside them (the ingest run makes bricks of them) and
    KPI measurements with their catalogue where ``kpi_fact_docs`` reads them."""
    landed = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".md", ".txt", ".jsonl")):
        copy_unchanged_aside(files, path, "landing", space_id, "files", path.name)
        landed += 1
    for path in sorted((folder / "conversations").glob("*.json")):
        copy_unchanged_aside(files, path, "landing", space_id, "files", "conversations", path.name)
        landed += 1
    if (folder / "kpi" / "catalogue.yaml").exists():
        copy_unchanged_aside(files, folder / "kpi" / "catalogue.yaml", "kpi", space_id, "catalogue.yaml")
        copy_unchanged_aside(files, folder / "kpi" / "measurements.csv", "kpi", space_id, "measurements",
                             "measurements.csv")
    return landed


def show_acme_extras(instance: dg.DagsterInstance) -> None:
    """KPI facts, the HAZE map and a cognition artifact of acme's space, each from its own Dagster job."""
    tags = ACME.run_tags
    ctx = ACME.context(nexus.environment)
    defs.resolve_job_def("kpi_facts_job").execute_in_process(
        partition_key=ACME.partition_key, instance=instance, tags=tags,
        run_config={**QUIET, "ops": {"kpi_fact_docs": {"config": {"as_of": KPI_AS_OF}}}})
    facts = (nexus.store.open(ctx, "main").table.search().where("type = 'kpi'").select(["text"])
             .limit(None).to_list())
    tqdm.write(f"\nacme/main KPI facts as of {KPI_AS_OF} (asset kpi_fact_docs):")
    tqdm.write("\n".join(f"  - {f['text']}" for f in facts) or "  (nothing worth a sentence)")
    defs.resolve_job_def("haze_space").execute_in_process(partition_key=ACME.partition_key, instance=instance,
                                                          tags=tags, run_config=QUIET)
    snapshot = connect(api_key="acme-demo-key").haze("main")
    labels = "; ".join(c.label for c in snapshot.clusters[:4])
    tqdm.write(f"\nacme/main HAZE map (asset haze_projection): {snapshot.info.counts.rows} points in "
               f"{len(snapshot.clusters)} clusters ({labels}; ...)\n  open {snapshot.url('map.html')}")
    cognition = defs.resolve_job_def("cognition_space").execute_in_process(
        partition_key=ACME.partition_key, instance=instance, tags=tags,
        run_config={**QUIET, "ops": {"cognition_artifacts": {"config": {"topics": [TOPIC]}}}})
    artifact_id = asset_metadata(cognition)["cognition_artifacts"]["artifact_ids"][0]
    artifact = ArtifactStore.for_context(ctx).get(artifact_id)
    payload = artifact["payload"]
    tqdm.write(f"\nacme/main cognition artifact for {TOPIC!r}: {artifact['artifact_id']}\n"
               f"  {payload['coverage_status']}, {len(payload['provenance']['brick_ids'])} bricks from "
               f"{len(payload['raw_excerpts'])} conversation(s); read it: .venv/bin/nexus cognition show "
               f"{artifact['artifact_id']} --key acme-demo-key --for-agent")


def record_files_seen() -> list[str]:
    """Record, as the landing sweep would, that the files the demo dropped were asked for, so ``make dev``
    afterwards starts quiet instead of ingesting every space again. Returns the spaces recorded."""
    recorded = []
    for key in SPACES:
        zone = nexus.landing(key)
        if files_request(zone, key, space_files(zone, key.space_id)) is not None:
            recorded.append(key.partition_key)
    return recorded


def label(key: SpaceKey) -> str:
    return "global" if key.is_global else f"{key.tenant_id}/{key.space_id}"


def main() -> int:
    quiet_libraries()  # the demo's own progress only, no model-loading bars
    for key, folder in SPACES.items():
        land_examples(nexus.files(key), key.space_id, EXAMPLES / folder)
    with dagster_instance() as instance:
        instance.add_dynamic_partitions(TENANT_SPACES, [k.partition_key for k in SPACES])
        for key in progress(SPACES, desc="ingesting example spaces (Dagster runs)", unit="space"):
            outcome = ingest_space_in_process(key, instance=instance, progress=False)  # the bar above counts
            if not outcome.success:
                raise SystemExit(f"{label(key)}: the ingest run {outcome.run_id[:8]} failed: {outcome.error}")
            table = outcome.table
            tqdm.write(f"{label(key)}: {table['rows']} rows (+{table['rows_added']} new, {table['rows_updated']} "
                       f"updated, {table['rows_deleted']} deleted, {table['rows_skipped']} unchanged), "
                       f"table version {table['table_version']}, run {outcome.run_id[:8]}")
        show_acme_extras(instance)
        record_files_seen()
    for api_key, text in SAMPLES:
        nx = connect(api_key=api_key)
        print(f"\n{nx!r}  query: {text!r}")
        print(format_hits(nx.query("main", text, top_k=5).hits))
    print(next_steps(nexus.registry.config.data_root, os.environ.get("DAGSTER_HOME")))
    return 0


def next_steps(data_root: Path, dagster_home: str | None) -> str:
    """Where the demo's data lives and what to run next, so a first-time user is not left guessing."""
    runs = f"Dagster runs: {dagster_home}" if dagster_home else "Dagster runs: not kept (set DAGSTER_HOME)"
    return (f"\nThe demo's data lives in {data_root} ({runs}).\nNext:\n"
            "  make dev                                   # Dagster UI + daemon: the sensors keep every space fresh\n"
            "  .venv/bin/nexus query --key acme-demo-key 'how do I return a tent?'\n"
            "  .venv/bin/nexus serve                      # the map: GET /nexus/spaces/main/haze/map (Bearer key)\n"
            "  .venv/bin/nexus tenants add NAME && .venv/bin/nexus keys create --tenant NAME   # your own data")


if __name__ == "__main__":
    sys.exit(main())
