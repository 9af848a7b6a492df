"""The model's tokenizer for the chunker, read from its ``tokenizer.json`` by the ``tokenizers`` library alone.

transformers' ``AutoTokenizer`` runs the same Rust tokenizer from the same file, but importing it costs
seconds (torch and transformers) in every process that chunks. This offers exactly what
``nexus_pipelines.ingest.chunking.Chunker`` asks of a tokenizer (``name_or_path``,
``num_special_tokens_to_add``, a call returning ``offset_mapping`` and ``word_ids``), with truncation and
padding off as transformers sets them for such a call, so the chunker cuts the same chunks and keeps
its fingerprint (``tests/test_word_pieces.py`` compares both over varied texts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class WordPieces:
    """Encodings of a batch, indexed as transformers' ``BatchEncoding`` is for the chunker's use (its
    offsets built once: the chunker reads them once per text)."""

    def __init__(self, encodings: list[Any]) -> None:  # tokenizers.Encoding
        self.encodings = encodings
        self._offsets = [e.offsets for e in encodings]

    def __getitem__(self, key: str) -> list[list[tuple[int, int]]]:
        if key != "offset_mapping":
            raise KeyError(key)
        return self._offsets

    def word_ids(self, index: int) -> list[int | None]:
        return self.encodings[index].word_ids


class ChunkingTokenizer:
    """A model folder's ``tokenizer.json``, untruncated and unpadded; ``name_or_path`` is the folder, as
    ``AutoTokenizer.from_pretrained(folder)`` names it (the chunker's fingerprint carries it)."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.name_or_path = str(model_dir)
        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        processor = self._tokenizer.post_processor
        return processor.num_special_tokens_to_add(pair) if processor is not None else 0

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = True, return_offsets_mapping: bool = True,
                 verbose: bool = False) -> WordPieces:
        return WordPieces(self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens))
