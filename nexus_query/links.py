"""Capability links: a URL that opens one picture or map of one tenant's projection store, without an API key,
until it expires. The Dagster UI follows a link with a plain click (no Bearer header), so the pictures and
maps a materialization links are served at ``GET /nexus/links/{token}``.

A token is ``nxl1.<payload>.<signature>`` (base64url), signed like query cursors (HMAC-SHA256 with the
cursor secret). The payload binds the environment, the store (a tenant and project, or the global space's
project), the file's path and the expiry; only HAZE snapshot pictures and maps and KPI charts can be named,
so a link never reaches documents, landing batches or receipts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

from nexus_query.config import NexusConfig
from nexus_query.context import RequestContext
from nexus_query.cursors import signer_for
from nexus_query.errors import Forbidden, NexusError, NotFound
from nexus_query.paths import TenantFiles, safe_relative_path
from nexus_query.routing import RoutingRegistry

PREFIX = "nxl1"
MAX_TOKEN_CHARS = 2048
LINK_INVALID = "this link is not valid: ask for a new one (re-run the asset or follow its latest materialization)"
_ID = r"[a-z0-9][a-z0-9_-]{0,62}"
LINKABLE = re.compile(rf"haze/{_ID}/snapshots/{_ID}/map\.(png|html)|kpi/{_ID}/charts/[A-Za-z0-9._-]{{1,120}}\.png")
CONTENT_TYPES = {".png": "image/png", ".html": "text/html; charset=utf-8"}


class LinkInvalid(NotFound):
    """Forged, damaged, or naming a file that is gone: the same answer for each, so links leak nothing."""

    code = "nexus.link_invalid"


class LinkExpired(NexusError):
    code = "nexus.link_expired"
    status = 410


@dataclass(frozen=True)
class LinkTarget:
    """The file a link opens: in ``tenant``'s projection store of ``project`` (``tenant`` None: the global
    space's store)."""

    environment: str
    tenant: str | None
    project: str
    path: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.path[self.path.rfind("."):]]

    @property
    def kind(self) -> Literal["map", "picture"]:
        return "map" if self.path.endswith(".html") else "picture"

    def files(self, registry: RoutingRegistry) -> TenantFiles:
        if self.tenant is None:
            route = registry.global_routes(self.environment).nexus_projection_store
            if route is None:
                raise LinkInvalid(LINK_INVALID)
            return TenantFiles.for_global(route, self.project)
        ctx = RequestContext(self.tenant, self.project, self.environment)
        return TenantFiles.for_tenant(registry.projection_route(ctx), ctx)


def target_for(environment: str, tenant: str | None, project: str, *parts: str) -> LinkTarget:
    """The target of a file in ``tenant``'s projection store (``tenant`` None: the global space's)."""
    path = safe_relative_path("/".join(parts))
    if not LINKABLE.fullmatch(path):
        raise Forbidden("only HAZE maps and pictures and KPI charts can be linked", path=path)
    return LinkTarget(environment, tenant, project, path)


def issue_link(config: NexusConfig, target: LinkTarget, *, now: float | None = None) -> str:
    """The full URL, on ``links.public_url``, that opens ``target`` until ``links.ttl_days`` from now."""
    expires = int((now if now is not None else time.time()) + config.links.ttl_days * 86_400)
    token = signer_for(config).seal(PREFIX, {"e": target.environment, "t": target.tenant, "p": target.project,
                                             "f": target.path, "x": expires})
    return f"{config.links.public_url.rstrip('/')}/nexus/links/{token}"


def open_link(config: NexusConfig, token: str, *, now: float | None = None) -> LinkTarget:
    """Verify ``token``: its target, or ``LinkInvalid`` (404) / ``LinkExpired`` (410)."""
    invalid = LinkInvalid(LINK_INVALID)
    body = signer_for(config).unseal(PREFIX, token, MAX_TOKEN_CHARS)
    if body is None:
        raise invalid
    try:
        target = LinkTarget(str(body["e"]), body["t"], str(body["p"]), str(body["f"]))
        expires = int(body["x"])
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if not LINKABLE.fullmatch(target.path) or not (target.tenant is None or isinstance(target.tenant, str)):
        raise invalid
    if (now if now is not None else time.time()) > expires:
        raise LinkExpired("this link has expired: follow the asset's latest materialization for a new one")
    return target


def read_linked(registry: RoutingRegistry, target: LinkTarget) -> bytes:
    """The linked file's bytes; ``LinkInvalid`` when it is gone (a pruned snapshot, an erased space)."""
    files = target.files(registry)
    try:
        return files.read_bytes(*target.path.split("/"))
    except FileNotFoundError:
        raise LinkInvalid(LINK_INVALID) from None
