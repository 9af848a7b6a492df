"""The storage path scheme. Nothing user-supplied becomes a path without passing through here.

Vector spaces: ``{nexus_store.uri}/{tenant_id}/{project_id}/{space_id}.lance``.
Tenant files (landing zone, blobs, intermediate data, artifacts):
``{nexus_blob_store.bucket}/{prefix}/{tenant_id}/{project_id}/...``.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import tempfile
import unicodedata
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec

from nexus_query.config import FileRoute, StoreRoute
from nexus_query.context import ID_PATTERN, RequestContext, validate_id
from nexus_query.errors import Forbidden, InvalidRequest

GLOBAL_TENANT_DIR = "_global"  # cannot collide with a tenant: ids never start with "_"
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
MAX_SEGMENT_BYTES = 255  # what local file systems allow for one name (UTF-8 bytes)
# Unicode categories a name may not contain: control, format (invisible: bidi overrides, zero widths),
# surrogate, private use, unassigned, and the line and paragraph separators; the zero-width joiners that
# emoji sequences and some scripts spell words with are names' own.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


@dataclass(frozen=True)
class SpaceLocation:
    """Where one space's LanceDB table lives: the database folder and the table name in it."""

    db_uri: str
    table_name: str
    storage_options: dict[str, str]

    @property
    def dataset_uri(self) -> str:
        return join_uri(self.db_uri, f"{self.table_name}.lance")


def space_location(route: StoreRoute, ctx: RequestContext, space_id: str) -> SpaceLocation:
    validate_id(space_id, "space_id")
    return SpaceLocation(
        db_uri=join_uri(route.uri, ctx.tenant_id, ctx.project_id),
        table_name=space_id,
        storage_options=route.storage.for_lance(),
    )


def global_space_location(route: StoreRoute) -> SpaceLocation:
    return SpaceLocation(db_uri=route.uri, table_name=route.table_name,
                         storage_options=route.storage.for_lance())


def segment_problem(segment: str) -> str | None:
    """Why ``segment`` cannot be one name of a path, or None. Names are taken as people write them (any
    printable Unicode: spaces, quotes, accents, emoji); refused is only what can escape or confuse a path:
    empty, ``.`` or ``..``, a separator, control and invisible characters, more than 255 UTF-8 bytes."""
    if segment in ("", ".", ".."):
        return f"{segment!r} is not a name"
    if "/" in segment or "\\" in segment:
        return "a name may not contain '/' or '\\'"
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return f"a name may be at most {MAX_SEGMENT_BYTES} bytes (UTF-8)"
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in _JOINERS for ch in segment):
        return "a name may not contain control or invisible characters"
    return None


def safe_relative_path(path: str) -> str:
    """Validate a user-supplied relative path: no scheme, no absolute path, no '..', every segment a name
    ``segment_problem`` accepts. The path is returned as given (not normalized): it names a stored file."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise InvalidRequest("path must be a non-empty relative path with '/' separators", path=path)
    if _SCHEME.match(path) or path.startswith("/") or path.startswith("~"):
        raise Forbidden("path must be relative to the tenant's store", path=path)
    segments = path.split("/")
    for seg in segments:
        problem = segment_problem(seg)
        if problem:
            raise Forbidden(f"path segment {seg!r} is not allowed: {problem}", path=path)
    return "/".join(segments)


def write_atomic(fs: Any, target: str, data: bytes, *, local: bool) -> str:
    """Write ``target`` so that readers see either nothing or the whole file: object PUTs are atomic, a
    local file goes through a synced temporary file and a rename."""
    if local:
        tmp = _local_temp_copy(target, data)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    else:
        fs.pipe_file(target, data)
    return target


@functools.cache
def file_mode() -> int:
    """mkstemp creates 0600 files; stored files get the mode any other file of this process would (0644
    under the usual umask), so the group serving a data root (a web server, `nexus serve` as another user)
    can read them. Secrets (cursor keys) set their own mode. Read once, on the first write."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _local_temp_copy(target: str, data: bytes) -> str:
    """``data`` written and synced to a hidden temporary file beside ``target``; returns its path."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{uuid.uuid4().hex}.")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


class TenantFiles:
    """A tenant's own area in an fsspec store. Every path it hands out stays under its root."""

    def __init__(self, route: FileRoute, tenant_dir: str, project_id: str) -> None:
        self.route = route
        self.root = join_uri(route.root, tenant_dir, project_id)

    @classmethod
    def for_tenant(cls, route: FileRoute, ctx: RequestContext) -> TenantFiles:
        return cls(route, ctx.tenant_id, ctx.project_id)

    @classmethod
    def for_global(cls, route: FileRoute, project_id: str = "shared") -> TenantFiles:
        return cls(route, GLOBAL_TENANT_DIR, validate_id(project_id, "project_id"))

    @classmethod
    def of_every_project(cls, route: FileRoute, tenant_id: str) -> list[TenantFiles]:
        """The tenant's areas in this store, one per project folder that exists (for system jobs that
        scan every tenant, such as sensors)."""
        fs = fsspec.filesystem(route.protocol, **route.storage.for_fsspec())
        tenant_root = join_uri(route.root, validate_id(tenant_id, "tenant_id"))
        if not fs.exists(tenant_root):
            return []
        projects = (posixpath.basename(entry.rstrip("/")) for entry in fs.ls(tenant_root, detail=False))
        return [cls(route, tenant_id, p) for p in sorted(projects) if ID_PATTERN.fullmatch(p)]

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.route.protocol, **self.route.storage.for_fsspec())

    @property
    def is_local(self) -> bool:
        return self.route.protocol in ("file", "local")

    def path(self, *parts: str) -> str:
        """Absolute (fsspec) path of ``parts`` below the tenant root; each part is validated."""
        return join_uri(self.root, *(safe_relative_path(p) for p in parts))

    def url(self, *parts: str) -> str:
        """The same location as a URL (``s3://bucket/...``, or a local path)."""
        path = self.path(*parts)
        return path if self.is_local else f"{self.route.protocol}://{path}"

    def relative(self, reference: str) -> str:
        """Turn a reference (relative path, or a URL/path inside this tenant's root) into a safe
        relative path; anything outside the root, e.g. another tenant's prefix, is refused."""
        if not isinstance(reference, str):
            raise InvalidRequest("path must be a string", path=repr(reference))
        ref, absolute = reference, reference.startswith("/")
        if _SCHEME.match(reference):
            scheme, _, rest = reference.partition("://")
            if scheme != self.route.protocol and not (self.is_local and scheme == "file"):
                raise Forbidden("reference points at another store", path=reference)
            ref, absolute = ("/" + rest.lstrip("/")) if self.is_local else rest, True
        if absolute:
            normalized = posixpath.normpath(ref)
            root = self.root.rstrip("/")
            if normalized != ref.rstrip("/") or not normalized.startswith(root + "/"):
                raise Forbidden("path is outside this tenant's store", path=reference)
            ref = normalized[len(root) + 1:]
        return safe_relative_path(ref)

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def write_bytes_atomic(self, data: bytes, *parts: str) -> str:
        """Write so that readers see either nothing or the whole file (object PUTs are atomic;
        local files go through a temporary file and a rename)."""
        return write_atomic(self.fs, self.path(*parts), data, local=self.is_local)

    def write_bytes_once(self, data: bytes, *parts: str) -> bool:
        """Create the file whole, or leave an existing one untouched; True when this call created it.
        Local files: a complete temporary file hard-linked into place (the link fails if the name
        exists). S3: a conditional PUT (``If-None-Match: *``). Other stores have no exclusive create
        in fsspec, so there it is check-then-put: a concurrent writer of the same name could race."""
        target = self.path(*parts)
        if self.is_local:
            tmp = _local_temp_copy(target, data)
            try:
                os.link(tmp, target)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        try:
            if self.route.protocol in ("s3", "s3a"):
                self.fs.pipe_file(target, data, mode="create")
                return True
            if self.fs.exists(target):
                return False
            self.fs.pipe_file(target, data)
            return True
        except FileExistsError:
            return False

    def list(self, *parts: str) -> list[str]:
        """Relative paths of the files below ``parts`` (recursive), hidden temporaries excluded."""
        base = self.path(*parts)
        if not self.fs.exists(base):
            return []
        root = self.root.rstrip("/") + "/"
        found = []
        for full in self.fs.find(base):
            rel = full[len(root):] if full.startswith(root) else full
            if not any(seg.startswith(".") for seg in rel.split("/")):
                found.append(rel)
        return sorted(found)
