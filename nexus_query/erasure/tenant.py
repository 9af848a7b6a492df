"""Erasing a whole tenant (a system operation: no tenant request reaches it): every space of every
project is erased as a whole space (verified, with its receipt), then the tenant's remaining areas
(tasks, artifacts, blobs, conversation sources and exports, receipts) and its table folders go."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import fsspec

from nexus_query.context import ID_PATTERN, RequestContext, validate_id
from nexus_query.erasure.model import ErasureIncomplete, ErasureReceipt, Scope
from nexus_query.erasure.run import Progress, Remap, new_request, request_erasure, run_erasure
from nexus_query.erasure.target import tenant_target
from nexus_query.errors import NothingToErase
from nexus_query.landing import GLOBAL_SPACE_ID, Task
from nexus_query.paths import TenantFiles, join_uri
from nexus_query.routing import RoutingRegistry


@dataclass(frozen=True)
class TenantErasureReceipt:
    tenant_id: str
    spaces: tuple[ErasureReceipt, ...]
    files_removed: int          # what was left in the tenant's blob and projection areas afterwards
    table_folders_removed: int
    verified: bool = True
    projects: tuple[str, ...] = field(default=())


def _store_fs(registry: RoutingRegistry, ctx: RequestContext) -> tuple[fsspec.AbstractFileSystem, str]:
    route = registry.store_route(ctx)
    protocol, _, rest = route.uri.partition("://")
    if not rest:
        return fsspec.filesystem("file"), route.uri
    return fsspec.filesystem(protocol, **route.storage.for_fsspec()), rest


def tenant_spaces(registry: RoutingRegistry, ctx: RequestContext) -> set[str]:
    """Every space id the tenant's project has anything of: tables, landing zone, HAZE maps, intermediates."""
    spaces: set[str] = set()
    fs, root = _store_fs(registry, ctx)
    db = join_uri(root, ctx.tenant_id, ctx.project_id)
    if fs.exists(db):
        spaces |= {posixpath.basename(p.rstrip("/"))[:-len(".lance")] for p in fs.ls(db, detail=False)
                   if p.rstrip("/").endswith(".lance")}
    files = TenantFiles.for_tenant(registry.blob_route(ctx), ctx)
    spaces |= {p.split("/")[1] for p in files.list("landing") if p.count("/") >= 2}
    spaces |= {p.rsplit("/", 1)[-1][:-len(".parquet")] for p in files.list("pipelines") if p.endswith(".parquet")}
    projections = TenantFiles.for_tenant(registry.projection_route(ctx), ctx)
    spaces |= {p.split("/")[1] for p in projections.list("haze") if p.count("/") >= 2}
    return {s for s in spaces if ID_PATTERN.fullmatch(s) and s != GLOBAL_SPACE_ID}


def request_tenant_erasure(ctx: RequestContext, scope: Scope, names: list[str], *, reason: str | None = None,
                           registry: RoutingRegistry | None = None, allow_none: bool = False) -> list[Task]:
    """Erase ``names`` from every space of the caller's project that has a document of them, together
    with the tenant-wide files those documents use (``all_spaces``): one task per space."""
    registry = registry or RoutingRegistry.default()
    new_request("main", scope, names)  # names outside the rule: 422 before anything is looked up
    tasks, closest, looked_for = [], set(), list(names)
    for space_id in sorted(tenant_spaces(registry, ctx)):
        try:
            tasks.append(request_erasure(ctx, space_id, scope, names, reason=reason, registry=registry,
                                         all_spaces=True))
        except NothingToErase as exc:
            closest.update(exc.details.get("closest", ()))
    if not tasks and not allow_none:
        raise NothingToErase(f"no document of any space answers to the {len(names)} name(s) given",
                             looked_for=looked_for[:20], closest=sorted(closest)[:10])
    return tasks


def erase_tenant(tenant_id: str, environment: str = "dev", registry: RoutingRegistry | None = None, *,
                 remap: Remap | None = None, progress: Progress = lambda message: None) -> TenantErasureReceipt:
    registry = registry or RoutingRegistry.default()
    validate_id(tenant_id, "tenant_id")
    probe = RequestContext(tenant_id, environment=environment)
    projects = {posixpath.basename(f.root) for kind in (registry.blob_route, registry.projection_route)
                for f in TenantFiles.of_every_project(kind(probe), tenant_id)}
    fs, root = _store_fs(registry, probe)
    tenant_db = join_uri(root, tenant_id)
    if fs.exists(tenant_db):
        projects |= {posixpath.basename(p.rstrip("/")) for p in fs.ls(tenant_db, detail=False)}
    projects = {p for p in projects if ID_PATTERN.fullmatch(p)}
    receipts, files_removed = [], 0
    for project in sorted(projects):
        ctx = RequestContext(tenant_id, project, environment)
        for space_id in sorted(tenant_spaces(registry, ctx)):
            progress(f"erasing space {project}/{space_id}")
            request = new_request(space_id, "space", reason="tenant erased")
            receipts.append(run_erasure(tenant_target(ctx, space_id, registry), request, remap=remap,
                                        progress=progress))
        for kind in (registry.blob_route, registry.projection_route):
            area = TenantFiles.for_tenant(kind(ctx), ctx)
            if area.fs.exists(area.root):
                files_removed += len(area.fs.find(area.root))
                area.fs.rm(area.root, recursive=True)
    for kind in (registry.blob_route, registry.projection_route):
        route = kind(probe)
        area_fs = fsspec.filesystem(route.protocol, **route.storage.for_fsspec())
        tenant_root = join_uri(route.root, tenant_id)
        if area_fs.exists(tenant_root):
            files_removed += len(area_fs.find(tenant_root))
            area_fs.rm(tenant_root, recursive=True)
    folders = 0
    if fs.exists(tenant_db):
        fs.rm(tenant_db, recursive=True)
        folders = 1
    left = [kind(probe) for kind in (registry.blob_route, registry.projection_route)
            if TenantFiles.of_every_project(kind(probe), tenant_id)]
    if left or fs.exists(tenant_db):
        raise ErasureIncomplete("erasure incomplete: the tenant still has files", tenant_id=tenant_id)
    return TenantErasureReceipt(tenant_id, tuple(receipts), files_removed, folders, True, tuple(sorted(projects)))
