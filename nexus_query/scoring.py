"""What a hit's ``score`` means: a relevance in [0, 1], higher is better, with one meaning in every space,
on every page and in every mode, so a client can keep hits above a threshold and tell "no answer".

* **vector** evidence is the cosine similarity of the query and the row, clipped to [0, 1] (the
  embeddings are unit length). It is the whole score in vector mode.
* **text** evidence is the share of the query's distinct terms that the row contains, both split by
  lancedb's tokenizer and reduced to their stems with stop words dropped and accents folded, as the
  full-text index reads them (``fts_index_config``), so "tents" covers "tent". Unlike a BM25 score it does
  not depend on the size or vocabulary of the space, so it means the same in the tenant's space and the
  global one.
* **hybrid** scores a hit by its vector evidence lifted toward 1 by its text evidence,
  ``v + (1 - v) * TEXT_LIFT * t``, so a hit with no text evidence scores its cosine and one that neither
  signal supports scores low, and ranks the hits both searches found by that score
  (``nexus_query.query``): the order and the score agree. Chosen over reciprocal rank fusion by
  cross-validation on the example documents and the conversation development set (docs/querying.md):
  rank fusion weighs a weak signal's rank as much as a strong one's. Hits beyond both searches' depth
  follow in vector order, each score capped by the one above it, so no hit is reported higher than its
  own evidence and scores never rise down the list.

``SUGGESTED_MIN_SCORE`` is the documented cut for "no answer"; ``bench/retrieval_eval.py --groups``
measures how well the top score separates answerable from unanswerable queries.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

# How far full text evidence closes the gap between a hit's cosine and 1: the midpoint, and what
# leave-one-fold-out cross-validation chose in every one of 23 folds (3 example tenants, 20 conversations;
# docs/querying.md, bench/query_fusion_cv.py), terms counted alike. On the example data the top-score
# ROC AUC was 0.955-0.964 for any lift from 0.3 to 1.0.
TEXT_LIFT = 0.5
# A hybrid or vector score below this usually means the space holds no answer (measured with
# bench/retrieval_eval.py --groups on the example data: it kept 96% of in-domain top hybrid hits and cut
# 74% of out-of-domain ones). Not applied unless asked for (``min_score``).
SUGGESTED_MIN_SCORE = 0.5


@dataclass(frozen=True)
class ScoreDetails:
    """Why a hit scored what it did: each signal's evidence in [0, 1] and the hit's rank in that
    signal's ranking of its own space (1 = best); None where the signal was not used or did not find it."""

    vector: float | None = None
    text: float | None = None
    rank_vector: int | None = None
    rank_text: int | None = None


def unit_interval(value: float) -> float:
    """``value`` clipped to [0, 1] (NaN, which no valid vector gives, is 0)."""
    return min(1.0, max(0.0, float(value))) if not math.isnan(value) else 0.0


def vector_relevance(cosine: float) -> float:
    """The vector evidence: cosine similarity clipped to [0, 1]."""
    return unit_interval(cosine)


# Terms of the texts scored lately (hybrid pools and recall read the same rows again and again).
TERMS_CACHED = 4096
_terms_cache: OrderedDict[str, frozenset[str]] = OrderedDict()
_terms_lock = threading.Lock()
# Joins many texts into one tokenizer call, whose fixed cost is most of a short text's (3.1 ms for 160
# conversation turns one by one, 0.9 ms in one call). A text holding the word after all is read on its own.
_SEPARATOR = "nexusqxzseparator"


def _tokens(text: str) -> list[str]:
    import lancedb

    from nexus_query.store.lance_indexes import FTS_TOKENIZER

    # as the index reads it: a term and its inflections are one piece of evidence
    return [token.text for token in lancedb.tokenize(text, **FTS_TOKENIZER)]


@cache
def _separator_term() -> str:
    (term,) = _tokens(_SEPARATOR)
    return term


def _read_many(texts: list[str]) -> list[frozenset[str]]:
    if len(texts) < 2:
        return [frozenset(_tokens(text)) for text in texts]
    separator = _separator_term()
    tokens = _tokens(f" {_SEPARATOR} ".join(texts))
    if tokens.count(separator) != len(texts) - 1:
        return [frozenset(_tokens(text)) for text in texts]
    found: list[frozenset[str]] = []
    start = 0
    for end in [i for i, token in enumerate(tokens) if token == separator] + [len(tokens)]:
        found.append(frozenset(tokens[start:end]))
        start = end + 1
    return found


def terms_of(texts: Sequence[str]) -> list[frozenset[str]]:
    """Each text's terms as the full-text index reads them; those not cached yet in one tokenizer call."""
    with _terms_lock:
        known = {text: _terms_cache[text] for text in texts if text in _terms_cache}
        for text in known:
            _terms_cache.move_to_end(text)
    missing = list(dict.fromkeys(text for text in texts if text not in known))
    if missing:
        read = dict(zip(missing, _read_many(missing), strict=True))
        known.update(read)
        with _terms_lock:
            _terms_cache.update(read)
            while len(_terms_cache) > TERMS_CACHED:
                _terms_cache.popitem(last=False)
    return [known[text] for text in texts]


def _terms(text: str) -> frozenset[str]:
    return terms_of([text])[0]


def query_terms(text: str) -> frozenset[str]:
    """The distinct terms the full-text index searches for ``text`` (may be empty: stop words only)."""
    return _terms(text)


def text_coverage(terms: frozenset[str], text: str, weights: Mapping[str, float] | None = None) -> float | None:
    """The share of ``terms`` that ``text`` contains, as the full-text index reads both; None when the
    query has no searchable terms. With ``weights`` (a positive weight per term) the share is of the
    terms' total weight, so a rare term can count for more than a common one; still in [0, 1]."""
    if not terms:
        return None
    held = terms & _terms(text)
    if weights is None:
        return len(held) / len(terms)
    return sum(weights[t] for t in held) / sum(weights[t] for t in terms)


def hybrid_relevance(vector: float, text: float | None, lift: float = TEXT_LIFT) -> float:
    """A hit's own hybrid evidence: its vector relevance, lifted toward 1 by its text coverage."""
    v = unit_interval(vector)
    return unit_interval(v + (1.0 - v) * lift * (text or 0.0))


def capped(scores: Iterable[float]) -> list[float]:
    """Scores along a ranking, each capped by the one before it (a running minimum), so a ranked list's
    scores never rise and no hit is reported above its own evidence."""
    out: list[float] = []
    cap = 1.0
    for score in scores:
        cap = min(cap, score)
        out.append(cap)
    return out
