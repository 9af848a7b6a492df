"""The notebook entry point: authenticate once, then query spaces by id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nexus_query.config import load_config
from nexus_query.context import RequestContext
from nexus_query.errors import InvalidRequest
from nexus_query.haze import HazeSnapshot, HazeStore
from nexus_query.query import query
from nexus_query.results import QueryResult
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore


class Nexus:
    """A tenant's view of Nexus; identity is fixed at connect time and never taken from arguments."""

    def __init__(self, ctx: RequestContext, registry: RoutingRegistry) -> None:
        self.ctx = ctx
        self.registry = registry
        self.store = SpaceStore(registry)

    def query(self, space_id: str, q: str, *, min_score: float | None = None, **kwargs: Any) -> QueryResult:
        """``nexus_query.query`` as this tenant: ``filters``, ``top_k``, ``mode``, ``include_global``,
        ``cursor``; ``min_score`` drops hits scoring below it (scores are relevances in [0, 1])."""
        return query(self.ctx, space_id, q, store=self.store, min_score=min_score, **kwargs)

    def pages(self, space_id: str, q: str, *, max_pages: int = 100, **kwargs: Any) -> Iterator[QueryResult]:
        """Every page of one query in turn, following ``next_cursor`` (at most ``max_pages``)."""
        cursor = None
        for _ in range(max_pages):
            result = self.query(space_id, q, cursor=cursor, **kwargs)
            yield result
            cursor = result.next_cursor
            if cursor is None:
                return

    def haze(self, space_id: str, snapshot: str | None = None) -> HazeSnapshot:
        """The space's HAZE map (the latest, or ``snapshot``): ``.to_pandas()``, ``.clusters``, ``.url()``
        (drawn by ``nexus_pipelines.haze.plot.plot_snapshot``)."""
        return HazeStore.for_context(self.ctx, self.registry).open(space_id, snapshot)

    def __repr__(self) -> str:
        c = self.ctx
        return f"Nexus(tenant={c.tenant_id!r}, project={c.project_id!r}, environment={c.environment!r})"


def connect(api_key: str | None = None, *, context: RequestContext | None = None,
            config_path: str | None = None) -> Nexus:
    """Connect with an API key (as services do) or an explicit context (trusted code, e.g. jobs)."""
    registry = RoutingRegistry(load_config(config_path)) if config_path else RoutingRegistry.default()
    if (api_key is None) == (context is None):
        raise InvalidRequest("pass exactly one of api_key or context")
    ctx = context or registry.authenticate(api_key)
    return Nexus(ctx, registry)
