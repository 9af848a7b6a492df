"""Dagster resources: thin, typed handles on nexus_query's registry, stores and embedder."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import dagster as dg
from pydantic import PrivateAttr

from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.pictures import PictureLinks
from nexus_query.config import FileRoute, load_config
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo, EmbeddingProvider, provider_for_space
from nexus_query.errors import MissingRoute, SpaceNotFound
from nexus_query.landing import LandingZone
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore, SpaceTable


class NexusResource(dg.ConfigurableResource):
    """The Nexus deployment this code location serves.

    Everything an asset needs for its partition goes through here, so a tenant partition only ever
    reaches that tenant's routes, and the global partition only the global routes (system path).
    """

    config_path: str | None = None  # the routing registry file; None: $NEXUS_CONFIG or the shipped default
    environment: str = "dev"

    _registry: RoutingRegistry | None = PrivateAttr(default=None)

    @property
    def registry(self) -> RoutingRegistry:
        if self.config_path is None:
            return RoutingRegistry.default()  # cached per process; re-read when NEXUS_CONFIG or NEXUS_HOME change
        if self._registry is None:
            self._registry = RoutingRegistry(load_config(self.config_path))
        return self._registry

    @property
    def store(self) -> SpaceStore:
        return SpaceStore(self.registry)

    def provider_for(self, key: SpaceKey) -> EmbeddingProvider:
        """The embedder that writes this space: the one that built it (a space keeps its embedder when the
        default changes), or the configured one for a new space."""
        try:
            space = (self.store.open_global(self.environment) if key.is_global
                     else self.store.open(key.context(self.environment), key.space_id))
            built_by = space.embedder
        except SpaceNotFound:
            built_by = None
        return provider_for_space(self.registry.config, built_by)

    def space_key(self, partition_key: str) -> SpaceKey:
        return SpaceKey.parse(partition_key)

    def context_for(self, partition_key: str) -> RequestContext:
        return SpaceKey.parse(partition_key).context(self.environment)

    def owner_context(self, key: SpaceKey) -> RequestContext | None:
        """Whose rows these are and whom embedding bills: the tenant, or None for the global space."""
        return None if key.is_global else key.context(self.environment)

    def tenant_files(self, ctx: RequestContext) -> TenantFiles:
        return TenantFiles.for_tenant(self.registry.blob_route(ctx), ctx)

    def _tenant_route(self, kind: str, ctx: RequestContext) -> FileRoute:
        if kind == "nexus_projection_store":
            return self.registry.projection_route(ctx)
        return self.registry.blob_route(ctx)

    def files(self, key: SpaceKey, kind: str = "nexus_blob_store") -> TenantFiles:
        """The space owner's area of ``nexus_blob_store`` (landing zone, blobs, intermediate data) or of
        ``nexus_projection_store`` (HAZE maps)."""
        if not key.is_global:
            ctx = key.context(self.environment)
            return TenantFiles.for_tenant(self._tenant_route(kind, ctx), ctx)
        route = getattr(self.registry.global_routes(self.environment), kind)
        if route is None:
            raise MissingRoute(kind, f"no {kind} route is configured for the global space",
                               environment=self.environment, space="global")
        return TenantFiles.for_global(route, key.project_id)

    def picture_links(self, key: SpaceKey) -> PictureLinks:
        """Links to files of the space owner's projection store that open from the Dagster UI."""
        return PictureLinks(self.registry.config, self.environment, None if key.is_global else key.tenant_id,
                            key.project_id)

    def tenant_areas(self, kind: str = "nexus_blob_store") -> Iterator[tuple[str, str, TenantFiles]]:
        """(tenant, project, area) for every project folder in the ``kind`` store of every tenant of the
        environment that has a vector store: what sensors scan."""
        for tenant in self.registry.tenants(self.environment):
            try:
                route = self._tenant_route(kind, RequestContext(tenant, environment=self.environment))
            except MissingRoute:
                continue
            for files in TenantFiles.of_every_project(route, tenant):
                yield tenant, posixpath.basename(files.root), files

    def landing(self, key: SpaceKey) -> LandingZone:
        return LandingZone(self.files(key))

    def open_space(self, key: SpaceKey, embedder: EmbedderInfo) -> SpaceTable:
        """The space's table, writable; created on first use. The global one through the system path."""
        if key.is_global:
            return self.store.open_global_for_system(self.environment, embedder)
        return self.store.open_or_create(key.context(self.environment), key.space_id, embedder)
