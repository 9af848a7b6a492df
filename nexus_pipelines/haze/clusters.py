"""Clusters on the map and a few keywords for each (class-based TF-IDF, as BERTopic does)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

CLUSTER_FIT_MAX = 30_000       # HDBSCAN takes minutes past ~50k points; the rest join their nearest fitted point
KEYWORD_DOCS_PER_CLUSTER = 2_000
_TOKEN = r"(?u)\b[^\W\d_][\w-]{2,}\b"  # words of 3+ characters that start with a letter


def auto_k(n: int) -> int:
    """k-means' k when none is given: about sqrt(n/2), between 2 and 30 regions."""
    return int(min(30, max(2, round((n / 2) ** 0.5))))


def cluster_points(xy: np.ndarray, *, method: str = "auto", min_cluster_size: int = 0, n_clusters: int = 0,
                   seed: int = 42, fit_max: int = CLUSTER_FIT_MAX) -> tuple[np.ndarray, str]:
    """A cluster id per point (-1: in none) and the method used. Ids are renumbered by size (0 is the
    largest), so the same map gives the same ids.

    ``auto`` runs HDBSCAN and falls back to k-means when the map has no clear density structure (fewer
    than 3 clusters, or more than a quarter of the points left out): a map should always show labelled
    regions. Past ``fit_max`` points the clustering is fitted on a seeded sample and every other point
    joins its nearest fitted neighbour (HDBSCAN takes minutes on 200k points)."""
    n = len(xy)
    if n == 0:
        return np.zeros(0, dtype=np.int32), method
    xy = np.asarray(xy, dtype=np.float64)
    fit_rows = np.sort(np.random.default_rng(seed).choice(n, fit_max, replace=False)) if n > fit_max else np.arange(n)
    fit_xy = xy[fit_rows]
    if method in ("hdbscan", "auto"):
        from sklearn.cluster import HDBSCAN

        size = min_cluster_size or max(10, round(0.01 * len(fit_rows)))
        fitted = np.full(len(fit_rows), -1)
        if len(fit_rows) >= 2 * size:
            fitted = HDBSCAN(min_cluster_size=size, min_samples=min(size, 5), copy=True).fit_predict(fit_xy)
        clear = fitted.max() >= 2 and (fitted < 0).mean() <= 0.25
        if method == "hdbscan" or clear:
            return _by_size(_spread(fitted, fit_rows, xy)), "hdbscan"
    from sklearn.cluster import KMeans

    k = min(n_clusters or auto_k(n), len(fit_rows))
    model = KMeans(n_clusters=k, random_state=seed, n_init="auto").fit(fit_xy)
    return _by_size(model.predict(xy)), "kmeans"


def _spread(fitted: np.ndarray, fit_rows: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Labels for every point from those of the fitted sample: each takes its nearest fitted point's."""
    if len(fit_rows) == len(xy):
        return fitted
    from sklearn.neighbors import KDTree

    _, nearest = KDTree(xy[fit_rows]).query(xy, k=1)
    return fitted[nearest[:, 0]]


def _by_size(labels: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = np.full(int(labels.max(initial=-1)) + 2, -1, dtype=np.int32)
    mapping[order + 1] = np.arange(len(order), dtype=np.int32)
    return mapping[labels + 1]


CORPUS_WIDE_SHARE = 0.6  # a word found in more than this share of the clusters (and in 3+) labels none
# A word labels a cluster only when this many texts hold it: labels are the space's vocabulary, never a word
# that one text alone said (a name, an order number) printed over a region of the map.
MIN_TEXTS_PER_WORD = 3


def cluster_keywords(texts: Sequence[str], labels: np.ndarray, *, top_n: int = 5, seed: int = 42,
                     docs_per_cluster: int = KEYWORD_DOCS_PER_CLUSTER,
                     exclude: Collection[str] = ()) -> dict[int, list[str]]:
    """The words that set each cluster apart: class-based TF-IDF over one joined document per cluster
    (at most ``docs_per_cluster`` texts each), term frequency weighted by log(1 + A / f_t) with A the
    average word count per cluster and f_t the term's count over all clusters. Words of ``exclude`` (the
    tenant's name, say) and corpus-wide words (in most clusters) never label a cluster: they name the
    whole space, not a region of it; nor do words fewer than ``MIN_TEXTS_PER_WORD`` texts hold."""
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = [int(c) for c in np.unique(labels) if c >= 0]
    if not clusters:
        return {}
    rng = np.random.default_rng(seed)
    docs, sampled = [], []
    for c in clusters:
        rows = np.flatnonzero(labels == c)
        if len(rows) > docs_per_cluster:
            rows = np.sort(rng.choice(rows, docs_per_cluster, replace=False))
        sampled += [texts[int(i)] for i in rows]
        docs.append(" ".join(texts[int(i)] for i in rows))
    try:
        shared = CountVectorizer(stop_words="english", token_pattern=_TOKEN, lowercase=True, binary=True,
                                 min_df=MIN_TEXTS_PER_WORD).fit(sampled).vocabulary_
        counts = CountVectorizer(token_pattern=_TOKEN, lowercase=True, vocabulary=sorted(shared)).fit(docs)
    except ValueError:  # nothing but stop words, numbers and words of fewer than MIN_TEXTS_PER_WORD texts
        return {c: [] for c in clusters}
    matrix = counts.transform(docs).astype(np.float64)
    words = counts.get_feature_names_out()
    banned = {w.lower() for w in exclude}
    in_clusters = np.asarray((matrix > 0).sum(axis=0)).ravel()
    corpus_wide = in_clusters > max(2.0, CORPUS_WIDE_SHARE * len(clusters))
    allowed = ~corpus_wide & np.array([w not in banned for w in words], dtype=bool)
    per_class = np.asarray(matrix.sum(axis=1)).ravel()
    tf = matrix.multiply(1.0 / np.maximum(per_class, 1)[:, None]).tocsr()
    idf = np.log1p(per_class.mean() / np.maximum(np.asarray(matrix.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf[None, :]).tocsr()
    keywords = {}
    for row, c in enumerate(clusters):
        line = scores.getrow(row)
        kept = allowed[line.indices]
        indices, data = line.indices[kept], line.data[kept]
        best = indices[np.lexsort((words[indices], -data))][:top_n]
        keywords[c] = [str(words[i]) for i in best]
    return keywords


def cluster_label(keywords: Sequence[str], cluster: int) -> str:
    return ", ".join(keywords[:3]) if keywords else f"cluster {cluster}"
