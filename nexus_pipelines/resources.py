"""Dagster resources: thin, typed handles on nexus_query's registry, stores and embedder."""

from __future__ import annotations


import dagster as dg
from pydantic import PrivateAttr

from nexus_query.config import load_config
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider, get_provider
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore
from nexus_pipelines.partitions import SpaceKey


class NexusResource(dg.ConfigurableResource):
    """The Nexus deployment this code location serves."""

    config_path: str | None = None  # the routing registry file; None: $NEXUS_CONFIG or the shipped default
    environment: str = "dev"

    _registry: RoutingRegistry | None = PrivateAttr(default=None)

    @property
    def registry(self) -> RoutingRegistry:
        if self._registry is None:
            self._registry = (RoutingRegistry(load_config(self.config_path)) if self.config_path
                              else RoutingRegistry.default())
        return self._registry

    @property
    def store(self) -> SpaceStore:
        return SpaceStore(self.registry)

    @property
    def provider(self) -> EmbeddingProvider:
        return get_provider(self.registry.config)

    def space_key(self, partition_key: str) -> SpaceKey:
        return SpaceKey.parse(partition_key)

    def context_for(self, partition_key: str) -> RequestContext:
        return SpaceKey.parse(partition_key).context(self.environment)

    def tenant_files(self, ctx: RequestContext) -> TenantFiles:
        return TenantFiles.for_tenant(self.registry.blob_route(ctx), ctx)
