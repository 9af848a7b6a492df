"""Who calls: over stdio the process's ``NEXUS_API_KEY``; over streamable HTTP the ``Authorization: Bearer
<key>`` of each request, checked before the MCP layer reads anything (401 without a valid one) and read
again by every tool call, so identity is per request and never from a tool's arguments."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from nexus_query.api.auth import api_key_of
from nexus_query.api.errors import envelope_response
from nexus_query.context import RequestContext
from nexus_query.errors import NexusError, Unauthorized
from nexus_query.mcp.tools import Caller
from nexus_query.routing import RoutingRegistry

API_KEY_ENV = "NEXUS_API_KEY"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nexus"'}


def stdio_key() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise Unauthorized(f"nexus mcp over stdio needs the API key in {API_KEY_ENV}")
    return key


def caller_of(request: Any | None) -> Caller:
    """The caller of one MCP request: ``request`` is the HTTP request that carried it (None over stdio)."""
    registry = RoutingRegistry.default()
    if request is None:
        return Caller(registry.authenticate(stdio_key()), registry)
    header = request.headers.get("authorization")
    ctx: RequestContext = registry.authenticate(api_key_of(header.encode("latin-1") if header else None))
    return Caller(ctx, registry)


class BearerAuth:
    """Pure ASGI: every HTTP request needs a valid key, or it gets the 401 envelope (and nothing else)."""

    def __init__(self, app: ASGIApp, registry: Callable[[], RoutingRegistry] = RoutingRegistry.default) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            try:
                self.registry().authenticate(api_key_of(header))
            except NexusError as exc:
                await envelope_response(exc, headers=CHALLENGE if exc.status == 401 else None)(scope, receive, send)
                return
        await self.app(scope, receive, send)
