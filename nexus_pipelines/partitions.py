"""One dynamic partition per tenant space, plus one for the shared global space.

Key form: ``{tenant_id}.{project_id}.{space_id}``, e.g. ``acme.default.main``. Ids never contain a
dot (see ``nexus_query.context.ID_PATTERN``), so the key splits back unambiguously, and it avoids the
characters Dagster refuses in keys (``,`` ``|`` ``[`` ``]``, control characters, ``...``). The global
space has no tenant: its key is the single word ``global``, and only system runs write it. The
environment is the code location's (``NexusResource.environment``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import dagster as dg

from nexus_pipelines.common.dagster_tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidId
from nexus_query.landing import GLOBAL_SPACE_ID
from nexus_query.paths import GLOBAL_TENANT_DIR

TENANT_SPACES = "tenant_spaces"  # the partitions' name, typed ``str`` (the definition's ``name`` is optional)
tenant_spaces = dg.DynamicPartitionsDefinition(name=TENANT_SPACES)

GLOBAL_PARTITION_KEY = "global"
GLOBAL_PROJECT_ID = "shared"  # the global space's files live under _global/shared/ (TenantFiles.for_global)
# Runs carry their tenant in this tag; dagster.yaml limits concurrent runs per distinct value.
TENANT_TAG = "nexus/tenant"


@dataclass(frozen=True)
class SpaceKey:
    tenant_id: str
    project_id: str
    space_id: str

    def __post_init__(self) -> None:
        if self.tenant_id == GLOBAL_TENANT_DIR:
            if (self.project_id, self.space_id) != (GLOBAL_PROJECT_ID, GLOBAL_SPACE_ID):
                raise InvalidId(f"the global space's key is {GLOBAL_PARTITION_KEY!r}", field="partition_key")
            return
        validate_id(self.tenant_id, "tenant_id")
        validate_id(self.project_id, "project_id")
        validate_id(self.space_id, "space_id")
        if self.space_id == GLOBAL_SPACE_ID:
            raise InvalidId(f"space id {GLOBAL_SPACE_ID!r} is reserved for the global space", field="space_id")

    @classmethod
    def global_space(cls) -> SpaceKey:
        return cls(GLOBAL_TENANT_DIR, GLOBAL_PROJECT_ID, GLOBAL_SPACE_ID)

    @property
    def is_global(self) -> bool:
        return self.tenant_id == GLOBAL_TENANT_DIR

    @property
    def partition_key(self) -> str:
        return GLOBAL_PARTITION_KEY if self.is_global else f"{self.tenant_id}.{self.project_id}.{self.space_id}"

    @classmethod
    def parse(cls, partition_key: str) -> SpaceKey:
        if partition_key == GLOBAL_PARTITION_KEY:
            return cls.global_space()
        parts = partition_key.split(".")
        if len(parts) != 3 or parts[0] == GLOBAL_TENANT_DIR:  # the global space has one spelling: 'global'
            raise InvalidId(f"partition key {partition_key!r} is not tenant.project.space or 'global'",
                            field="partition_key")
        return cls(*parts)

    def context(self, environment: str) -> RequestContext:
        """The tenant's identity for this space; the global space has none (system runs write it)."""
        if self.is_global:
            raise InvalidId("the global space has no tenant context", field="partition_key")
        return RequestContext(self.tenant_id, self.project_id, environment)

    @property
    def run_tags(self) -> dict[str, str]:
        return {TENANT_TAG: self.tenant_id}


def tags_for_partition(partition_key: str) -> dict[str, str]:
    """Tags every run of a space partition gets, so the per-tenant run limit applies to it."""
    return SpaceKey.parse(partition_key).run_tags


def space_job(name: str, assets: Sequence[Any], description: str) -> dg.UnresolvedAssetJobDefinition:
    """A job over one space partition whose runs, however launched (UI, backfill, sensor), carry the
    tenant's tag, so dagster.yaml's one-run-per-tenant limit holds for it."""
    return dg.define_asset_job(
        name, selection=dg.AssetSelection.assets(*assets), description=description,
        config=dg.PartitionedConfig(partitions_def=tenant_spaces, run_config_for_partition_key_fn=lambda _: {},
                                    tags_for_partition_key_fn=tags_for_partition))


def changed_range_run_requests(ordered_keys: Sequence[str], changed: AbstractSet[str], size: int, *, run_key: str,
                               batch_tag: str, run_config: Mapping[str, Any] | None = None) -> list[dg.RunRequest]:
    """Partition-range runs over the ``changed`` keys only. A range covers every partition between its ends
    in Dagster's order (``ordered_keys``, the order the partitions were added), so each run is a stretch of
    consecutive changed keys, at most ``size`` long: an unchanged space is never part of a run. Spaces that
    change together (added together, e.g. one tenant's) share runs; scattered ones get runs of their own."""
    groups: list[list[str]] = [[]]
    for key in ordered_keys:
        if key in changed and len(groups[-1]) < size:
            groups[-1].append(key)
        elif key in changed:
            groups.append([key])
        elif groups[-1]:
            groups.append([])
    return _range_requests([g for g in groups if g], run_key=run_key, batch_tag=batch_tag, run_config=run_config)


def _range_requests(groups: list[list[str]], *, run_key: str, batch_tag: str,
                    run_config: Mapping[str, Any] | None) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=f"{run_key}/{number}", run_config=dict(run_config or {}),
                          tags={ASSET_PARTITION_RANGE_START_TAG: group[0], ASSET_PARTITION_RANGE_END_TAG: group[-1],
                                batch_tag: f"{number}/{len(groups)}"})
            for number, group in enumerate(groups, 1)]
