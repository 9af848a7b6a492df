"""The routing registry: which store serves which tenant, and who an API key is."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal, overload

from nexus_query.config import (
    EnvironmentConfig,
    FileRoute,
    NexusConfig,
    StoreRoute,
    TenantRoutes,
    default_config,
)
from nexus_query.context import RequestContext
from nexus_query.errors import MissingRoute, Unauthorized

# The stores a tenant is routed to (``config.RESOURCE_KINDS``), typed: a store route or a file route.
StoreKind = Literal["nexus_store"]
FileKind = Literal["nexus_blob_store", "nexus_projection_store"]
ResourceKind = Literal[StoreKind, FileKind]


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class RoutingRegistry:
    def __init__(self, config: NexusConfig) -> None:
        self.config = config
        self._keys = {entry.sha256.lower(): entry for entry in config.api_keys}

    @classmethod
    def default(cls) -> RoutingRegistry:
        return _registry_for(default_config())

    def _environment(self, environment: str) -> EnvironmentConfig | None:
        return self.config.environments.get(environment)

    def routes(self, ctx: RequestContext) -> TenantRoutes:
        env = self._environment(ctx.environment)
        return (env.tenants.get(ctx.tenant_id) if env else None) or TenantRoutes()

    @overload
    def route(self, ctx: RequestContext, kind: StoreKind) -> StoreRoute: ...

    @overload
    def route(self, ctx: RequestContext, kind: FileKind) -> FileRoute: ...

    def route(self, ctx: RequestContext, kind: ResourceKind) -> StoreRoute | FileRoute:
        """The caller's route of ``kind``, or the 503 ``{kind}.missing_route``."""
        route = getattr(self.routes(ctx), kind)
        if route is None:
            raise MissingRoute(kind, f"no {kind} route is configured for tenant {ctx.tenant_id!r} in environment "
                                     f"{ctx.environment!r} of {self.config.source}",
                               environment=ctx.environment, tenant=ctx.tenant_id, config=self.config.source)
        return route

    def store_route(self, ctx: RequestContext) -> StoreRoute:
        return self.route(ctx, "nexus_store")

    def blob_route(self, ctx: RequestContext) -> FileRoute:
        return self.route(ctx, "nexus_blob_store")

    def projection_route(self, ctx: RequestContext) -> FileRoute:
        return self.route(ctx, "nexus_projection_store")

    def global_routes(self, environment: str) -> TenantRoutes:
        env = self._environment(environment)
        return env.global_routes if env else TenantRoutes()

    def global_store_route(self, environment: str) -> StoreRoute:
        route = self.global_routes(environment).nexus_store
        if route is None:
            raise MissingRoute("nexus_store", "no route is configured for the global space",
                               environment=environment, space="global")
        return route

    def tenants(self, environment: str) -> list[str]:
        """Tenants of an environment that have a vector store (the ones pipelines serve)."""
        env = self._environment(environment)
        return sorted(t for t, r in (env.tenants.items() if env else []) if r.nexus_store is not None)

    def environments(self) -> list[str]:
        return sorted(self.config.environments)

    def requests_per_minute(self, key_sha256: str) -> int | None:
        """The request rate allowed to the key with this hash: its own, else the API's default."""
        entry = self._keys.get(key_sha256)
        own = entry.requests_per_minute if entry is not None else None
        return own if own is not None else self.config.api.requests_per_minute

    def authenticate(self, api_key: str | None) -> RequestContext:
        """Map an API key to its context; only hashes are compared, the key itself is never stored."""
        if not api_key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
        entry = self._keys.get(hash_api_key(api_key))
        if entry is None:
            raise Unauthorized("invalid API key")
        return RequestContext(entry.tenant_id, entry.project_id, entry.environment)


@lru_cache(maxsize=8)
def _registry_for(config: NexusConfig) -> RoutingRegistry:
    return RoutingRegistry(config)
