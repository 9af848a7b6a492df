import numpy as np
import torch

from nexus_query.embeddings import local


def test_bundled_model_loads_offline_as_unit_384d_vectors(provider):
    vectors = provider.embed(["how do I return a tent?", "propane stove"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert provider.info.id == "all-MiniLM-L6-v2@384"


def test_queries_run_single_threaded_and_batches_on_torchs_default_with_equal_vectors(provider):
    texts = [f"tent model {i} sleeps {i + 1} people" for i in range(local.SMALL_BATCH + 4)]
    batch = provider.embed(texts)
    assert torch.get_num_threads() == local._default_threads
    single = provider.embed([texts[3]])
    assert torch.get_num_threads() == 1
    np.testing.assert_allclose(single[0], batch[3], atol=1e-5)
