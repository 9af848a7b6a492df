"""The int8 snapshot scan with exact float32 re-rank answers exactly what a float32 scan of every row
answers (rows, order, scores, ties by row address), on random and real vectors, filtered or not, for any
thread count; and it holds a row in a quarter of the float32 bytes."""

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_query.context import RequestContext
from nexus_query.store import snapshot_scan
from nexus_query.store.filters import Condition
from nexus_query.store.snapshot_scan import QuantizedVectors, exact_top, quantize_query, scan_threads
from nexus_query.store.snapshots import SnapshotCache
from tests.helpers import load_texts

ACME = RequestContext("acme")


@pytest.fixture(autouse=True, scope="module")
def loaded_kernels():
    """The int8 kernels loaded, as in a server: small scans then go through them too (a process that has
    not loaded them scores small spaces in float32 instead; see the last tests)."""
    snapshot_scan.warm()


def float32_top(vectors: np.ndarray, addrs: np.ndarray, query: np.ndarray, n: int,
                candidates: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
    """The reference: float32 dot products of every row, best first, ties to the lower address."""
    scores = np.einsum("ij,j->i", vectors, query)
    pool = np.arange(len(vectors)) if candidates is None else candidates
    order = pool[np.lexsort((addrs[pool], -scores[pool]))][:n]
    return order.tolist(), scores[order]


def blocks_of(vectors: np.ndarray, cuts: list[int], store: str) -> tuple[list[QuantizedVectors], np.ndarray]:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(vectors))), len(vectors)]
    blocks = [QuantizedVectors.build(vectors[a:b], store) for a, b in pairwise(bounds)]
    return blocks, np.asarray(bounds)


def assert_exact(vectors, addrs, query, n, candidates=None, *, cuts=(), store="memory", threads=1,
                 rerank_min=snapshot_scan.RERANK_MIN):
    blocks, offsets = blocks_of(vectors, list(cuts), store)
    positions, scores = exact_top(blocks, offsets, addrs, query, n, candidates, threads=threads,
                                  rerank_min=rerank_min)
    expected, expected_scores = float32_top(vectors, addrs, query, n, candidates)
    assert positions.tolist() == expected
    assert scores.dtype == np.float32 and np.array_equal(scores, expected_scores)  # bit for bit


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = draw(st.integers(1, 1500))
    dim = draw(st.sampled_from([3, 16, 384]))
    clusters = draw(st.integers(1, 8))
    spread = draw(st.sampled_from([0.0, 0.01, 0.3, 3.0]))  # 0: every row of a cluster identical (ties)
    centers = rng.normal(size=(clusters, dim))
    vectors = unit(centers[rng.integers(0, clusters, rows)] + spread * rng.normal(size=(rows, dim)) / np.sqrt(dim))
    duplicates = draw(st.integers(0, rows // 2))  # exact copies of other rows: tied scores
    if duplicates:
        vectors[rng.integers(0, rows, duplicates)] = vectors[rng.integers(0, rows, duplicates)]
    addrs = rng.permutation(rows * 4)[:rows].astype(np.uint64)  # ties break by address, not position
    query_kind = draw(st.sampled_from(["row", "near", "random"]))
    if query_kind == "row":
        query = vectors[rng.integers(0, rows)].copy()
    else:
        base = vectors[rng.integers(0, rows)] if query_kind == "near" else np.zeros(dim)
        query = unit((base + rng.normal(size=dim) / np.sqrt(dim))[None])[0]
    density = draw(st.sampled_from([None, 0.02, 0.3, 0.7]))
    candidates = None if density is None else np.flatnonzero(rng.random(rows) < density)
    return dict(vectors=vectors, addrs=addrs, query=query, candidates=candidates,
                n=draw(st.integers(1, 300)),
                cuts=draw(st.lists(st.integers(0, rows), max_size=3)),
                store=draw(st.sampled_from(["memory", "spill"])),
                threads=draw(st.integers(1, 3)),
                rerank_min=draw(st.sampled_from([1, 5, snapshot_scan.RERANK_MIN])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_int8_scan_with_rerank_equals_float32_exact_search_on_random_vectors(case):
    assert_exact(case["vectors"], case["addrs"], case["query"], case["n"], case["candidates"], cuts=case["cuts"],
                 store=case["store"], threads=case["threads"], rerank_min=case["rerank_min"])


@pytest.fixture(scope="module")
def real_vectors(provider):
    """Real all-MiniLM-L6-v2 embeddings: the bundled example texts, split in sentences and embedded."""
    from pathlib import Path

    texts = []
    for path in sorted((Path(__file__).resolve().parents[1] / "examples" / "data").rglob("*.md")):
        texts += [s.strip() for s in path.read_text().replace("\n", " ").split(". ") if len(s.split()) >= 4]
    texts = sorted(set(texts))
    return provider.embed(texts), provider.embed(["how do I return a tent?", "stove fuel", "p95 latency"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), copies=st.integers(1, 4),
       density=st.sampled_from([None, 0.1, 0.6]), which=st.integers(0, 2), threads=st.integers(1, 3),
       rerank_min=st.sampled_from([1, 8, snapshot_scan.RERANK_MIN]))
def test_int8_scan_with_rerank_equals_float32_exact_search_on_real_embeddings(
        real_vectors, seed, n, copies, density, which, threads, rerank_min):
    rows, queries = real_vectors
    rng = np.random.default_rng(seed)
    vectors = np.ascontiguousarray(np.concatenate([rows] * copies))  # every sentence `copies` times: ties
    addrs = rng.permutation(len(vectors)).astype(np.uint64)
    candidates = None if density is None else np.flatnonzero(rng.random(len(vectors)) < density)
    assert_exact(vectors, addrs, queries[which], n, candidates, cuts=[len(rows)], threads=threads,
                 rerank_min=rerank_min)


def test_the_thread_count_never_changes_a_result():
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(20_000, 384)))
    vectors[5000:5100] = vectors[0]  # a hundred exact ties at the top
    addrs = rng.permutation(20_000).astype(np.uint64)
    blocks, offsets = blocks_of(vectors, [7000, 13000], "memory")
    query = vectors[0]
    mask = np.flatnonzero(rng.random(20_000) < 0.2)
    q_codes, q_scale, _ = quantize_query(query)
    estimates = [snapshot_scan.estimates(blocks, offsets, q_codes, q_scale, threads=t) for t in (1, 2, 3, 8)]
    assert all(np.array_equal(estimates[0], e) for e in estimates[1:])
    for candidates in (None, mask):
        answers = [exact_top(blocks, offsets, addrs, query, 150, candidates, threads=t) for t in (1, 2, 3, 8)]
        for positions, scores in answers[1:]:
            assert np.array_equal(positions, answers[0][0]) and np.array_equal(scores, answers[0][1])


def test_scan_threads_uses_one_thread_for_small_scans_and_obeys_the_override(monkeypatch):
    assert scan_threads(snapshot_scan.PARALLEL_MIN_ROWS - 1) == 1
    monkeypatch.setenv("NEXUS_SCAN_THREADS", "3")
    assert scan_threads(snapshot_scan.PARALLEL_MIN_ROWS) == 3
    monkeypatch.delenv("NEXUS_SCAN_THREADS")
    assert 1 <= scan_threads(snapshot_scan.PARALLEL_MIN_ROWS) <= snapshot_scan.available_cores()


def test_a_quantized_row_costs_a_quarter_of_float32_and_the_spilled_copy_is_mapped_not_held():
    vectors = unit(np.random.default_rng(1).normal(size=(4000, 384)))
    spilled = QuantizedVectors.build(vectors, "spill")
    held = QuantizedVectors.build(vectors, "memory")
    assert isinstance(spilled.exact, np.memmap) and np.array_equal(spilled.exact, vectors)
    assert spilled.resident_nbytes <= vectors.nbytes / 3.5
    assert held.resident_nbytes == spilled.resident_nbytes + vectors.nbytes
    assert spilled.resident_nbytes == len(vectors) * snapshot_scan.resident_bytes_per_row(384, "spill")


def test_where_the_float32_copy_goes_is_read_from_the_environment_when_a_block_is_built(monkeypatch, tmp_path):
    """Not at import: a process (or test) that sets ``NEXUS_SNAPSHOT_FLOAT32`` or ``..._SPILL_DIR`` later
    is obeyed, and a value that names no store is refused when it is used."""
    vectors = unit(np.random.default_rng(2).normal(size=(50, 16)))
    monkeypatch.setenv("NEXUS_SNAPSHOT_FLOAT32", "memory")
    held = QuantizedVectors.build(vectors)
    assert held.store == "memory" and not isinstance(held.exact, np.memmap)
    assert snapshot_scan.resident_bytes_per_row(16) == snapshot_scan.resident_bytes_per_row(16, "memory")
    monkeypatch.setenv("NEXUS_SNAPSHOT_FLOAT32", "spill")
    monkeypatch.setenv("NEXUS_SNAPSHOT_SPILL_DIR", str(tmp_path))
    assert snapshot_scan.spill_dir() == str(tmp_path)
    spilled = QuantizedVectors.build(vectors)
    assert spilled.store == "spill" and isinstance(spilled.exact, np.memmap)
    assert np.array_equal(spilled.exact, vectors)
    monkeypatch.setenv("NEXUS_SNAPSHOT_FLOAT32", "disk")
    with pytest.raises(ValueError, match="NEXUS_SNAPSHOT_FLOAT32"):
        QuantizedVectors.build(vectors)


def test_snapshot_top_equals_a_float32_scan_across_blocks_and_filters(store, provider):
    """Through the real path: a LanceDB table, a snapshot of two blocks (one read incrementally)."""
    first = {f"doc-{i}": f"note {i}: the {'stove' if i % 3 else 'tent'} {'manual' if i % 2 else 'recall'}"
             for i in range(100)}
    load_texts(store, provider, ACME, "main", first)
    space = store.open(ACME, "main")
    cache = SnapshotCache()
    cache.get(space.table, space.location.dataset_uri)
    load_texts(store, provider, ACME, "main", {f"more-{i}": f"note {i}: a lantern or a stove" for i in range(20)})
    space = store.open(ACME, "main")
    snap = cache.get(space.table, space.location.dataset_uri)
    assert len(snap.blocks) == 2
    vectors = np.concatenate([np.asarray(b.vectors) for b in snap.blocks])
    for text in ("stove recall", "tent", "lantern"):
        query = provider.embed([text])[0]
        for mask in (None, snap.mask([]), np.arange(snap.num_rows) % 3 == 0):
            positions, scores = snap.top(query, 40, mask)
            expected, expected_scores = float32_top(vectors, snap.addrs, query, 40,
                                                    None if mask is None else np.flatnonzero(mask))
            assert positions.tolist() == expected and np.array_equal(scores, expected_scores)
    # a metadata filter selects the rows; nothing matching gives nothing
    assert snap.top(provider.embed(["x"])[0], 5, snap.mask([Condition("absent", "eq", ("s:1",), ("1",))]))[0].size == 0


def test_a_snapshot_read_in_small_batches_equals_the_table(store, provider, monkeypatch):
    """The full read streams batches (one batch's float32 in memory at a time): same rows, same order of
    positions and addresses as one read of the whole version, and an empty table gives an empty block."""
    from nexus_query.store import snapshots

    monkeypatch.setattr(snapshots, "READ_BATCH_ROWS", 16)
    texts = {f"doc-{i}": f"note {i} about {'tents' if i % 2 else 'stoves'}" for i in range(70)}
    space = load_texts(store, provider, ACME, "main", texts)
    snap = SnapshotCache().get(space.table, space.location.dataset_uri)
    whole = space.table.search().select(["id", "text", "vector", "_rowaddr"]).limit(None).to_arrow()
    assert snap.addrs.tolist() == whole.column("_rowaddr").to_pylist()
    assert snap.rows.column("id").to_pylist() == whole.column("id").to_pylist()
    expected = np.asarray(whole.column("vector").to_pylist(), np.float32)
    assert np.array_equal(np.asarray(snap.blocks[0].vectors), expected)
    query = provider.embed(["tents"])[0]
    positions, scores = snap.top(query, 20)
    assert positions.tolist() == float32_top(expected, snap.addrs, query, 20)[0]

    empty = store.open_or_create(ACME, "empty", provider.info)
    nothing = SnapshotCache().get(empty.table, empty.location.dataset_uri)
    assert nothing.num_rows == 0 and nothing.top(query, 5)[0].size == 0


def test_before_the_kernels_load_a_small_scan_is_float32_and_answers_the_same(monkeypatch):
    rng = np.random.default_rng(7)
    vectors, query = unit(rng.normal(size=(3000, 64))), unit(rng.normal(size=(1, 64)))[0]
    addrs = np.arange(len(vectors), dtype=np.uint64)
    blocks, offsets = blocks_of(vectors, [1000], "memory")
    with_kernels = exact_top(blocks, offsets, addrs, query, 20, threads=1, rerank_min=32)
    monkeypatch.setattr(snapshot_scan, "_kernels", None)
    monkeypatch.setattr(snapshot_scan, "estimates", lambda *a, **k: pytest.fail("a cold small scan loaded numba"))
    cold = exact_top(blocks, offsets, addrs, query, 20, threads=1, rerank_min=32)
    assert cold[0].tolist() == with_kernels[0].tolist() and np.array_equal(cold[1], with_kernels[1])


def test_a_large_scan_uses_the_int8_kernels_even_in_a_cold_process(monkeypatch):
    rows = snapshot_scan.COLD_FLOAT32_SCAN_MAX // 8 + 1
    assert not snapshot_scan._float32_scan_is_cheaper(rows - 1, 8)  # loaded: always int8
    monkeypatch.setattr(snapshot_scan, "_kernels", None)
    assert snapshot_scan._float32_scan_is_cheaper(rows - 1, 8)
    assert not snapshot_scan._float32_scan_is_cheaper(rows, 8)
