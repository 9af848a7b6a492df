"""The int8 ONNX Runtime embedder: exported offline from the bundled weights once, close to the float32
model, a separate embedder id that a space built by the float32 model refuses (409), while a server
configured for int8 answers such a space with the embedder that built it; and the bounded query-embedding
cache both local embedders share."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from nexus_query.api import create_app  # noqa: E402
from nexus_query.api.server import background_server  # noqa: E402
from nexus_query.config import load_config  # noqa: E402
from nexus_query.context import RequestContext  # noqa: E402
from nexus_query.embeddings import get_provider  # noqa: E402
from nexus_query.embeddings.local import QueryEmbeddingCache  # noqa: E402
from nexus_query.embeddings.onnx_export import export_path  # noqa: E402
from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider  # noqa: E402
from nexus_query.errors import EmbedderMismatch  # noqa: E402
from nexus_query.query import query  # noqa: E402
from nexus_query.routing import RoutingRegistry  # noqa: E402
from nexus_query.scoring import vector_relevance  # noqa: E402
from nexus_query.store import Record, SpaceStore, build_rows  # noqa: E402
from tests.helpers import load_texts  # noqa: E402

ACME = RequestContext("acme")
TEXTS = [
    "how do I return a tent?",
    "Embercore valve recall: units with serial prefix QX7 must stop using the regulator valve.",
    "p95 latency is the 95th percentile: 95 of 100 requests are faster than it.",
    "Standard shipping takes three to five business days within the country. " * 30,  # truncated at 256
]


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    return OnnxInt8Provider(cache_dir=tmp_path_factory.mktemp("models"))


def test_int8_vectors_are_unit_length_and_close_to_the_float32_models(int8, provider):
    quantized, reference = int8.embed(TEXTS), provider.embed(TEXTS)
    assert quantized.shape == (len(TEXTS), 384) and quantized.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    cosine = (quantized * reference).sum(axis=1)
    assert cosine.min() > 0.97, cosine
    # and it ranks like the float32 model: each text's nearest other text is the same
    assert ((quantized @ quantized.T).argsort(axis=1)[:, -2] == (reference @ reference.T).argsort(axis=1)[:, -2]).all()


def test_the_int8_model_is_exported_once_from_local_weights_and_reused(int8, tmp_path_factory):
    int8.embed(["warm"])
    path = export_path(int8._dir, int8._cache_dir, "int8")
    before = path.stat().st_mtime_ns
    again = OnnxInt8Provider(cache_dir=int8._cache_dir)
    again.embed(["again"])
    assert path.stat().st_mtime_ns == before and list(int8._cache_dir.rglob("*.onnx")) == [path]
    assert not list(int8._cache_dir.rglob("*.tmp"))


def test_the_int8_embedder_has_its_own_id_and_a_default_space_refuses_it(int8, provider, store):
    assert int8.info.id == "all-MiniLM-L6-v2-onnx-int8@384" != provider.info.id
    space = load_texts(store, provider, ACME, "main", {"tent": TEXTS[0]})
    with pytest.raises(EmbedderMismatch) as refused:
        query(ACME, "main", "tent", store=store, provider=int8)
    assert refused.value.status == 409
    with pytest.raises(EmbedderMismatch):
        space.upsert(build_rows(ACME, [Record(text="x", source="x")], int8.embed(["x"]), int8.info), int8.info)
    assert space.count() == 1


def test_a_server_configured_for_int8_answers_a_space_built_by_the_float32_model_with_that_model(
        tmp_path, monkeypatch, provider):
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path))
    monkeypatch.setenv("NEXUS_EMBEDDER", "onnx-int8")
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    registry = RoutingRegistry(load_config())
    assert isinstance(get_provider(registry.config), OnnxInt8Provider)
    load_texts(SpaceStore(registry), provider, ACME, "main", {"tent": TEXTS[0], "valve": TEXTS[1]})
    with background_server(create_app(registry)) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.post("/nexus/spaces/main/query", json={"q": "returning a tent", "mode": "vector"},
                               headers={"Authorization": "Bearer acme-demo-key"})
    assert response.status_code == 200, response.text
    top = response.json()["hits"][0]
    # the float32 model's own cosine: the space kept the embedder that built it
    expected = float(provider.embed(["returning a tent"])[0] @ provider.embed([TEXTS[0]])[0])
    assert top["content"] == TEXTS[0]
    assert top["score_details"]["vector"] == pytest.approx(vector_relevance(expected), abs=1e-4)


def test_query_embedding_cache_is_bounded_lru_and_hands_out_copies():
    cache = QueryEmbeddingCache(max_entries=2)
    calls = []

    def compute(text):
        calls.append(text)
        return np.full((1, 3), len(calls), np.float32)

    first = cache.get_or_compute("a", lambda: compute("a"))
    first[:] = -1  # the caller's copy: the cache keeps what the model said
    assert cache.get_or_compute("a", lambda: compute("a")).tolist() == [[1, 1, 1]]
    cache.get_or_compute("b", lambda: compute("b"))
    cache.get_or_compute("a", lambda: compute("a"))  # a is now the most recent
    cache.get_or_compute("c", lambda: compute("c"))  # evicts b
    assert len(cache) == 2 and calls == ["a", "b", "c"]
    cache.get_or_compute("b", lambda: compute("b"))
    assert calls == ["a", "b", "c", "b"] and cache.hits == 2


def test_the_cache_computes_only_the_texts_it_lacks_in_one_call_and_keeps_their_order():
    cache = QueryEmbeddingCache(max_entries=3)
    calls = []

    def compute(texts):
        calls.append(texts)
        return np.array([[float(ord(t))] * 2 for t in texts], np.float32)

    assert cache.get_or_compute_many(["a", "b", "a"], compute).tolist() == [[97, 97], [98, 98], [97, 97]]
    got = cache.get_or_compute_many(["c", "b", "d"], compute)  # b is cached; d evicts a, the oldest
    got[:] = -1  # the caller's rows: the cache keeps what the model said
    assert calls == [["a", "b"], ["c", "d"]] and set(cache._items) == {"b", "c", "d"}
    assert cache.get_or_compute_many(["d", "b"], compute).tolist() == [[100, 100], [98, 98]]
    assert len(calls) == 2 and (cache.hits, cache.misses) == (3, 4)


def test_a_repeated_query_skips_the_model(provider):
    text = "a query asked twice, word for word"
    misses = provider._query_cache.misses
    first = provider.embed([text])
    second = provider.embed([text])
    assert provider._query_cache.misses == misses + 1
    assert np.array_equal(first, second)
