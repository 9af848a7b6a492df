"""The loop of a run that covers many partitions (a range from a schedule or a backfill policy's batch):
each partition's work with its own metadata and check result, and one failing space that does not stop the
others."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dagster as dg

from nexus_query.errors import NexusError

T = TypeVar("T")


@dataclass(frozen=True)
class PartitionDone(Generic[T]):
    """One partition's work: its result (None when there was nothing to do), the metadata its partition's
    materialization gets, and a line for the run's log (None: nothing worth a line)."""

    result: T | None
    metadata: Mapping[str, Any]
    summary: str | None = None


@dataclass(frozen=True)
class BatchOutcome(Generic[T]):
    """What a run over ``partitions`` partitions did: results and errors, by partition key, in run order."""

    results: dict[str, T]
    failed: dict[str, str]  # "code: message" of the error that stopped the partition
    partitions: int

    @property
    def all_failed(self) -> bool:
        return bool(self.failed) and len(self.failed) == self.partitions


def run_partitions(context: dg.AssetExecutionContext, work: Callable[[str], PartitionDone[T]]) -> BatchOutcome[T]:
    """``work`` for each partition key of the run, in order, each partition's metadata recorded on it. A
    ``NexusError`` (a tenant's missing route, an unreadable source) fails a run of one partition as any
    error would; in a run of many it is recorded on its partition (status failed) and the others go on."""
    keys = context.partition_keys
    results: dict[str, T] = {}
    failed: dict[str, str] = {}
    for number, partition_key in enumerate(keys, 1):
        try:
            done = work(partition_key)
        except NexusError as exc:
            if len(keys) == 1:
                raise
            failed[partition_key] = f"{exc.code}: {exc.message}"
            context.log.error("[%d/%d] %s: %s", number, len(keys), partition_key, exc.message)
            context.add_asset_metadata({"status": "failed", "error": failed[partition_key]},
                                       partition_key=partition_key)
            continue
        if done.result is not None:
            results[partition_key] = done.result
        if done.summary is not None:
            context.log.info("[%d/%d] %s: %s", number, len(keys), partition_key, done.summary)
        context.add_asset_metadata(dict(done.metadata), partition_key=partition_key)
    return BatchOutcome(results, failed, len(keys))


def partition_checks(context: dg.AssetExecutionContext, check_name: str, outcome: BatchOutcome[T],
                     metadata: Callable[[T | None], Mapping[str, Any]],
                     ) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """One evaluation of the asset's partitioned check ``check_name`` per partition of the run, each on its
    own partition: passed unless the partition failed (its error then), else ``metadata`` of its result.

    Dagster 1.13 gives an ``AssetCheckResult`` the run's partition only when the run has one, so a run over
    a range would record one result for all its spaces and the check's plots would mix them; an
    ``AssetCheckEvaluation`` names its partition. The check's own output is then yielded empty, as Dagster
    does for an ``AssetCheckResult`` (an asset cannot run without its checks); the evaluations count for the
    materializations of the same run."""
    key = dg.AssetCheckKey(context.assets_def.key, check_name)
    for partition_key in context.partition_keys:
        error = outcome.failed.get(partition_key)
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=check_name, passed=error is None, partition=partition_key,
            metadata={"error": error} if error is not None else dict(metadata(outcome.results.get(partition_key))))
    yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))
