"""Embedding providers: local sentence-transformers, the same model as int8 ONNX Runtime, or a remote
OpenAI-compatible endpoint. New spaces get the configured one (``auto``: int8 ONNX where onnxruntime is
installed, else the float32 model); a space keeps the embedder that built it."""

from __future__ import annotations

import importlib.util
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from nexus_query.config import NexusConfig, default_config
from nexus_query.embeddings.base import EmbedderInfo, EmbeddingProvider
from nexus_query.embeddings.local import LocalProvider
from nexus_query.embeddings.onnx_export import model_cache_dir
from nexus_query.embeddings.onnx_runtime import onnxruntime_installed
from nexus_query.errors import ConfigError

if TYPE_CHECKING:
    from nexus_query.embeddings.billing import BillingGate
    from nexus_query.embeddings.remote import RemoteProvider

__all__ = [
    "BillingGate", "EmbedderInfo", "EmbeddingProvider", "LocalProvider", "RemoteProvider", "get_provider",
    "provider_for_space", "warm_providers",
]
_LOCAL_PROVIDERS = ("local", "onnx-int8")  # run on this machine from the bundled (or the user's) weights


def __getattr__(name: str) -> Any:
    """The remote provider and its billing gate, imported when asked for (httpx is not a query's cost)."""
    if name == "RemoteProvider":
        from nexus_query.embeddings.remote import RemoteProvider

        return RemoteProvider
    if name == "BillingGate":
        from nexus_query.embeddings.billing import BillingGate

        return BillingGate
    raise AttributeError(name)


def resolved_provider_name(config: NexusConfig) -> str:
    """``embedder.provider`` with ``auto`` resolved: ``onnx-int8`` where onnxruntime and onnx (to export
    the model) are installed, as the ``server`` and ``pipelines`` extras install them; else ``local``."""
    name = config.embedder.provider
    if name != "auto":
        return name
    return "onnx-int8" if _onnx_export_installed() else "local"


@cache
def _onnx_export_installed() -> bool:
    """Asked once per process: every query resolves the provider, and an install does not change under it."""
    return onnxruntime_installed() and importlib.util.find_spec("onnx") is not None


@lru_cache(maxsize=8)
def _provider_for(config: NexusConfig, name: str) -> EmbeddingProvider:
    emb = config.embedder
    if name == "local":
        return LocalProvider(emb.model, device=emb.device, batch_size=emb.batch_size,
                             cache_dir=model_cache_dir(config.data_root))
    if name == "onnx-int8":  # imported here: onnxruntime is an optional extra
        from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider

        return OnnxInt8Provider(emb.model, cache_dir=model_cache_dir(config.data_root), batch_size=emb.batch_size)
    if name == "remote":
        from nexus_query.embeddings.billing import BillingGate
        from nexus_query.embeddings.remote import RemoteProvider

        r = emb.remote
        gate = BillingGate(config.data_root / "billing.sqlite", r.budgets)
        return RemoteProvider(
            r.base_url, r.model or emb.model, r.dimension, api_key=r.api_key, gate=gate,
            max_retries=r.max_retries, backoff_seconds=r.backoff_seconds, timeout_seconds=r.timeout_seconds,
            batch_size=emb.batch_size,
        )
    raise ConfigError(f"embedder.provider must be 'auto', 'local', 'onnx-int8' or 'remote', got {name!r}")


def get_provider(config: NexusConfig | None = None) -> EmbeddingProvider:
    """The configured provider (the one new spaces get), built once per process (models load on first use)."""
    config = config or default_config()
    return _provider_for(config, resolved_provider_name(config))


def provider_for_space(config: NexusConfig | None, built_by: EmbedderInfo | None) -> EmbeddingProvider:
    """The provider for a space built by ``built_by`` (None: a new or empty space): the local embedder that
    built it when it is one of ours, so a space keeps its embedder whatever the default became; else the
    configured one (a space of another embedder then refuses it with ``nexus.embedder_mismatch``)."""
    config = config or default_config()
    configured = get_provider(config)
    if built_by is None or built_by.provider not in _LOCAL_PROVIDERS \
            or built_by.provider == resolved_provider_name(config):
        return configured
    try:
        own = _provider_for(config, built_by.provider)
    except ConfigError:  # onnxruntime no longer installed: the configured one, refused as a mismatch
        return configured
    return own if own.info.id == built_by.id else configured


def warm_providers(config: NexusConfig) -> None:
    """Load and run once the embedders this data root's spaces use: the configured one, and the other local
    one where its ONNX export is here (spaces built before the default changed), so no first query pays
    for opening a model."""
    name = resolved_provider_name(config)
    get_provider(config).embed(["warm up"])
    for other in _LOCAL_PROVIDERS:
        if other == name:
            continue
        try:
            provider = _provider_for(config, other)
        except ConfigError:  # onnxruntime not installed
            continue
        if getattr(provider, "exported", lambda: False)():
            provider.embed(["warm up"])
