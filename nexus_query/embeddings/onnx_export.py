"""The bundled (or the user's) sentence-transformers model exported to ONNX, once per data root, by a process
that has torch loaded anyway (ingest, the first build): float32 for spaces of the ``local`` embedder (the
same vectors: cosine >= 0.9999), int8 for spaces of ``onnx-int8``. Later processes, a cold `nexus query`
among them, run the files with ``onnx_runtime`` and never import torch.

Files live under ``{cache_dir}/{model folder}-{digest of the weights}/``; ``cache_dir`` is
``{data_root}/models`` unless ``NEXUS_MODEL_CACHE`` names another folder (tests share one). Each file is
written to a temporary name, then renamed: concurrent exports never leave a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Literal

ExportKind = Literal["fp32", "int8"]
EXPORT_VERSION = "2"  # part of the cache key: bump when the export or quantization recipe changes
MODEL_CACHE_ENV_VAR = "NEXUS_MODEL_CACHE"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FILES: dict[ExportKind, str] = {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"}
_export_lock = threading.Lock()


def model_cache_dir(data_root: Path) -> Path:
    override = os.environ.get(MODEL_CACHE_ENV_VAR)
    return Path(override).expanduser() if override else data_root / "models"


def _weights_digest(model_dir: Path, cache_dir: Path) -> str:
    """A digest of the weights, remembered per file size and time (hashing 90 MB of weights would cost a
    cold query a quarter of a second)."""
    files = [model_dir / name for name in ("config.json", "model.safetensors")]
    stamp = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    memo = cache_dir / "digests.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    key = f"{EXPORT_VERSION}|{stamp}"
    if key in known:
        return str(known[key])
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()[:16]
    if not cache_dir.is_dir():  # reading creates nothing: the first export makes the folder
        return value
    try:
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({**known, key: value}))
        os.replace(tmp, memo)
    except OSError:  # a read-only cache still works; it hashes again next time
        pass
    return value


def export_path(model_dir: Path, cache_dir: Path, kind: ExportKind) -> Path:
    """Where the ``kind`` export of the weights at ``model_dir`` is (or will be) kept."""
    return cache_dir / f"{model_dir.name}-{_weights_digest(model_dir, cache_dir)}" / _FILES[kind]


def ensure_export(model_dir: Path, cache_dir: Path, kind: ExportKind) -> Path:
    """The ``kind`` export, made now (with torch) if it is not there yet."""
    target = export_path(model_dir, cache_dir, kind)
    with _export_lock:
        if not target.exists():
            _export(model_dir, target, kind)
    return target


def _export(model_dir: Path, target: Path, kind: ExportKind) -> None:
    """Export the float32 transformer at ``model_dir`` to ONNX (its last hidden state) and, for int8,
    quantize its linear layers."""
    import torch
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
    final_tmp = target.with_name(target.name + suffix)
    # The tracer's and the quantizer's advice (TracerWarning, "consider pre-processing", on the root logger)
    # is about this fixed recipe, not the user's data: it never reaches a terminal or a run's log.
    advice = _DropLogRecords("Please consider to run pre-processing")
    logging.getLogger().addFilter(advice)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(model), tuple(sample[name] for name in INPUTS), str(float_path),
                input_names=list(INPUTS), output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")},
                opset_version=17, dynamo=False,
            )
        if kind == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # Int8 weights with one scale per output channel, activations quantized per batch: cosine 0.992
            # to the float32 model on the example sentences, against 0.960 with one scale per tensor.
            quantize_dynamic(str(float_path), str(final_tmp), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=True)
        else:
            os.replace(float_path, final_tmp)
        os.replace(final_tmp, target)
    finally:
        logging.getLogger().removeFilter(advice)
        for leftover in (float_path, final_tmp):
            leftover.unlink(missing_ok=True)


class _DropLogRecords(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)
