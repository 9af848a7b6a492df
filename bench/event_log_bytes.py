"""Bytes one hourly KPI run adds to Dagster's event log, for acme's bundled example measurements.

Runs ``kpi_facts_job`` for ``acme.default.main`` on a fresh SQLite instance and a fresh Nexus home, then
sums the serialized size of every event log entry of the run (what a Postgres event log would store) and
of the materialization's metadata alone. Compare two checkouts by pointing PYTHONPATH at each:

    PYTHONPATH=/path/to/checkout .venv/bin/python bench/event_log_bytes.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="nexus-eventlog-bench-")
os.environ["NEXUS_HOME"] = str(Path(HOME) / "nexus")
os.environ.pop("NEXUS_CONFIG", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import dagster as dg  # noqa: E402
from dagster_shared.serdes import serialize_value  # noqa: E402

from nexus_pipelines import demo  # noqa: E402
from nexus_pipelines.definitions import defs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the same run: one KPI run is already seconds")
    parser.parse_args()
    demo.land_examples(demo.nexus.files(demo.ACME), "main", demo.EXAMPLES / "acme")
    with dg.DagsterInstance.local_temp(tempdir=HOME) as instance:
        instance.add_dynamic_partitions("tenant_spaces", [demo.ACME.partition_key])
        result = defs.resolve_job_def("kpi_facts_job").execute_in_process(
            partition_key=demo.ACME.partition_key, instance=instance,
            run_config={**demo.QUIET, "ops": {"kpi_fact_docs": {"config": {"as_of": demo.KPI_AS_OF}}}})
        entries = instance.all_logs(result.run_id)
        total = sum(len(serialize_value(e)) for e in entries)
        materializations = [e for e in entries if e.dagster_event and e.dagster_event.is_step_materialization]
        metadata = sum(len(serialize_value(e)) for e in materializations)
    print(f"code: {Path(sys.modules['nexus_pipelines'].__file__).parents[1]}")
    print(f"event log entries: {len(entries)}, {total:,} bytes; materialization events: "
          f"{len(materializations)}, {metadata:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
