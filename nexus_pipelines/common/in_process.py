"""Running a job in this process, for the ``--wait`` commands and ``make demo`` (no daemon needed): the
Dagster instance to record the run in, and what the run's events say (its assets' metadata, its errors)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg

from nexus_pipelines.common.tasks import root_cause

# in-process runs log warnings and errors only: the caller shows progress its own way (`-v` is not a
# Dagster log level; the run's whole event log stays in the instance)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# the steps' own progress lines (``context.log.info``) without Dagster's DEBUG event lines
STEPS_ONLY = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@contextlib.contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The instance at ``$DAGSTER_HOME`` when it is set (``make dev`` shows the run afterwards), else an
    ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def asset_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each materialized asset's metadata as plain values, by asset name (the last part of its key)."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.path[-1]] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def first_step_error(events: Iterable[dg.DagsterEvent], *, root: bool) -> str | None:
    """The message of the first failed step's error (its root cause when ``root``: the user's error, not
    Dagster's wrapper around it); None when no step failed with one."""
    for event in events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error is not None:
                return root_cause(error) if root else error.message
    return None
