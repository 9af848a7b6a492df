"""In-memory snapshots of a space's table versions, searched exactly with numpy.

A snapshot holds one version's rows in memory (vectors as int8 codes with float32 re-ranking, metadata as
coded columns). At 100k x 384 one scan is an order of magnitude faster than LanceDB's flat scan, and it is
exact, so filters and cursor pages are exact too. Snapshots live in a bounded LRU keyed by (dataset uri,
version); a new version reuses a cached one's blocks, reads only the rows it lacks and masks the ones it no
longer has (Lance fragments are immutable, so a row address always names the same row). Spaces too large
to hold are searched through LanceDB instead (``lance_search``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from nexus_query.config import ServingConfig
from nexus_query.store.filters import Condition, metadata_value_key
from nexus_query.store.schema import ROW_COLUMNS, VECTOR_COLUMN
from nexus_query.store.snapshot_scan import (
    READ_BATCH_ROWS,
    QuantizedVectors,
    exact_top,
    resident_bytes_per_row,
)

if TYPE_CHECKING:
    import lancedb

# A snapshot built from a cached one reads afresh once this share of its rows changed, or past this many
# blocks, so dead rows and block bookkeeping stay small.
MAX_SNAPSHOT_CHURN = 0.25
MAX_BLOCKS = 64
_MISSING = -1
_ROW_COLUMNS = list(ROW_COLUMNS)


@dataclass(frozen=True)
class MetaColumn:
    """One metadata key over all rows: a code per row (-1 where the key is absent) and its vocabulary."""

    codes: np.ndarray
    vocab: dict[str, int]


def _code_metadata(documents: Sequence[str], n_before: int = 0,
                   base: dict[str, MetaColumn] | None = None) -> dict[str, MetaColumn]:
    """Code the metadata of new rows, appended after ``n_before`` rows already coded in ``base``."""
    n = n_before + len(documents)
    vocabs = {k: dict(c.vocab) for k, c in (base or {}).items()}
    codes = {k: np.concatenate([c.codes, np.full(len(documents), _MISSING, np.int32)])
             for k, c in (base or {}).items()}
    for i, raw in enumerate(documents, start=n_before):
        for key, value in json.loads(raw).items():
            if key not in codes:
                codes[key] = np.full(n, _MISSING, np.int32)
                vocabs[key] = {}
            vocab = vocabs[key]
            codes[key][i] = vocab.setdefault(metadata_value_key(value), len(vocab))
    return {k: MetaColumn(codes[k], vocabs[k]) for k in codes}


@dataclass(frozen=True, eq=False)
class Block:
    """Rows read from Lance once, shared by every snapshot that contains them (fragments are immutable)."""

    quantized: QuantizedVectors  # int8 codes scanned, float32 re-ranked (see snapshot_scan)
    rows: pa.Table  # id, text, metadata, type, source

    @property
    def vectors(self) -> np.ndarray:
        """The float32 vectors, unit length (in memory, or memory-mapped when spilled)."""
        return self.quantized.exact

    @property
    def nbytes(self) -> int:
        return int(self.quantized.resident_nbytes + self.rows.nbytes)


@dataclass(eq=False)
class Snapshot:
    """One table version in memory: blocks of rows in position order, and which of them this version
    still has (a write after the blocks were read may have deleted or replaced some). Immutable once
    built; shared between threads."""

    dataset_uri: str
    version: int
    addrs: np.ndarray  # uint64 Lance row address per position: stable for a row within its fragment
    blocks: tuple[Block, ...]
    meta: dict[str, MetaColumn] = field(default_factory=dict)
    live: np.ndarray | None = None  # bool per position; None: every row is live
    offsets: np.ndarray = field(init=False, repr=False)  # first position of each block, and the end
    rows: pa.Table | None = field(init=False, repr=False)  # every block's rows; None: no blocks

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [len(b.vectors) for b in self.blocks])
        self.rows = pa.concat_tables([b.rows for b in self.blocks]) if self.blocks else None

    @property
    def num_rows(self) -> int:
        """Positions, live or not."""
        return len(self.addrs)

    @property
    def live_rows(self) -> int:
        return self.num_rows if self.live is None else int(self.live.sum())

    @property
    def own_nbytes(self) -> int:
        """Bytes not shared with other snapshots (blocks are counted once, by the cache)."""
        meta = sum(c.codes.nbytes + 64 * len(c.vocab) for c in self.meta.values())
        return int(self.addrs.nbytes + meta + (0 if self.live is None else self.live.nbytes))

    def mask(self, conditions: Sequence[Condition]) -> np.ndarray | None:
        """Live rows matching every condition (None: every row is live and there are no conditions)."""
        if not conditions:
            return self.live
        mask = np.ones(self.num_rows, dtype=bool) if self.live is None else self.live.copy()
        for cond in conditions:
            column = self.meta.get(cond.key)
            if cond.op == "exists":
                present = (column.codes != _MISSING) if column else np.zeros(self.num_rows, bool)
                mask &= present if cond.exists else ~present
                continue
            wanted = [column.vocab[v] for v in cond.values if v in column.vocab] if column else []
            hit = np.isin(column.codes, wanted) if column and wanted else np.zeros(self.num_rows, bool)
            mask &= hit if cond.selects_equal else ~hit
        return mask

    def scores(self, query: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """Dot products with ``query`` for every position, or for the (ascending) ``positions`` given.

        Float32, for checks and callers that need every score; ``top`` scans the int8 codes instead."""
        if positions is None:
            out = np.empty(self.num_rows, np.float32)
            for block, start in zip(self.blocks, self.offsets, strict=False):  # offsets end with the total
                np.einsum("ij,j->i", block.vectors, query, out=out[start:start + len(block.vectors)])
            return out
        out = np.empty(len(positions), np.float32)
        cuts = np.searchsorted(positions, self.offsets)
        for i, (block, start) in enumerate(zip(self.blocks, self.offsets, strict=False)):
            lo, hi = cuts[i], cuts[i + 1]
            if hi > lo:
                np.einsum("ij,j->i", block.vectors[positions[lo:hi] - start], query, out=out[lo:hi])
        return out

    def top(self, query: np.ndarray, n: int, mask: np.ndarray | None = None,
            threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the ``n`` best rows among ``mask`` (from ``mask()``), best first; ties
        go to the lower row address, so every page of a cursor sees the same order. An int8 scan with
        an exact float32 re-rank: the answer is exactly that of a float32 scan (``snapshot_scan``)."""
        if self.num_rows == 0 or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        candidates = None if mask is None else np.flatnonzero(mask)
        return exact_top([b.quantized for b in self.blocks], self.offsets, self.addrs, query, n, candidates,
                         threads=threads)

    def row(self, position: int) -> dict[str, Any]:
        if self.rows is None:
            raise IndexError(f"position {position} of a snapshot without rows")
        return self.rows.slice(int(position), 1).to_pylist()[0]

    def texts(self, positions: Sequence[int]) -> list[str]:
        """The text of the rows at ``positions`` in one read (hybrid scoring reads a whole pool's)."""
        if self.rows is None:
            raise IndexError("a snapshot without rows")
        return self.rows.column("text").take(pa.array(positions, pa.int64())).to_pylist()


def _read(table: lancedb.table.Table, where: str | None = None) -> pa.Table:
    query = table.search().select([*_ROW_COLUMNS, VECTOR_COLUMN, "_rowaddr"]).limit(None)
    if where:
        query = query.where(where)
    return query.to_arrow()


def _block(rows: pa.Table, dim: int) -> Block:
    if rows.num_rows == 0:
        vectors = np.zeros((0, dim), np.float32)
    else:
        flat = rows.column(VECTOR_COLUMN).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors = np.ascontiguousarray(flat.reshape(-1, dim), dtype=np.float32)
    return Block(QuantizedVectors.build(vectors), rows.select(_ROW_COLUMNS).combine_chunks())


def _read_block(table: lancedb.table.Table, dim: int) -> tuple[np.ndarray, Block]:
    """Every row of the checked-out version as one block, read in batches so that only one batch's
    float32 vectors is in process memory at a time (the block keeps int8 codes; see snapshot_scan)."""
    reader = (table.search().select([*_ROW_COLUMNS, VECTOR_COLUMN, "_rowaddr"]).limit(None)
              .to_batches(READ_BATCH_ROWS))
    parts: list[pa.Table] = []
    addrs: list[np.ndarray] = []

    def vectors() -> Iterator[np.ndarray]:
        for batch in reader:
            part = pa.Table.from_batches([batch])
            addrs.append(part.column("_rowaddr").to_numpy().astype(np.uint64))
            parts.append(part.select(_ROW_COLUMNS))
            flat = batch.column(VECTOR_COLUMN).flatten().to_numpy(zero_copy_only=False)
            yield flat.reshape(-1, dim)

    quantized = QuantizedVectors.build_streamed(vectors(), dim)
    rows = (pa.concat_tables(parts) if parts else reader.schema.empty_table().select(_ROW_COLUMNS)).combine_chunks()
    return (np.concatenate(addrs) if addrs else np.zeros(0, np.uint64)), Block(quantized, rows)


def _in_sorted(values: np.ndarray, sorted_reference: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted reference, by binary search: several times faster on 100k addresses."""
    if len(sorted_reference) == 0:
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_reference, values), len(sorted_reference) - 1)
    return sorted_reference[at] == values


def _build(table: lancedb.table.Table, dataset_uri: str, base: Snapshot | None) -> Snapshot:
    """Build the snapshot of ``table``'s checked-out version. From a cached ``base`` of the same dataset
    it reads only the rows ``base`` lacks and marks the ones this version no longer has; when too much
    of that accumulates (dead rows, many small blocks) it reads the whole version afresh instead."""
    dim = table.schema.field(VECTOR_COLUMN).type.list_size
    version = int(table.version)
    if base is not None:
        current = table.search().select(["_rowaddr"]).limit(None).to_arrow().column("_rowaddr").to_numpy()
        current = np.sort(current.astype(np.uint64))
        live = _in_sorted(base.addrs, current)
        new_addrs = current[~_in_sorted(current, np.sort(base.addrs))]
        dead = base.num_rows - int(live.sum())
        if (dead + len(new_addrs)) <= MAX_SNAPSHOT_CHURN * max(len(current), 1) and len(base.blocks) < MAX_BLOCKS:
            if not len(new_addrs):
                return Snapshot(dataset_uri, version, base.addrs, base.blocks, base.meta, None if dead == 0 else live)
            fresh = _read(table, f"_rowaddr >= {int(new_addrs.min())} AND _rowaddr <= {int(new_addrs.max())}")
            fresh_addrs = fresh.column("_rowaddr").to_numpy().astype(np.uint64)
            take = np.flatnonzero(_in_sorted(fresh_addrs, new_addrs))
            fresh, fresh_addrs = fresh.take(pa.array(take)), fresh_addrs[take]
            live = np.concatenate([live, np.ones(len(fresh_addrs), bool)])
            return Snapshot(dataset_uri, version, np.concatenate([base.addrs, fresh_addrs]),
                            (*base.blocks, _block(fresh, dim)),
                            _code_metadata(fresh.column("metadata").to_pylist(), base.num_rows, base.meta),
                            None if dead == 0 else live)
    addrs, block = _read_block(table, dim)
    return Snapshot(dataset_uri, version, addrs, (block,), _code_metadata(block.rows.column("metadata").to_pylist()))


class SnapshotCache:
    """Bounded LRU of snapshots, by bytes and by count (the config's ``serving``). Thread-safe; one build at
    a time per dataset (a fixed set of build locks, so nothing grows with the spaces served)."""

    def __init__(self, max_bytes: int = ServingConfig.snapshot_cache_mb * 2**20,
                 max_items: int = ServingConfig.max_snapshots) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int], Snapshot] = OrderedDict()
        # Versions judged too large to hold: a large space's every query goes to LanceDB without asking
        # the table for its row count and file sizes again (a version never changes size).
        self._too_large: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks = tuple(threading.Lock() for _ in range(64))

    def configure(self, *, max_bytes: int, max_items: int) -> None:
        with self._lock:
            self.max_bytes, self.max_items = max_bytes, max_items
            self._too_large.clear()  # a new budget judges sizes anew
            self._evict()

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, table: lancedb.table.Table) -> bool:
        """Whether a space is small enough to hold in memory: its vectors as the snapshot holds them, plus
        its other columns, estimated from the table's files (all bytes beyond the float32 vectors, so
        index files count too: an overestimate)."""
        dim = table.schema.field(VECTOR_COLUMN).type.list_size
        rows = table.count_rows()
        if rows == 0:
            return True
        stats = table.stats()
        total = stats["total_bytes"] if isinstance(stats, dict) else stats.total_bytes
        other_bytes = max(0, int(total) - rows * dim * 4) + rows * 8 * len(_ROW_COLUMNS)  # + arrow offsets
        return rows * resident_bytes_per_row(dim) + other_bytes <= self.max_bytes // 2

    def get(self, table: lancedb.table.Table, dataset_uri: str, version: int | None = None) -> Snapshot | None:
        """The snapshot of ``table``'s checked-out version (built if needed), or None when the space is
        too large to hold in memory."""
        key = (dataset_uri, int(table.version) if version is None else version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            if key in self._too_large:
                return None
            build_lock = self._build_locks[hash(dataset_uri) % len(self._build_locks)]
        if not self.fits(table):
            with self._lock:
                self._too_large[key] = None
                while len(self._too_large) > max(self.max_items, 1):
                    self._too_large.popitem(last=False)
            return None
        with build_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
                bases = [s for (uri, _), s in self._items.items() if uri == dataset_uri]
            base = max(bases, key=lambda s: s.version, default=None)
            snapshot = _build(table, dataset_uri, base)
            with self._lock:
                self._items[key] = snapshot
                self._evict()
            return snapshot

    def nbytes(self) -> int:
        """Memory held: each snapshot's own arrays, plus every distinct block once."""
        blocks = {id(b): b for s in self._items.values() for b in s.blocks}
        return sum(s.own_nbytes for s in self._items.values()) + sum(b.nbytes for b in blocks.values())

    def _evict(self) -> None:
        while len(self._items) > max(self.max_items, 1):
            self._items.popitem(last=False)
        while len(self._items) > 1 and self.nbytes() > self.max_bytes:
            self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._too_large.clear()


snapshot_cache = SnapshotCache()
