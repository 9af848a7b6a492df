"""Which spaces changed, read from Dagster's event log: one indexed query per asset, whatever the number of
spaces, so schedules can run only where there is work.

Every event has a storage id that grows with time, so "written since its last maintenance" is "the latest
write event of the partition has a larger storage id than its latest maintenance event", and "written in
the last day" is "has a write event after the first event of the last day".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import dagster as dg

EventKind = dg.DagsterEventType


def latest_ids(instance: dg.DagsterInstance, asset_keys: Iterable[dg.AssetKey],
               kinds: Iterable[EventKind] = (EventKind.ASSET_MATERIALIZATION,),
               after_id: int | None = None) -> dict[str, int]:
    """Partition key -> storage id of its latest event of ``kinds`` on any of ``asset_keys`` (only events
    after ``after_id`` when given)."""
    latest: dict[str, int] = {}
    for key in asset_keys:
        for kind in kinds:
            for partition, storage_id in instance.get_latest_storage_id_by_partition(
                    key, kind, after_cursor=after_id).items():
                if storage_id > latest.get(partition, -1):
                    latest[partition] = storage_id
    return latest


def first_id_since(instance: dg.DagsterInstance, asset_keys: Iterable[dg.AssetKey], moment: datetime,
                   kinds: Iterable[EventKind] = (EventKind.ASSET_MATERIALIZATION,)) -> int | None:
    """Storage id of the first event of ``kinds`` on ``asset_keys`` at or after ``moment``; None if none."""
    found: list[int] = []
    for key in asset_keys:
        records_filter = dg.AssetRecordsFilter(asset_key=key, after_timestamp=moment.timestamp())
        for kind in kinds:
            fetch = (instance.fetch_observations if kind == EventKind.ASSET_OBSERVATION
                     else instance.fetch_materializations)
            records = fetch(records_filter, limit=1, ascending=True).records
            found += [r.storage_id for r in records]
    return min(found) if found else None


def changed_since_done(instance: dg.DagsterInstance, changes: Iterable[dg.AssetKey], done: dg.AssetKey,
                       change_kinds: Iterable[EventKind] = (EventKind.ASSET_MATERIALIZATION,)) -> set[str]:
    """Partitions with a change event newer than their latest ``done`` materialization (or none yet)."""
    changed = latest_ids(instance, changes, change_kinds)
    finished = latest_ids(instance, [done])
    return {p for p, storage_id in changed.items() if storage_id > finished.get(p, -1)}


def changed_after(instance: dg.DagsterInstance, changes: Iterable[dg.AssetKey], moment: datetime,
                  change_kinds: Iterable[EventKind] = (EventKind.ASSET_MATERIALIZATION,)) -> set[str]:
    """Partitions with a change event at or after ``moment``."""
    changes, change_kinds = list(changes), list(change_kinds)
    first = first_id_since(instance, changes, moment, change_kinds)
    return set() if first is None else set(latest_ids(instance, changes, change_kinds, after_id=first - 1))
