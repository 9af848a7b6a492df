"""Embedding providers: local sentence-transformers, the same model as int8 ONNX Runtime, or a remote
OpenAI-compatible endpoint."""

from __future__ import annotations

from functools import lru_cache

from nexus_query.config import NexusConfig, default_config
from nexus_query.embeddings.base import EmbedderInfo, EmbeddingProvider
from nexus_query.embeddings.billing import BillingGate
from nexus_query.embeddings.local import LocalProvider
from nexus_query.embeddings.remote import RemoteProvider
from nexus_query.errors import ConfigError

__all__ = [
    "BillingGate", "EmbedderInfo", "EmbeddingProvider", "LocalProvider", "RemoteProvider", "get_provider",
]


@lru_cache(maxsize=4)
def _provider_for(config: NexusConfig) -> EmbeddingProvider:
    emb = config.embedder
    if emb.provider == "local":
        return LocalProvider(emb.model, device=emb.device, batch_size=emb.batch_size)
    if emb.provider == "onnx-int8":  # imported here: onnxruntime is an optional extra
        from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider

        return OnnxInt8Provider(emb.model, cache_dir=config.data_root / "models", batch_size=emb.batch_size)
    if emb.provider == "remote":
        r = emb.remote
        gate = BillingGate(config.data_root / "billing.sqlite", r.budgets)
        return RemoteProvider(
            r.base_url, r.model or emb.model, r.dimension, api_key=r.api_key, gate=gate,
            max_retries=r.max_retries, backoff_seconds=r.backoff_seconds, timeout_seconds=r.timeout_seconds,
            batch_size=emb.batch_size,
        )
    raise ConfigError(f"embedder.provider must be 'local', 'onnx-int8' or 'remote', got {emb.provider!r}")


def get_provider(config: NexusConfig | None = None) -> EmbeddingProvider:
    """The configured provider, built once per process (the local model loads on first use)."""
    return _provider_for(config or default_config())
