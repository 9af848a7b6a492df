"""Where one space's data lives, for an erasure: its table, its owner's blob and projection areas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fsspec

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import GlobalSpaceReadOnly
from nexus_query.landing import GLOBAL_SPACE_ID
from nexus_query.paths import SpaceLocation, TenantFiles
from nexus_query.routing import RoutingRegistry
from nexus_query.store.space import SpaceTable, _table_names, connect


@dataclass(frozen=True)
class ErasureTarget:
    """One space and everything its owner keeps about it. ``owner`` is the tenant id (``_global`` for
    the global space, which only system jobs build a target for)."""

    space_id: str
    owner: str
    location: SpaceLocation
    files: TenantFiles        # the owner's nexus_blob_store area
    projections: TenantFiles  # the owner's nexus_projection_store area
    table_storage: dict[str, Any] = field(default_factory=dict)  # fsspec options of the table's store

    def table_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The table folder's filesystem and path, to read its files byte for byte."""
        uri = self.location.dataset_uri
        protocol, _, rest = uri.partition("://")
        if not rest:
            return fsspec.filesystem("file"), uri
        return fsspec.filesystem(protocol, **self.table_storage), rest

    def table_exists(self) -> bool:
        return self.location.table_name in _table_names(connect(self.location))

    def open_table(self) -> SpaceTable | None:
        """The space's table, writable, or None when it does not exist (nothing to erase there)."""
        if not self.table_exists():
            return None
        table = connect(self.location).open_table(self.location.table_name)
        return SpaceTable(table, self.location, owner=self.owner, read_only=False)

    def drop_table(self) -> bool:
        """Delete the table with every version it has; False when there was none."""
        if not self.table_exists():
            return False
        connect(self.location).drop_table(self.location.table_name)
        return True


def tenant_target(ctx: RequestContext, space_id: str, registry: RoutingRegistry | None = None) -> ErasureTarget:
    """A tenant's space. The global space is refused here: it is erased only by a system job."""
    validate_id(space_id, "space_id")
    if space_id == GLOBAL_SPACE_ID:
        raise GlobalSpaceReadOnly("the global space is erased only by a system job")
    from nexus_query.paths import space_location

    registry = registry or RoutingRegistry.default()
    return ErasureTarget(space_id=space_id, owner=ctx.tenant_id,
                         location=space_location(registry.store_route(ctx), ctx, space_id),
                         files=TenantFiles.for_tenant(registry.blob_route(ctx), ctx),
                         projections=TenantFiles.for_tenant(registry.projection_route(ctx), ctx),
                         table_storage=registry.store_route(ctx).storage.for_fsspec())
