"""The landing inbox: one time-ordered list of "something landed in this space", so discovery costs one
listing per tick whatever the number of tenants.

Landing through the API (a batch, or a file drop such as a chat export import) writes, right after the
landed data is durably written, one small entry into the environment's inbox, which lives in the global
space's ``nexus_blob_store`` (a system area: tenant ids never start with ``_``)::

    _inbox/{environment}/{hour}/{stamp}.{tenant}.{project}.{space}.{kind}.{ref}.json

``hour`` is ``YYYYMMDDTHH`` and ``stamp`` ``YYYYMMDDTHHMMSSffffffZ`` (UTC, the writer's clock), so keys
sort by time; ids never contain a dot, so the name splits back. ``kind`` is ``batch`` (``ref`` = the batch
id, which is also its task id) or ``files`` (``ref`` = a fresh id per drop). A reader lists only the keys
after its cursor (S3 ``ListObjectsV2`` with ``StartAfter``: one call for up to 1,000 keys; on other stores
the hour folders from the cursor's hour on). The entry is a hint, never the data: a batch whose entry was
never written (a crash between the two writes) is still found by the slower sweep over landing zones.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal

import fsspec

from nexus_query.config import FileRoute
from nexus_query.context import validate_id
from nexus_query.paths import join_uri, write_atomic

INBOX_DIR = "_inbox"
EntryKind = Literal["batch", "files"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("batch", "files")
_STAMP = "%Y%m%dT%H%M%S%fZ"
_HOUR = "%Y%m%dT%H"
S3_PAGE = 1000  # ListObjectsV2's own maximum


def stamp_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_STAMP)


def time_of(stamp: str) -> datetime:
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def key_for(stamp: str) -> str:
    """The inbox key (below the environment's folder) that sorts just before every entry of ``stamp``."""
    return f"{stamp[:11]}/{stamp}"


@dataclass(frozen=True)
class InboxEntry:
    stamp: str
    tenant_dir: str  # the tenant id, or "_global"
    project_id: str
    space_id: str
    kind: EntryKind
    ref: str

    @property
    def key(self) -> str:
        """Path below the environment's inbox folder; sorts by time."""
        return (f"{key_for(self.stamp)}.{self.tenant_dir}.{self.project_id}.{self.space_id}."
                f"{self.kind}.{self.ref}.json")

    @property
    def written_at(self) -> datetime:
        return time_of(self.stamp)

    @classmethod
    def parse(cls, key: str) -> InboxEntry | None:
        """The entry a key names, or None for anything else found in the folder."""
        name = posixpath.basename(key)
        parts = name.split(".")
        if len(parts) != 7 or parts[-1] != "json" or parts[4] not in ENTRY_KINDS:
            return None
        try:
            time_of(parts[0])
        except ValueError:
            return None
        return cls(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])


class Inbox:
    """One environment's inbox in a file store (fsspec). Counts its listing calls, so tests and the scale
    simulation can show what a tick costs."""

    def __init__(self, route: FileRoute, environment: str) -> None:
        self.route = route
        self.environment = validate_id(environment, "environment")
        self.root = join_uri(route.root, INBOX_DIR, self.environment)
        self.list_calls = 0

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.route.protocol, **self.route.storage.for_fsspec())

    @property
    def is_s3(self) -> bool:
        return self.route.protocol in ("s3", "s3a")

    def post(self, tenant_dir: str, project_id: str, space_id: str, kind: EntryKind, ref: str | None = None,
             *, now: datetime | None = None) -> InboxEntry:
        """Write one entry; its stamp is taken now, just before the write, so it sorts where it lands."""
        if kind not in ENTRY_KINDS:
            raise ValueError(f"kind must be one of {ENTRY_KINDS}")
        if tenant_dir != "_global":
            validate_id(tenant_dir, "tenant_id")
        entry = InboxEntry(stamp_of(now or datetime.now(UTC)), tenant_dir,
                           validate_id(project_id, "project_id"), validate_id(space_id, "space_id"), kind,
                           validate_id(ref or uuid.uuid4().hex, "ref"))
        body = json.dumps({"space": [tenant_dir, project_id, space_id], "kind": kind, "ref": ref}).encode()
        write_atomic(self.fs, join_uri(self.root, entry.key), body, local=self.route.protocol in ("file", "local"))
        return entry

    def after(self, start_after: str | None) -> list[InboxEntry]:
        """Every entry whose key sorts after ``start_after`` (an entry key or ``key_for(stamp)``), in key
        order. S3: ``ListObjectsV2`` from ``StartAfter``, one call per 1,000 keys. Elsewhere: one listing
        of the hour folders and one per hour folder from ``start_after``'s hour on."""
        if self.is_s3:
            keys = self._s3_keys_after(start_after)
        else:
            keys = self._folder_keys_after(start_after)
        return [e for e in (InboxEntry.parse(k) for k in keys) if e is not None]

    def _s3_keys_after(self, start_after: str | None) -> list[str]:
        bucket, _, prefix = self.root.partition("/")
        prefix = prefix.rstrip("/") + "/"
        request = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": S3_PAGE,
                   "StartAfter": prefix + (start_after or "")}
        keys: list[str] = []
        while True:
            self.list_calls += 1
            page = self.fs.call_s3("list_objects_v2", **request)
            keys.extend(item["Key"][len(prefix):] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            request["ContinuationToken"] = page["NextContinuationToken"]

    def _folder_keys_after(self, start_after: str | None) -> list[str]:
        self.list_calls += 1
        try:
            hours = sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.root, detail=False))
        except FileNotFoundError:
            return []
        first_hour = (start_after or "")[:11]
        keys: list[str] = []
        for hour in (h for h in hours if h >= first_hour):
            self.list_calls += 1
            names = sorted(posixpath.basename(p) for p in self.fs.ls(join_uri(self.root, hour), detail=False))
            keys.extend(k for k in (f"{hour}/{n}" for n in names if not n.startswith("."))
                        if start_after is None or k > start_after)
        return keys

    def prune(self, older_than: datetime) -> int:
        """Remove the hour folders that end before ``older_than``; returns how many went. Entries are hints
        for the landing sensor, whose cursor is long past them by then."""
        try:
            hours = sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.root, detail=False))
        except FileNotFoundError:
            return 0
        cutoff = (older_than - timedelta(hours=1)).astimezone(UTC).strftime(_HOUR)
        removed = 0
        for hour in hours:
            if len(hour) == 11 and hour < cutoff:
                self.fs.rm(join_uri(self.root, hour), recursive=True)
                removed += 1
        return removed


def inbox_for(registry, environment: str) -> Inbox | None:
    """The environment's inbox (in the global space's blob store), or None when no such store is routed."""
    route = registry.global_routes(environment).nexus_blob_store
    return Inbox(route, environment) if route is not None else None
