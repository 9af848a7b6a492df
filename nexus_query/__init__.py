"""nexus_query: read what the Nexus pipelines materialized. Never imports dagster.

    from nexus_query import connect
    nx = connect(api_key="acme-demo-key")
    nx.query("main", "how do I return a tent?").to_polars()

Names load on first use (PEP 562), so ``import nexus_query.errors`` or the ``nexus`` command does not pay
for LanceDB, Arrow and the embedder before it needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus_query.client import Nexus, connect
    from nexus_query.context import RequestContext, validate_id
    from nexus_query.errors import (
        BudgetExceeded,
        CursorInvalid,
        EmbedderMismatch,
        Forbidden,
        GlobalSpaceReadOnly,
        InvalidRequest,
        MissingRoute,
        NexusError,
        NotFound,
        SpaceNotFound,
        Unauthorized,
    )
    from nexus_query.query import query
    from nexus_query.results import Hit, QueryResult
    from nexus_query.routing import RoutingRegistry

_HOMES = {
    "nexus_query.client": ("Nexus", "connect"),
    "nexus_query.context": ("RequestContext", "validate_id"),
    "nexus_query.errors": ("BudgetExceeded", "CursorInvalid", "EmbedderMismatch", "Forbidden", "GlobalSpaceReadOnly",
                           "InvalidRequest", "MissingRoute", "NexusError", "NotFound", "SpaceNotFound",
                           "Unauthorized"),
    "nexus_query.query": ("query",),
    "nexus_query.results": ("Hit", "QueryResult"),
    "nexus_query.routing": ("RoutingRegistry",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "BudgetExceeded", "CursorInvalid", "EmbedderMismatch", "Forbidden", "GlobalSpaceReadOnly", "Hit",
    "InvalidRequest", "MissingRoute", "Nexus", "NexusError", "NotFound", "QueryResult", "RequestContext",
    "RoutingRegistry", "SpaceNotFound", "Unauthorized", "connect", "query", "validate_id",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus_query' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Importing the submodule ``nexus_query.query`` binds it on the package; the package's ``query``
    stays the function (as the eager ``from nexus_query.query import query`` used to leave it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _MODULE_OF and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
