"""A sentence-transformers model run by plain ``onnxruntime`` and ``tokenizers``: no torch, transformers or
sentence_transformers import, so a cold process (`nexus query`) embeds its query in a fraction of a second.

The ONNX files are exported once per data root by a process that already has torch loaded (ingest, the
first build; see ``onnx_export``). This module only reads them: the model's tokenizer (``tokenizer.json``,
truncated to the model's ``max_seq_length``), the transformer as ONNX, then mean pooling over the attention
mask and L2 normalization, as the model's own sentence-transformers modules do. It runs only models whose
modules are exactly Transformer, mean Pooling and Normalize (``plain_mean_pooling``); any other model stays
with sentence-transformers.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nexus_query.embeddings.local import SMALL_BATCH

_PLAIN_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                  "sentence_transformers.models.Normalize"]


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported, asked without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


def plain_mean_pooling(model_dir: Path) -> int | None:
    """The output dimension of the sentence-transformers model at ``model_dir`` when its modules are
    Transformer, mean Pooling and Normalize (what this module reproduces exactly), else None."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
        pooling = json.loads((model_dir / pooling_dir / "config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration):
        return None
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if [m["type"] for m in modules] != _PLAIN_MODULES or modes != {"pooling_mode_mean_tokens"} \
            or not (model_dir / "tokenizer.json").is_file():
        return None
    return int(pooling["word_embedding_dimension"])


def max_seq_length(model_dir: Path) -> int:
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    return int(config.get("max_seq_length", 256))


class OnnxEncoder:
    """Texts to unit-length float32 vectors with one exported ONNX transformer. Thread-safe; sessions are
    opened on first use, one per thread count."""

    def __init__(self, onnx_path: Path, model_dir: Path, dimension: int, batch_size: int = 64) -> None:
        self.onnx_path = onnx_path
        self.model_dir = model_dir
        self.dimension = dimension
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length(model_dir)
        self._lock = threading.Lock()
        self._sessions: dict[int, Any] = {}
        self._tokenizer: Any = None

    def _fast_tokenizer(self) -> Any:
        """The model's ``tokenizer.json``, truncated to ``max_seq_length`` and padded to the longest text,
        as sentence-transformers calls it."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=self.max_seq_length)
                padding = tokenizer.padding or {}
                tokenizer.enable_padding(pad_id=padding.get("pad_id", 0), pad_type_id=padding.get("pad_type_id", 0),
                                         pad_token=padding.get("pad_token", "[PAD]"))
                self._tokenizer = tokenizer
            return self._tokenizer

    def session(self, threads: int) -> Any:
        import onnxruntime as ort

        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared cores
                self._sessions[threads] = ort.InferenceSession(str(self.onnx_path), options,
                                                               providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from nexus_query.store.snapshot_scan import available_cores

        session = self.session(1 if len(texts) <= SMALL_BATCH else available_cores())
        tokenizer = self._fast_tokenizer()
        # longest first, as sentence-transformers does: batches of similar length pad little
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), np.float32)
        for start in range(0, len(texts), self.batch_size):
            picked = order[start:start + self.batch_size]
            encoded = tokenizer.encode_batch([texts[i] for i in picked])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], np.int64),
            }
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[picked] = pooled / np.maximum(norms, 1e-12)
        return out
