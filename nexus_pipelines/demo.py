"""`make demo`: land the bundled example data and ingest every demo space through Dagster, then show
sample queries.

Each space is one run of the ``ingest_space`` job (the same one the landing sensor starts), recorded in
the Dagster instance at ``$DAGSTER_HOME`` when it is set (so ``make dev`` shows the runs afterwards),
else in a throwaway in-memory one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import dagster as dg
from tqdm import tqdm

from nexus_query.cli import format_hits
from nexus_query.client import connect
from nexus_query.paths import TenantFiles
from nexus_pipelines.definitions import defs, nexus
from nexus_pipelines.partitions import SpaceKey, tags_for_partition, tenant_spaces

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
SPACES = {SpaceKey("acme", "default", "main"): "acme", SpaceKey("globex", "default", "main"): "globex",
          SpaceKey.global_space(): "global"}
SAMPLES = [("acme-demo-key", "how do I return a tent?"), ("globex-demo-key", "documents for customs clearance")]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def land_examples(files: TenantFiles, space_id: str, folder: Path) -> int:
    """Copy the example files into the space's landing zone; unchanged files are left untouched, so a
    running landing sensor sees nothing new."""
    landed = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".md", ".txt", ".jsonl")):
        data = path.read_bytes()
        parts = ("landing", space_id, "files", path.name)
        if not files.exists(*parts) or files.read_bytes(*parts) != data:
            files.write_bytes_atomic(data, *parts)
        landed += 1
    return landed


@contextlib.contextmanager
def demo_instance() -> Iterator[dg.DagsterInstance]:
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def label(key: SpaceKey) -> str:
    return "global" if key.is_global else f"{key.tenant_id}/{key.space_id}"


def main() -> int:
    for key, folder in SPACES.items():
        land_examples(nexus.files(key), key.space_id, EXAMPLES / folder)
    job = defs.resolve_job_def("ingest_space")
    with demo_instance() as instance:
        instance.add_dynamic_partitions(tenant_spaces.name, [k.partition_key for k in SPACES])
        for key in tqdm(SPACES, desc="ingesting example spaces (Dagster runs)"):
            result = job.execute_in_process(partition_key=key.partition_key, instance=instance, run_config=QUIET,
                                            tags=tags_for_partition(key.partition_key))
            table = {k: v.value for k, v in result.asset_materializations_for_node("space_table")[0].metadata.items()}
            tqdm.write(f"{label(key)}: {table['rows']} rows (+{table['rows_added']} new, {table['rows_updated']} "
                       f"updated, {table['rows_deleted']} deleted, {table['rows_skipped']} unchanged), "
                       f"table version {table['table_version']}, run {result.run_id[:8]}")
    for key, text in SAMPLES:
        nx = connect(api_key=key)
        print(f"\n{nx!r}  query: {text!r}")
        print(format_hits(nx.query("main", text, top_k=5).hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
