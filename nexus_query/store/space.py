"""A tenant space on LanceDB: keyed idempotent upserts, deletes by source, a recorded embedder."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import lancedb
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.table import LanceTable

from nexus_query.config import ServingConfig
from nexus_query.context import RequestContext
from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.errors import EmbedderMismatch, GlobalSpaceReadOnly, InvalidRequest, SpaceNotFound
from nexus_query.paths import SpaceLocation, global_space_location, space_location
from nexus_query.routing import RoutingRegistry
from nexus_query.store.commits import retry_commit
from nexus_query.store.filters import sql_string
from nexus_query.store.lance_indexes import ensure_fts_index
from nexus_query.store.schema import PRIMARY_KEY_FIELD_KEY as _PK_FIELD_KEY
from nexus_query.store.schema import embedder_of, space_schema
from nexus_query.store.snapshots import snapshot_cache

PRIMARY_KEY = "id"
# A matched row is rewritten only when something it is made of changed, so re-running is a no-op.
_CHANGED = " OR ".join(
    [f"target.{c} != source.{c}" for c in ("content_hash", "metadata", "type", "embedder", "source",
                                            "chunk_index", "char_start", "char_end")]
    + ["target.blob_path != source.blob_path",
       "(target.blob_path IS NULL AND source.blob_path IS NOT NULL)",
       "(target.blob_path IS NOT NULL AND source.blob_path IS NULL)"]
)

_session_lock = threading.Lock()
_session: lancedb.Session | None = None
# LanceDB connections by database (one per tenant project), least recently used first; bounded by the
# config's ``serving.max_open_databases`` so a process serving many tenants does not keep them all.
_connections: OrderedDict[tuple, lancedb.DBConnection] = OrderedDict()
_serving = ServingConfig()
_applied: ServingConfig | None = None


def apply_serving_limits(serving: ServingConfig) -> None:
    """Use ``serving``'s bounds for this process's connections, LanceDB caches and snapshots (once per
    distinct setting; a change starts a fresh session)."""
    global _serving, _applied, _session
    if serving == _applied:
        return
    with _session_lock:
        if _applied is not None and (serving.lance_index_cache_mb, serving.lance_metadata_cache_mb) != (
                _applied.lance_index_cache_mb, _applied.lance_metadata_cache_mb):
            _session = None
            _connections.clear()
        _serving = _applied = serving
        while len(_connections) > serving.max_open_databases:
            _connections.popitem(last=False)
    snapshot_cache.configure(max_bytes=serving.snapshot_cache_mb * 2**20, max_items=serving.max_snapshots)


def lance_session() -> lancedb.Session:
    """One LanceDB session per process keeps index and metadata caches bounded and shared."""
    global _session
    with _session_lock:
        if _session is None:
            _session = lancedb.Session(index_cache_size_bytes=_serving.lance_index_cache_mb * 2**20,
                                       metadata_cache_size_bytes=_serving.lance_metadata_cache_mb * 2**20)
        return _session


def open_databases() -> int:
    """How many LanceDB connections this process holds (at most ``serving.max_open_databases``)."""
    with _session_lock:
        return len(_connections)


def connect(location: SpaceLocation) -> lancedb.DBConnection:
    key = (location.db_uri, tuple(sorted(location.storage_options.items())))
    with _session_lock:
        conn = _connections.get(key)
        if conn is not None:
            _connections.move_to_end(key)
            return conn
    conn = lancedb.connect(location.db_uri, storage_options=location.storage_options or None,
                           session=lance_session())
    with _session_lock:
        conn = _connections.setdefault(key, conn)
        _connections.move_to_end(key)
        while len(_connections) > _serving.max_open_databases:
            _connections.popitem(last=False)
    return conn


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int
    unchanged: int
    version: int
    attempts: int = 1  # commit attempts, Lance's own included
    conflicts_retried: int = 0  # attempts - 1: tries lost to concurrent writers


class SpaceTable:
    """One space. Obtained from ``SpaceStore``; never built from user-supplied paths."""

    def __init__(self, table: lancedb.table.Table, location: SpaceLocation, *, owner: str,
                 read_only: bool) -> None:
        self.table = table
        self.location = location
        self.owner = owner  # tenant id, or "_global"
        self.read_only = read_only

    @property
    def embedder(self) -> EmbedderInfo | None:
        return embedder_of(self.table.schema)

    @property
    def version(self) -> int:
        return int(self.table.version)

    def count(self) -> int:
        return int(self.table.count_rows())

    def refresh(self) -> None:
        self.table.checkout_latest()

    def _check_writable(self) -> None:
        if self.read_only:
            raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")

    def require_embedder(self, embedder: EmbedderInfo) -> None:
        current = self.embedder
        if current is not None and current.id != embedder.id:
            raise EmbedderMismatch(
                f"space was built with {current.id}; refusing vectors of {embedder.id}",
                space_embedder=current.id, requested_embedder=embedder.id,
            )

    def upsert(self, rows: pa.Table, embedder: EmbedderInfo) -> UpsertResult:
        """Insert new ids, update changed ones, leave identical ones alone; the last copy of an id
        within one batch wins."""
        self._check_writable()
        self.require_embedder(embedder)
        if rows.num_rows == 0:
            return UpsertResult(0, 0, 0, self.version)
        if rows.schema.field("vector").type != self.table.schema.field("vector").type:
            raise EmbedderMismatch("vector dimension differs from the space's",
                                   expected=str(self.table.schema.field("vector").type))
        rows = _last_per_id(rows).cast(self.table.schema)
        lance_attempts = 0

        def merge():
            nonlocal lance_attempts
            try:
                result = (self.table.merge_insert(PRIMARY_KEY)
                          .when_matched_update_all(where=_CHANGED)
                          .when_not_matched_insert_all()
                          .execute(rows))
            except (RuntimeError, OSError):
                lance_attempts += 1
                raise
            lance_attempts += int(result.num_attempts)
            return result

        result, _ = retry_commit(self.table, merge)
        inserted, updated = int(result.num_inserted_rows), int(result.num_updated_rows)
        if inserted:
            self._ensure_fts_index()
        return UpsertResult(inserted, updated, rows.num_rows - inserted - updated, int(result.version),
                            attempts=lance_attempts, conflicts_retried=lance_attempts - 1)

    def _ensure_fts_index(self) -> None:
        """The full-text index as soon as the space has rows, built over them (BM25 then scores them with
        real statistics; an index built on the empty table would leave every row to a flat scan): plain
        LanceDB full-text and hybrid search work on a fresh space, not only after the nightly maintenance.
        Later rows are searched by a flat scan until maintenance folds them in."""

        ensure_fts_index(self.table)

    def delete_sources(self, sources: Iterable[str]) -> int:
        """Delete every row of the given source documents; returns how many rows went."""
        return self._delete_in("source", sources)

    def delete_ids(self, ids: Iterable[str]) -> int:
        """Delete rows by id (e.g. the tail chunks of a document that got shorter); returns how many went."""
        return self._delete_in("id", ids)

    def _delete_in(self, column: str, values: Iterable[str]) -> int:
        self._check_writable()
        values = sorted(set(values))
        if not values:
            return 0
        deleted = 0
        for i in range(0, len(values), 500):
            predicate = f"{column} IN ({', '.join(sql_string(v) for v in values[i:i + 500])})"
            deleted += self.table.count_rows(predicate)  # counted here: other writers may add rows meanwhile
            retry_commit(self.table, partial(self.table.delete, predicate))
        return deleted

    def sources(self) -> set[str]:
        return set(self.table.to_arrow().column("source").unique().to_pylist()) if self.count() else set()


def _last_per_id(rows: pa.Table) -> pa.Table:
    ids = rows.column(PRIMARY_KEY)
    if pc.count_distinct(ids).as_py() == rows.num_rows:
        return rows
    last = {value: i for i, value in enumerate(ids.to_pylist())}  # a later row of an id wins
    return rows.take(sorted(last.values()))


class SpaceStore:
    """Opens spaces through the routing registry (tenant spaces read/write, the global one read-only)."""

    def __init__(self, registry: RoutingRegistry | None = None) -> None:
        self.registry = registry or RoutingRegistry.default()
        apply_serving_limits(self.registry.config.serving)

    def location(self, ctx: RequestContext, space_id: str) -> SpaceLocation:
        return space_location(self.registry.store_route(ctx), ctx, space_id)

    def global_location(self, environment: str) -> SpaceLocation:
        return global_space_location(self.registry.global_store_route(environment))

    def exists(self, ctx: RequestContext, space_id: str) -> bool:
        location = self.location(ctx, space_id)
        return not _missing_locally(location) and location.table_name in _table_names(connect(location))

    def space_ids(self, ctx: RequestContext) -> list[str]:
        """The caller's spaces that exist (reading creates nothing)."""
        location = self.location(ctx, "main")
        return [] if _missing_locally(location) else sorted(_table_names(connect(location)))

    def open(self, ctx: RequestContext, space_id: str) -> SpaceTable:
        location = self.location(ctx, space_id)
        return SpaceTable(_open(location, space_id), location, owner=ctx.tenant_id, read_only=False)

    def open_or_create(self, ctx: RequestContext, space_id: str, embedder: EmbedderInfo) -> SpaceTable:
        location = self.location(ctx, space_id)
        table = _open_or_create(location, embedder)
        space = SpaceTable(table, location, owner=ctx.tenant_id, read_only=False)
        space.require_embedder(embedder)
        return space

    def open_global(self, environment: str) -> SpaceTable:
        location = self.global_location(environment)
        return SpaceTable(_open(location, "global"), location, owner="_global", read_only=True)

    def open_global_for_system(self, environment: str, embedder: EmbedderInfo) -> SpaceTable:
        """For system jobs only (never reachable from a tenant request): the writable global space."""
        location = self.global_location(environment)
        space = SpaceTable(_open_or_create(location, embedder), location, owner="_global", read_only=False)
        space.require_embedder(embedder)
        return space


def _table_names(conn: lancedb.DBConnection) -> list[str]:
    return list(conn.list_tables().tables)


def _missing_locally(location: SpaceLocation) -> bool:
    """A local database folder that does not exist (``lancedb.connect`` would create it: reads must not)."""
    return "://" not in location.db_uri and not os.path.isdir(location.db_uri)


def _open(location: SpaceLocation, space_label: str) -> lancedb.table.Table:
    if _missing_locally(location):
        raise _not_found(location, space_label, existing=[])
    conn = connect(location)
    try:
        return conn.open_table(location.table_name)
    except (FileNotFoundError, ValueError) as exc:
        raise _not_found(location, space_label, existing=_table_names(conn)) from exc


def _not_found(location: SpaceLocation, space_label: str, existing: list[str]) -> SpaceNotFound:
    """Names the spaces that do exist, and (for the operator) where it looked."""
    there = f"the spaces that exist: {', '.join(sorted(existing))}" if existing else "no space exists there yet"
    return SpaceNotFound(f"space {space_label!r} does not exist; {there}", space_id=space_label,
                         existing_spaces=sorted(existing), looked_in=location.db_uri)


def _open_or_create(location: SpaceLocation, embedder: EmbedderInfo) -> lancedb.table.Table:
    conn = connect(location)
    try:
        table = conn.open_table(location.table_name)
    except (FileNotFoundError, ValueError):
        try:
            table = conn.create_table(location.table_name, schema=space_schema(embedder), exist_ok=True)
        except (ValueError, RuntimeError) as exc:
            # Another writer created it first: with another embedder's schema (ValueError), or, on object
            # stores, by winning the race to commit version 1 (Lance's "retryable commit conflict").
            try:
                table = conn.open_table(location.table_name)
            except (FileNotFoundError, ValueError):
                raise exc from None
    if not table.schema.field(PRIMARY_KEY).metadata or _PK_FIELD_KEY not in table.schema.field(PRIMARY_KEY).metadata:
        # A declared key is what makes concurrent merge_insert safe from duplicates.
        if not isinstance(table, LanceTable):  # every connection Nexus opens is local or object store
            raise TypeError(f"cannot declare the primary key of a {type(table).__name__}")
        table.set_unenforced_primary_key(PRIMARY_KEY)
    if embedder_of(table.schema) is None:
        raise InvalidRequest(f"table {location.dataset_uri} was not created by Nexus")
    return table
