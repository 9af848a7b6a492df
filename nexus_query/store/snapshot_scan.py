"""How an in-memory snapshot holds its vectors, and the exact top-n search over them.

A scan of 100k x 384 float32 reads 154 MB: memory bandwidth, not arithmetic, bounds it. So a snapshot
scans int8 codes instead (one scale per row, 4x fewer bytes), and makes the answer exact again by
re-ranking with float32:

* every row ``v`` is held as ``scale * codes`` plus two numbers: ``residual = |v - scale * codes|`` and
  ``norm = |scale * codes|``; the query ``q`` likewise as ``q_scale * q_codes``;
* the scan computes ``scale * q_scale * (codes . q_codes)``, the integer dot product exact in int32, so
  it never depends on how the rows were split over threads;
* by Cauchy-Schwarz a row's float32 score lies within ``|q| * residual + |q - q_scale q_codes| * norm``
  (plus a float rounding margin) of that estimate. The best ``RERANK_MIN`` estimates are scored exactly;
  the n-th best exact score ``t`` among them is a bar no other row passes unless its estimate plus its
  bound reaches ``t``, and every such row is scored exactly too. The answer (rows, order, scores, ties
  broken by row address) is therefore exactly that of a float32 scan of every row.

The float32 copy is read only for the few hundred re-ranked rows, so it need not stay in process memory:
``spill`` (the default) writes it to an unlinked temporary file that is memory-mapped (the OS page cache
keeps the hot pages; the snapshot cache counts only what the process must hold), ``memory`` keeps it in
an ordinary array. Choose with ``NEXUS_SNAPSHOT_FLOAT32``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

Float32Store = Literal["spill", "memory"]
FLOAT32_STORES: tuple[Float32Store, ...] = ("spill", "memory")


def float32_store() -> Float32Store:
    """Where snapshots keep their float32 copy: ``NEXUS_SNAPSHOT_FLOAT32``, read when one is built."""
    chosen = os.environ.get("NEXUS_SNAPSHOT_FLOAT32", "spill")
    for store in FLOAT32_STORES:
        if chosen == store:
            return store
    raise ValueError(f"NEXUS_SNAPSHOT_FLOAT32 must be one of {FLOAT32_STORES}, got {chosen!r}")


def spill_dir() -> str | None:
    """The folder of spill files: ``NEXUS_SNAPSHOT_SPILL_DIR``, else None (the system's temporary folder)."""
    return os.environ.get("NEXUS_SNAPSHOT_SPILL_DIR") or None


# Rows scored exactly at least: the bar ``t`` comes from these. More makes the bar tighter (fewer extra
# rows pass it) but costs a gather per row; bench/query_bench.py found 256 a good balance at 100k-1M.
RERANK_MIN = 256
# A scan of fewer rows than this runs on the calling thread (a task hand-off costs ~50 us, the scan of
# 100k int8 rows ~1.3 ms); larger scans are split in equal chunks over ``scan_threads()`` threads.
PARALLEL_MIN_ROWS = 200_000
_PER_ROW_FLOATS = 3  # scale, residual, norm (float32 each)
_BUILD_CHUNK = 16_384
READ_BATCH_ROWS = 65_536  # a snapshot reads its table in batches of this many rows
_INT8_MAX = 127


def quantize_query(query: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The int8 codes of ``query``, their scale, and the error ``|query - scale * codes|``."""
    q = np.asarray(query, np.float32)
    peak = float(np.abs(q).max()) if q.size else 0.0
    scale = peak / _INT8_MAX if peak > 0 else 1.0
    codes = np.clip(np.rint(q / scale), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    error = float(np.linalg.norm(q.astype(np.float64) - scale * codes.astype(np.float64)))
    return codes, scale, error


def _quantize(part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Codes, scales, residuals and norms of float32 rows (temporaries of this part only)."""
    peak = np.abs(part).max(axis=1) if len(part) else np.zeros(0, np.float32)
    scale = np.where(peak > 0, peak / np.float32(_INT8_MAX), np.float32(1)).astype(np.float32)
    quantized = np.clip(np.rint(part / scale[:, None]), -_INT8_MAX, _INT8_MAX)
    approx = quantized * scale[:, None]
    norms = np.linalg.norm(approx, axis=1).astype(np.float32)
    residuals = np.linalg.norm(part - approx, axis=1).astype(np.float32)
    # Computed in float32, so widen both a little: a bound must never be too small.
    spread = norms + residuals
    norms = norms * np.float32(1 + 2.0 ** -12) + np.float32(2.0 ** -20) * spread
    residuals = residuals * np.float32(1 + 2.0 ** -12) + np.float32(2.0 ** -20) * spread
    return quantized.astype(np.int8), scale, residuals, norms


@dataclass(frozen=True, eq=False)
class QuantizedVectors:
    """One block of unit vectors: int8 codes for the scan, float32 for the exact re-rank."""

    codes: np.ndarray  # int8 (rows, dim)
    scales: np.ndarray  # float32 (rows,): v ~ scale * codes
    residuals: np.ndarray  # float32 (rows,): |v - scale * codes|, rounded up
    norms: np.ndarray  # float32 (rows,): |scale * codes|, rounded up
    exact: np.ndarray  # float32 (rows, dim): an array, or a memory map when spilled
    store: Float32Store = "memory"

    @classmethod
    def build(cls, vectors: np.ndarray, store: Float32Store | None = None) -> QuantizedVectors:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls.build_streamed([vectors], vectors.shape[1], store)

    @classmethod
    def build_streamed(cls, parts: Iterable[np.ndarray], dim: int,
                       store: Float32Store | None = None) -> QuantizedVectors:
        """From float32 row batches as they are read: with ``spill``, no full float32 copy is ever
        held in process memory (each batch goes to the spill file as it comes)."""
        store = store or float32_store()
        pieces: list[tuple[np.ndarray, ...]] = []
        kept: list[np.ndarray] = []
        with contextlib.ExitStack() as stack:
            spill = (stack.enter_context(tempfile.TemporaryFile(dir=spill_dir(), prefix="nexus-snapshot-"))
                     if store == "spill" else None)
            for part in parts:
                part = np.ascontiguousarray(part, dtype=np.float32).reshape(-1, dim)
                pieces.extend(_quantize(part[lo:lo + _BUILD_CHUNK]) for lo in range(0, len(part), _BUILD_CHUNK))
                if spill is not None:
                    part.tofile(spill)
                else:
                    kept.append(part)
            rows = sum(len(p[0]) for p in pieces)
            exact: np.ndarray
            if spill is not None and rows:
                spill.flush()
                exact = np.memmap(spill, dtype=np.float32, mode="r", shape=(rows, dim))
            else:
                exact = np.concatenate(kept) if len(kept) > 1 else (kept[0] if kept else np.zeros((0, dim), np.float32))
                store = "memory"
        if not pieces:
            return cls(np.zeros((0, dim), np.int8), np.zeros(0, np.float32), np.zeros(0, np.float32),
                       np.zeros(0, np.float32), exact, store)
        codes, scales, residuals, norms = (np.concatenate(column) for column in zip(*pieces, strict=True))
        return cls(codes, scales, residuals, norms, exact, store)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def resident_nbytes(self) -> int:
        """Bytes the process must hold (a spilled float32 copy lives in the OS page cache instead)."""
        held = self.codes.nbytes + self.scales.nbytes + self.residuals.nbytes + self.norms.nbytes
        return int(held + (0 if self.store == "spill" else self.exact.nbytes))


def resident_bytes_per_row(dim: int, store: Float32Store | None = None) -> int:
    """What one row's vector costs the snapshot cache: int8 codes, three per-row numbers, and the
    float32 copy unless it is spilled."""
    return dim + 4 * _PER_ROW_FLOATS + (0 if (store or float32_store()) == "spill" else 4 * dim)


# --- the int8 scan --------------------------------------------------------------------------------

_kernels: tuple | None = None
_kernels_lock = threading.Lock()


def _compiled() -> tuple:
    """The numba kernels, compiled on first use (cached on disk). They release the GIL, so a pool of
    Python threads runs them in parallel; each row's value is computed alone, in exact integer
    arithmetic, so the split never changes a result."""
    global _kernels
    with _kernels_lock:
        if _kernels is None:
            from numba import njit

            # Integer dot products only: a float store in the same loop kept LLVM from vectorizing it
            # (measured 4.0 ms against 1.4 ms at 100k x 384); the scaling is a separate pass.
            @njit(nogil=True, cache=True, boundscheck=False)
            def dots_rows(codes, q_codes, out):  # pragma: no cover - compiled
                rows, dim = codes.shape
                for i in range(rows):
                    acc = np.int32(0)
                    for j in range(dim):
                        acc += np.int32(codes[i, j]) * np.int32(q_codes[j])
                    out[i] = acc

            @njit(nogil=True, cache=True, boundscheck=False)
            def dots_at(codes, positions, q_codes, out):  # pragma: no cover - compiled
                dim = codes.shape[1]
                for k in range(positions.shape[0]):
                    i = positions[k]
                    acc = np.int32(0)
                    for j in range(dim):
                        acc += np.int32(codes[i, j]) * np.int32(q_codes[j])
                    out[k] = acc

            def scan_rows(codes, scales, q_codes, q_scale, out):
                dots = np.empty(len(out), np.int32)
                dots_rows(codes, q_codes, dots)
                np.multiply(dots, scales, out=out)
                out *= q_scale

            def scan_at(codes, scales, positions, q_codes, q_scale, out):
                dots = np.empty(len(out), np.int32)
                dots_at(codes, positions, q_codes, dots)
                np.multiply(dots, scales[positions], out=out)
                out *= q_scale

            _kernels = (scan_rows, scan_at)
    return _kernels


def warm() -> None:
    """Compile (or load from numba's disk cache) and run the scan kernels once, so the first query of
    a process does not pay for it (about a second to compile, 0.1-0.3 s to load from the cache)."""
    scan_rows, scan_at = _compiled()
    codes, scales = np.zeros((2, 4), np.int8), np.ones(2, np.float32)
    scan_rows(codes, scales, codes[0], np.float32(1), np.empty(2, np.float32))
    scan_at(codes, scales, np.arange(2, dtype=np.int64), codes[0], np.float32(1), np.empty(2, np.float32))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def scan_threads(rows: int) -> int:
    """Threads for a scan of ``rows``: one for small scans; for large ones the cores that are free now
    (cores minus the 1-minute load, counting this scan's own thread as free), at least one.
    ``NEXUS_SCAN_THREADS`` fixes the number for large scans instead."""
    if rows < PARALLEL_MIN_ROWS:
        return 1
    fixed = os.environ.get("NEXUS_SCAN_THREADS")
    if fixed:
        return max(1, int(fixed))
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1
    return max(1, min(cores, int(cores - load + 1)))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, available_cores()), thread_name_prefix="nexus-scan")
        return _pool


def _run_split(work: Sequence[tuple], threads: int) -> None:
    """Run ``(kernel, args...)`` items, on this thread or spread over the pool."""
    if threads <= 1 or len(work) <= 1:
        for kernel, *args in work:
            kernel(*args)
        return
    futures = [_executor().submit(kernel, *args) for kernel, *args in work]
    for future in futures:
        future.result()


def _chunks(rows: int, threads: int) -> list[tuple[int, int]]:
    step = max(1, math.ceil(rows / max(threads, 1)))
    return [(lo, min(lo + step, rows)) for lo in range(0, rows, step)]


def estimates(blocks: Sequence[QuantizedVectors], offsets: np.ndarray, q_codes: np.ndarray, q_scale: float,
              positions: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """The int8 estimate of every row's score (or of the ascending ``positions`` given)."""
    scan_rows, scan_at = _compiled()
    q_scale32 = np.float32(q_scale)
    total = int(offsets[-1]) if positions is None else len(positions)
    threads = scan_threads(total) if threads is None else threads
    out = np.empty(total, np.float32)
    work: list[tuple] = []
    if positions is None:
        for block, start in zip(blocks, offsets, strict=False):  # offsets end with the total
            for lo, hi in _chunks(len(block), threads):
                work.append((scan_rows, block.codes[lo:hi], block.scales[lo:hi], q_codes, q_scale32,
                             out[start + lo:start + hi]))
    else:
        cuts = np.searchsorted(positions, offsets)
        for i, (block, start) in enumerate(zip(blocks, offsets, strict=False)):
            lo, hi = int(cuts[i]), int(cuts[i + 1])
            local = (positions[lo:hi] - start).astype(np.int64)
            for a, b in _chunks(hi - lo, threads):
                work.append((scan_at, block.codes, block.scales, local[a:b], q_codes, q_scale32,
                             out[lo + a:lo + b]))
    _run_split(work, threads)
    return out


def _per_row(blocks: Sequence[QuantizedVectors], offsets: np.ndarray, positions: np.ndarray,
             field: str) -> np.ndarray:
    out = np.empty(len(positions), np.float64)
    block_of = np.searchsorted(offsets, positions, side="right") - 1
    for b in np.unique(block_of):
        at = block_of == b
        out[at] = getattr(blocks[b], field)[positions[at] - offsets[b]]
    return out


def exact_scores(blocks: Sequence[QuantizedVectors], offsets: np.ndarray, query: np.ndarray,
                 positions: np.ndarray) -> np.ndarray:
    """Float32 dot products with ``query`` for the ascending ``positions`` (read from the float32 copy)."""
    out = np.empty(len(positions), np.float32)
    cuts = np.searchsorted(positions, offsets)
    for i, (block, start) in enumerate(zip(blocks, offsets, strict=False)):  # offsets end with the total
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        if hi > lo:
            np.einsum("ij,j->i", block.exact[positions[lo:hi] - start], query, out=out[lo:hi])
    return out


def _best_estimates(estimate: np.ndarray, first: int, n: int) -> np.ndarray:
    """About ``first`` of the best estimates (at least ``n``), ascending. Correctness needs only ``n`` of
    them (they set the bar, see ``exact_top``); the best few set it highest. A threshold from a strided
    sample finds them in one pass, several times cheaper than a partition of every estimate."""
    count = len(estimate)
    stride = count // (16 * first)
    if stride >= 2:
        sample = estimate[::stride]
        keep = max(1, len(sample) * first // count)
        threshold = np.partition(sample, len(sample) - keep)[len(sample) - keep]
        chosen = np.flatnonzero(estimate >= threshold)
        if n <= len(chosen) <= 4 * first:
            return chosen
    return np.sort(np.argpartition(estimate, count - first)[count - first:])


COLD_FLOAT32_SCAN_MAX = 4_000_000  # vector values (10k rows at 384-d: a few ms of numpy)


def _float32_scan_is_cheaper(rows: int, dim: int) -> bool:
    """Before the kernels are loaded in this process (a cold `nexus query`: 0.5-1.5 s to import numba and
    load them), a small space is scored exactly in float32 by numpy instead: the same answer, by design.
    A server loads them at start (``warm``) and always scans int8."""
    return _kernels is None and rows * dim <= COLD_FLOAT32_SCAN_MAX


def exact_top(blocks: Sequence[QuantizedVectors], offsets: np.ndarray, addrs: np.ndarray, query: np.ndarray,
              n: int, candidates: np.ndarray | None = None, *, threads: int | None = None,
              rerank_min: int = RERANK_MIN) -> tuple[np.ndarray, np.ndarray]:
    """Positions and float32 scores of the ``n`` best rows (among the ascending ``candidates``, or all),
    best first, ties to the lower row address: exactly what a float32 scan of every row would answer."""
    query = np.ascontiguousarray(query, np.float32)
    total = int(offsets[-1])
    count = total if candidates is None else len(candidates)
    n = min(n, count)
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    position_of = (lambda idx: idx) if candidates is None else (lambda idx: candidates[idx])
    first = max(n, rerank_min)
    if first < count and not _float32_scan_is_cheaper(count, len(query)):
        q_codes, q_scale, q_error = quantize_query(query)
        # Gathering a few rows beats scanning all of them; past about half, scanning all is cheaper.
        if candidates is None or len(candidates) * 2 >= total:
            estimate = estimates(blocks, offsets, q_codes, q_scale, threads=threads)
            if candidates is not None:
                estimate = estimate[candidates]
        else:
            estimate = estimates(blocks, offsets, q_codes, q_scale, candidates, threads=threads)
        chosen = _best_estimates(estimate, first, n)
        chosen_scores = exact_scores(blocks, offsets, query, position_of(chosen))
        bar = float(np.partition(chosen_scores, len(chosen_scores) - n)[len(chosen_scores) - n])
        q_norm = float(np.linalg.norm(query.astype(np.float64)))
        # float rounding of the estimate and of the float32 score itself, generously
        rounding = 4 * (len(query) + 8) * 2.0 ** -24
        worst = q_norm * max(float(b.residuals.max(initial=0.0)) for b in blocks) \
            + q_error * max(float(b.norms.max(initial=0.0)) for b in blocks)
        worst += rounding * q_norm * max(float((b.norms + b.residuals).max(initial=0.0)) for b in blocks)
        near = np.flatnonzero(estimate >= bar - worst)
        if len(near):
            at = position_of(near)
            residuals, norms = _per_row(blocks, offsets, at, "residuals"), _per_row(blocks, offsets, at, "norms")
            reach = (estimate[near].astype(np.float64) + q_norm * residuals + q_error * norms
                     + rounding * q_norm * (norms + residuals))
            near = near[reach >= bar]
        extra = np.setdiff1d(near, chosen, assume_unique=True)
        if len(extra):
            chosen = np.concatenate([chosen, extra])
            order = np.argsort(chosen, kind="stable")
            chosen = chosen[order]
            chosen_scores = np.concatenate(
                [chosen_scores, exact_scores(blocks, offsets, query, position_of(extra))])[order]
    else:
        chosen = np.arange(count)
        chosen_scores = exact_scores(blocks, offsets, query, position_of(chosen))
    positions = position_of(chosen)
    order = np.lexsort((addrs[positions], -chosen_scores))[:n]
    return positions[order], chosen_scores[order]
