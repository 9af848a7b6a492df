"""One dynamic partition per tenant space.

Key form: ``{tenant_id}.{project_id}.{space_id}``, e.g. ``acme.default.main``. Ids never contain a
dot (see ``nexus_query.context.ID_PATTERN``), so the key splits back unambiguously, and it avoids the
characters Dagster refuses in keys. The environment is the code location's (``NexusResource``).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidId

tenant_spaces = dg.DynamicPartitionsDefinition(name="tenant_spaces")


@dataclass(frozen=True)
class SpaceKey:
    tenant_id: str
    project_id: str
    space_id: str

    def __post_init__(self) -> None:
        validate_id(self.tenant_id, "tenant_id")
        validate_id(self.project_id, "project_id")
        validate_id(self.space_id, "space_id")

    @property
    def partition_key(self) -> str:
        return f"{self.tenant_id}.{self.project_id}.{self.space_id}"

    @classmethod
    def parse(cls, partition_key: str) -> "SpaceKey":
        parts = partition_key.split(".")
        if len(parts) != 3:
            raise InvalidId(f"partition key {partition_key!r} is not tenant.project.space")
        return cls(*parts)

    def context(self, environment: str) -> RequestContext:
        return RequestContext(self.tenant_id, self.project_id, environment)
