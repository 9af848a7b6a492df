"""Run a space's ``ingest_space`` job in this process, with a progress bar: for users without a Dagster
daemon (``nexus ingest --wait``, ``nexus cognition import --wait``) and for ``make demo``.

The run is recorded in the Dagster instance at ``$DAGSTER_HOME`` when it is set (``make dev`` shows it
afterwards), else in a throwaway in-memory one. Its tasks end as the daemon would leave them: the run
settles every task whose batch it read, and a failed run fails the tasks it holds with the root error
(what ``ingest_failure_sensor`` does for daemon runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import dagster as dg
from tqdm import tqdm

from nexus_pipelines.ingest.assets import ingest_assets
from nexus_pipelines.ingest.tasks import fail_run_tasks, run_error
from nexus_pipelines.partitions import SpaceKey, tags_for_partition, tenant_spaces
from nexus_pipelines.resources import NexusResource

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
log = logging.getLogger("nexus_pipelines.ingest")


@dataclass(frozen=True)
class IngestOutcome:
    """What one in-process ingest run did."""

    run_id: str
    success: bool
    rows: int = 0
    rows_added: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_skipped: int = 0
    table_version: int | None = None
    error: str | None = None


@contextlib.contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """``$DAGSTER_HOME``'s instance when it is set, else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def _watch_steps(instance: dg.DagsterInstance, run_id: str, bar: tqdm, done: threading.Event) -> None:
    """Advance ``bar`` as the run's steps finish (read from the event log, twice a second)."""
    seen: set[str] = set()
    while not done.wait(0.5):
        try:
            records = instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_SUCCESS,
                                                         dg.DagsterEventType.STEP_FAILURE})
        except Exception:  # the run may not exist yet
            continue
        for record in records:
            step = record.step_key or ""
            if step and step not in seen:
                seen.add(step)
                bar.set_postfix_str(step)
                bar.update(1)


def ingest_in_process(key: SpaceKey, *, tags: Mapping[str, str] | None = None,
                      instance: dg.DagsterInstance | None = None, progress: bool = True,
                      run_config: Mapping[str, Any] | None = None) -> IngestOutcome:
    """Run ``ingest_space`` for ``key`` now, in this process; ``tags`` may name the run's own task
    (``nexus/task_id``). Never raises for a failed run: the outcome says what failed."""
    from nexus_pipelines.definitions import defs

    if instance is None:
        with dagster_instance() as fresh:
            return ingest_in_process(key, tags=tags, instance=fresh, progress=progress, run_config=run_config)
    if not instance.has_dynamic_partition(tenant_spaces.name, key.partition_key):
        instance.add_dynamic_partitions(tenant_spaces.name, [key.partition_key])
    job = defs.resolve_job_def("ingest_space")
    run_tags = {**tags_for_partition(key.partition_key), **(tags or {})}
    run_id = str(uuid.uuid4())
    steps = len(ingest_assets)
    done = threading.Event()
    with tqdm(total=steps, desc=f"ingesting {key.partition_key}", unit="step", disable=not progress) as bar:
        watcher = threading.Thread(target=_watch_steps, args=(instance, run_id, bar, done), daemon=True)
        watcher.start()
        try:
            result = job.execute_in_process(partition_key=key.partition_key, instance=instance, tags=run_tags,
                                            run_config=run_config or QUIET, run_id=run_id, raise_on_error=False)
        finally:
            done.set()
            watcher.join()
        bar.update(steps - bar.n)
    if not result.success:
        failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
        error = run_error(result.get_step_failure_events(), failures[0].message if failures else None)
        fail_run_tasks(NexusResource().landing(key), instance, run_id, run_tags, error, log)
        return IngestOutcome(run_id=run_id, success=False, error=error)
    table = {k: v.value for k, v in result.asset_materializations_for_node("space_table")[0].metadata.items()}
    return IngestOutcome(run_id=run_id, success=True, rows=table["rows"], rows_added=table["rows_added"],
                         rows_updated=table["rows_updated"], rows_deleted=table["rows_deleted"],
                         rows_skipped=table["rows_skipped"], table_version=table.get("table_version"))
