"""How near a brick's own words come to each word of a question, by the embedding model's vectors of words.

A paraphrased question shares no word with the turn that answers it ("What did Marco injure?" against
"My lower back is wrecked after lifting a sofa badly"): the full-text index cannot match it, and a short
turn's one vector says little. Recall credits each query term a brick lacks with the cosine between the
query's word and the nearest word of the brick's block (a word-level soft match), so "injure" is partly
held by "wrecked". Only the block's own words count: the who/when line above it would let "March" be
held by "April".

A word's vector is the model's vector of that word alone, cached per process (``WORDS_CACHED``). The int8
model quantizes a batch's activations together, so with it each word is embedded on its own: beside other
words its vector would shift with them, and recall would not be deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.embeddings.local import QueryEmbeddingCache

# Per embedding model, about 25 MB of float32 vectors at 384 dimensions: every word of many spaces' conversations.
WORDS_CACHED = 16384
# Providers whose vector of a text depends on the other texts of its batch (activations quantized per batch).
_PER_BATCH_QUANTIZED = frozenset({"onnx-int8"})
_WORD = re.compile(r"[^\W\d_]{2,}")


def words_of(text: str) -> list[str]:
    """The distinct words of ``text``, lowercased, in order: letters only, two or more."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


class WordVectors:
    """The model's unit vector of each word, per embedding model a ``QueryEmbeddingCache`` of
    ``max_words``; shared between threads."""

    def __init__(self, max_words: int = WORDS_CACHED) -> None:
        self.max_words = max_words
        self._caches: dict[str, QueryEmbeddingCache] = {}

    def __len__(self) -> int:
        return sum(len(cache) for cache in self._caches.values())

    def get(self, provider: EmbeddingProvider, words: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        """One row per word, in order."""
        if not words:
            return np.zeros((0, provider.info.dimension), np.float32)

        def embed(missing: list[str]) -> np.ndarray:
            if provider.info.provider in _PER_BATCH_QUANTIZED:
                return np.vstack([provider.embed([word], ctx) for word in missing])
            return provider.embed(missing, ctx)

        cache = self._caches.setdefault(provider.info.id, QueryEmbeddingCache(self.max_words))
        return cache.get_or_compute_many(words, embed).astype(np.float32, copy=False)


word_vectors = WordVectors()


def nearest_word_cosines(asked: Mapping[str, str], texts: Sequence[str], provider: EmbeddingProvider,
                         ctx: RequestContext | None = None) -> list[dict[str, float]]:
    """For each text, each asked term's cosine with the text's nearest word. ``asked`` maps a query term
    (as the full-text index reads it) to the query's word that gave it; a text without words gets none."""
    if not asked or not texts:
        return [{} for _ in texts]
    per_text = [words_of(text) for text in texts]
    vocabulary = list(dict.fromkeys(w for words in per_text for w in words))
    terms = list(asked)
    query = word_vectors.get(provider, [asked[t] for t in terms], ctx)
    cosines = query @ word_vectors.get(provider, vocabulary, ctx).T  # terms x vocabulary
    column = {w: i for i, w in enumerate(vocabulary)}
    out: list[dict[str, float]] = []
    for words in per_text:
        if not words:
            out.append({})
            continue
        nearest = cosines[:, [column[w] for w in words]].max(axis=1)
        out.append({t: float(c) for t, c in zip(terms, nearest, strict=True)})
    return out
