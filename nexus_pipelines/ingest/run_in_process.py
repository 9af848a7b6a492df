"""Run one space's ingest job (``ingest_space``, the job the landing sensor starts) in this process, with
a progress bar over its steps: what ``make demo`` does for each example space, and what a ``--wait``
command (``nexus cognition import --wait``) does for a user who has no Dagster daemon running.

The run is recorded in the Dagster instance at ``$DAGSTER_HOME`` when it is set (so ``make dev`` shows it
afterwards), else in a throwaway in-memory one. A run started for a task (``task_id``) carries it in the
``nexus/task_id`` tag, so the ingest assets move that task to running, then succeeded or failed. A run
that fails settles its tasks here, as ``ingest_failure_sensor`` does for a daemon's run: whatever step
failed, every task it claimed is ``failed`` with the root error, none is left ``running``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from nexus_pipelines.common.in_process import QUIET, asset_metadata, dagster_instance, first_step_error
from nexus_pipelines.common.progress import progress as progress_bar
from nexus_pipelines.common.tasks import TASK_TAG, fail_run_tasks
from nexus_pipelines.partitions import TENANT_SPACES, SpaceKey
from nexus_pipelines.resources import NexusResource

INGEST_JOB = "ingest_space"


@dataclass(frozen=True)
class IngestOutcome:
    """What one in-process ingest run did: the run, and the metadata of its assets by asset name."""

    run_id: str
    success: bool
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    @property
    def table(self) -> dict[str, Any]:
        """``space_table``'s counts: rows, rows_added, rows_updated, rows_deleted, rows_skipped, ..."""
        return self.assets.get("space_table", {})


def ingest_space_in_process(key: SpaceKey, *, instance: dg.DagsterInstance | None = None, task_id: str | None = None,
                            progress: bool = True, tags: Mapping[str, str] | None = None,
                            run_config: Mapping[str, Any] | None = None) -> IngestOutcome:
    """One run of ``ingest_space`` for ``key``'s partition, in this process; a failed step is reported in
    the outcome (``success``, ``error``), not raised."""
    if instance is None:
        with dagster_instance() as own:
            return ingest_space_in_process(key, instance=own, task_id=task_id, progress=progress, tags=tags,
                                           run_config=run_config)
    from nexus_pipelines.definitions import defs  # the code location: resources and every job

    job = defs.resolve_job_def(INGEST_JOB)
    if not instance.has_dynamic_partition(TENANT_SPACES, key.partition_key):
        instance.add_dynamic_partitions(TENANT_SPACES, [key.partition_key])
    run_tags = {**key.run_tags, **(tags or {})}
    if task_id:
        run_tags[TASK_TAG] = task_id
    run_id = str(uuid.uuid4())
    steps = [node.name for node in job.graph.nodes]
    with progress_bar(total=len(steps), desc=f"ingesting {key.partition_key}", unit="step", disable=not progress,
                      leave=False) as bar:
        instance.add_event_listener(run_id, lambda entry: _advance(bar, entry))
        result = job.execute_in_process(partition_key=key.partition_key, instance=instance, run_id=run_id,
                                        run_config=dict(run_config if run_config is not None else QUIET),
                                        tags=run_tags, raise_on_error=False)
    error = None
    if not result.success:
        error = (first_step_error(result.all_events, root=True) or "the ingest run failed").strip()
        fail_run_tasks(NexusResource().landing(key), instance, result.run_id, run_tags, error[:2000],
                       logging.getLogger(__name__))
    return IngestOutcome(result.run_id, result.success, asset_metadata(result), error)


def _advance(bar: Any, entry: dg.EventLogEntry) -> None:
    event = entry.dagster_event
    if event is None:
        return
    if event.event_type_value == "STEP_START":
        bar.set_postfix_str(event.step_key or "", refresh=True)
    elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
        bar.update(1)

