"""``GET /nexus/links/{token}``: the picture or map a capability link names (``nexus_query.links``). No API
key: the signed token is the permission, so a click in the Dagster UI opens it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Path
from fastapi.responses import Response

from nexus_query.api.haze import MAP_POLICY
from nexus_query.links import MAX_TOKEN_CHARS, open_link, read_linked
from nexus_query.routing import RoutingRegistry


def links_router(current: Callable[[], RoutingRegistry]) -> APIRouter:
    router = APIRouter()

    @router.get("/links/{token}", response_class=Response, summary="A picture or map a capability link names",
                responses={200: {"content": {"image/png": {}, "text/html": {}},
                                 "description": "the file; 404 for a link that is not valid, 410 once expired"}},
                openapi_extra={"security": []})
    def get_link(token: str = Path(max_length=MAX_TOKEN_CHARS, description="the signed token of the link")
                 ) -> Response:
        registry = current()
        target = open_link(registry.config, token)
        headers = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer"}
        if target.kind == "map":
            headers["Content-Security-Policy"] = MAP_POLICY
        return Response(read_linked(registry, target), media_type=target.content_type, headers=headers)

    return router
