"""A model's word pieces through ``tokenizers``: what the ingest chunker measures and cuts chunks in.

transformers' fast tokenizers are this library underneath, so reading the model's ``tokenizer.json``
directly gives the same pieces, offsets and word ids (``tests/test_word_pieces.py`` compares them) without
importing torch and transformers: seconds that ``nexus ingest`` and ``nexus cognition import`` spent before
their first chunk. The model file's own truncation and padding (sized for embedding) are turned off: the
chunker needs every piece of a section to know where to cut it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus_query.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class Pieces:
    """One text's word pieces, special tokens left out: each piece's character span, and which
    pre-tokenized word it belongs to (a new word id marks a place a chunk may end)."""

    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


class WordPieces:
    """A model's tokenizer, untruncated and unpadded; ``name_or_path`` names it in chunk fingerprints
    (the string transformers gives, so fingerprints, and the chunks they let a space reuse, stay equal)."""

    def __init__(self, tokenizer: Tokenizer, name_or_path: str) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.name_or_path = name_or_path

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> WordPieces:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(f"no tokenizer.json in {model_dir}: the chunker needs a fast tokenizer",
                              model=str(model_dir))
        return cls(Tokenizer.from_file(str(path)), str(model_dir))

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> WordPieces:
        """A copy of a transformers fast tokenizer's backend (the original keeps whatever truncation its
        last call set)."""
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ConfigError(f"{tokenizer.name_or_path} has no fast tokenizer: the chunker needs one",
                              model=str(tokenizer.name_or_path))
        return cls(Tokenizer.from_str(backend.to_str()), str(tokenizer.name_or_path))

    def num_special_tokens_to_add(self) -> int:
        """Pieces the model adds around one text ([CLS] and [SEP] for BERT-like models)."""
        processor = self._tokenizer.post_processor
        return int(processor.num_special_tokens_to_add(False)) if processor is not None else 0

    def pieces(self, texts: Sequence[str]) -> list[Pieces]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [Pieces(list(e.offsets), list(e.word_ids)) for e in encoded]

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
