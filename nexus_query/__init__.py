"""nexus_query: read what the Nexus pipelines materialized. Never imports dagster.

    from nexus_query import connect
    nx = connect(api_key="acme-demo-key")
    nx.query("main", "how do I return a tent?").to_polars()
"""

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

__all__ = [
    "BudgetExceeded", "CursorInvalid", "EmbedderMismatch", "Forbidden", "GlobalSpaceReadOnly", "Hit",
    "InvalidRequest", "MissingRoute", "Nexus", "NexusError", "NotFound", "QueryResult", "RequestContext",
    "RoutingRegistry", "SpaceNotFound", "Unauthorized", "connect", "query", "validate_id",
]
