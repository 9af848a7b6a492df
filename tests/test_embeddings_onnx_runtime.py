"""The torch-free query path: the model's ONNX exports run by onnxruntime and tokenizers give the vectors
sentence-transformers gives, a cold `nexus query` imports none of torch, transformers, sentence-transformers,
numba, polars, scikit-learn or dagster, new spaces get the int8 embedder by default, and a space keeps the
embedder that built it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from nexus_query.config import load_config  # noqa: E402
from nexus_query.context import RequestContext  # noqa: E402
from nexus_query.embeddings import LocalProvider, get_provider, provider_for_space  # noqa: E402
from nexus_query.embeddings.onnx_export import export_path  # noqa: E402
from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider  # noqa: E402
from nexus_query.query import query  # noqa: E402
from nexus_query.routing import RoutingRegistry  # noqa: E402
from nexus_query.store import SpaceStore  # noqa: E402
from tests.helpers import REPO, load_texts  # noqa: E402

ACME = RequestContext("acme")
TEXTS = [
    "how do I return a tent?",
    "  Café Zürich: naïve \"quoted\" words, accents and spaces  ",
    "p95 latency is the 95th percentile: 95 of 100 requests are faster than it.",
    "Standard shipping takes three to five business days within the country. " * 30,  # truncated at 256
    "",
]
HEAVY = ("torch", "transformers", "sentence_transformers", "numba", "polars", "sklearn", "dagster", "onnx")


@pytest.fixture(scope="module")
def exported_local(tmp_path_factory) -> LocalProvider:
    """A local provider whose float32 export is made (by loading torch, as ingest does)."""
    local = LocalProvider(cache_dir=tmp_path_factory.mktemp("models"))
    assert local.onnx_encoder() is None  # nothing exported yet: torch runs the model
    local.embed(["the first batch loads torch and exports"] * 2)
    assert local.exported()
    return local


def test_the_float32_onnx_export_gives_the_vectors_of_sentence_transformers(exported_local, provider):
    onnx, reference = exported_local.onnx_encoder().encode(TEXTS), provider.model.encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert onnx.shape == (len(TEXTS), 384) and onnx.dtype == np.float32
    assert (onnx * reference).sum(axis=1).min() >= 0.9999


def test_the_local_provider_reads_its_dimension_without_loading_the_model(tmp_path):
    probe = ("import sys; from nexus_query.embeddings import LocalProvider; p = LocalProvider(cache_dir=sys.argv[1]); "
             "print(p.info.id, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.stdout.split() == ["all-MiniLM-L6-v2@384", "False"], out.stderr[-2000:]


def test_a_fresh_process_embeds_with_the_exports_without_importing_torch(exported_local, tmp_path):
    int8 = OnnxInt8Provider(cache_dir=exported_local._cache_dir)
    expected = {"local": exported_local.embed(TEXTS[:3]).tolist(), "int8": int8.embed(TEXTS[:3]).tolist()}
    probe = """
import json, sys
from nexus_query.embeddings import LocalProvider
from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider
texts = json.loads(sys.argv[2])
out = {"local": LocalProvider(cache_dir=sys.argv[1]).embed(texts).tolist(),
       "int8": OnnxInt8Provider(cache_dir=sys.argv[1]).embed(texts).tolist(),
       "heavy": sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[3]))}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", probe, str(exported_local._cache_dir), json.dumps(TEXTS[:3]),
                           json.dumps(HEAVY)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["heavy"] == []
    np.testing.assert_allclose(got["local"], expected["local"], atol=1e-6)
    np.testing.assert_array_equal(got["int8"], expected["int8"])  # the same file, the same runtime


def test_a_cold_nexus_query_imports_no_model_framework_and_finds_the_text(nexus_home, provider):
    registry = RoutingRegistry(load_config())
    int8 = get_provider(registry.config)
    assert isinstance(int8, OnnxInt8Provider)  # the default of new spaces where onnxruntime is installed
    load_texts(SpaceStore(registry), int8, ACME, "notes", {"tent.md": TEXTS[0], "p95.md": TEXTS[2]})
    probe = """
import json, sys
from nexus_query import cli
code = cli.main(["query", "--space", "notes", "--key", "acme-demo-key", "--json", "give back my tent"])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[1]))))
"""
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(HEAVY)], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    *page, heavy = done.stdout.strip().splitlines()
    assert json.loads(heavy) == []
    assert json.loads("\n".join(page))["hits"][0]["content"] == TEXTS[0]


def test_new_spaces_get_int8_and_a_space_keeps_the_embedder_that_built_it(nexus_home, provider):
    registry = RoutingRegistry(load_config())
    config = registry.config
    assert config.embedder.provider == "auto" and get_provider(config).info.id == "all-MiniLM-L6-v2-onnx-int8@384"
    store = SpaceStore(registry)
    old = load_texts(store, provider, ACME, "old", {"tent.md": TEXTS[0]})  # built by the float32 model
    assert provider_for_space(config, None) is get_provider(config)
    kept = provider_for_space(config, old.embedder)
    assert isinstance(kept, LocalProvider) and kept.info == old.embedder
    assert query(ACME, "old", "return a tent", store=store).hits[0].content == TEXTS[0]


def test_the_export_is_kept_per_weights_and_a_digest_is_not_recomputed(exported_local):
    path = export_path(exported_local._dir, exported_local._cache_dir, "fp32")
    assert path.is_file() and path.parent.parent == exported_local._cache_dir
    memo = json.loads((exported_local._cache_dir / "digests.json").read_text())
    assert list(memo.values()) == [path.parent.name.rsplit("-", 1)[1]]
