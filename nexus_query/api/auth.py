"""Identity from ``Authorization: Bearer <api key>`` only. Checked before routing and body parsing, so an
unauthenticated caller learns nothing about bodies, spaces or routes: every /nexus/ path answers 401, but
capability links (``/nexus/links/``), whose signed token is the permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus_query.api.errors import envelope_response
from nexus_query.context import RequestContext
from nexus_query.errors import NexusError, Unauthorized
from nexus_query.routing import RoutingRegistry, hash_api_key

PROTECTED_PREFIX = "/nexus/"
CAPABILITY_PREFIX = "/nexus/links/"  # a signed link is its own permission (nexus_query.links)
bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="Authorization: Bearer <api key>")


def api_key_of(header: bytes | None) -> str:
    scheme, _, key = (header or b"").decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
    return key.strip()


class AuthMiddleware:
    """Pure ASGI (no per-request task or body buffering), so it costs microseconds."""

    def __init__(self, app: ASGIApp, registry: Callable[[], RoutingRegistry]) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIX) \
                and not scope["path"].startswith(CAPABILITY_PREFIX):
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            try:
                key = api_key_of(header)
                ctx = self.registry().authenticate(key)
            except NexusError as exc:
                await envelope_response(exc)(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            state["ctx"], state["api_key_id"] = ctx, hash_api_key(key)
        await self.app(scope, receive, send)


def caller(request: Request,
           _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None) -> RequestContext:
    """The caller's context, set by ``AuthMiddleware`` (the Security parameter documents the scheme)."""
    return request.state.ctx
