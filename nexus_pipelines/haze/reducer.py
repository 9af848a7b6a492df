"""The fitted map: PCA, then UMAP (cosine) or t-SNE, kept in open formats so new points can be placed
into an existing map later without reshuffling it.

What is kept (instead of a pickle of the umap-learn object, which is large, bound to one library
version and unsafe to load from a shared store): the PCA mean and components, and the fitted "anchor"
rows (id, content hash, PCA vector, x, y) in Parquet, plus UMAP's curve parameters ``a``/``b`` in JSON.
``place`` then runs umap-learn's own ``transform`` algorithm against the anchors: exact cosine
neighbours, fuzzy membership weights, a weighted-average start and a short optimisation in which
only the new points move. t-SNE has no transform, so there new points get the weighted average.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nexus_pipelines.haze.writer import parquet_bytes
from nexus_query.errors import InvalidRequest
from nexus_query.haze import METHODS, HazeStore

MIN_MANIFOLD_ROWS = 5  # below this a map is the first two principal axes: UMAP/t-SNE need neighbours
KNN_CHUNK = 2048       # new points compared with all anchors at a time (bounded memory)


@dataclass(frozen=True)
class ProjectionParams:
    """Everything that shapes a map. The ``FIT_FIELDS`` define the reducer: change one and the map is refit."""

    method: str = "umap"
    seed: int = 42
    pca_components: int = 50      # 0 keeps the embedding's own dimensions
    n_neighbors: int = 15         # UMAP
    min_dist: float = 0.1         # UMAP
    perplexity: float = 30.0      # t-SNE
    sample_size: int = 50_000     # fit on at most about this many rows; the rest are placed into the map
    batch_size: int = 20_000      # rows read and placed at a time
    cluster_method: str = "auto"  # "hdbscan", "kmeans", or "auto": HDBSCAN, k-means where it finds no structure
    min_cluster_size: int = 0     # HDBSCAN; 0: about 1% of the points, at least 10
    n_clusters: int = 0           # k-means; 0: about sqrt(points / 2), 2 to 30
    keywords: int = 5             # per cluster; the first three make its label
    refit_growth: float = 2.0     # refit once a space under sample_size has grown this many times; 0: never
    html_max_points: int = 50_000
    keep_snapshots: int = 10      # older snapshots (and reducers they alone used) are removed

    FIT_FIELDS = ("method", "seed", "pca_components", "n_neighbors", "min_dist", "perplexity", "sample_size")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidRequest(f"method must be one of {METHODS}", field="method")
        if self.cluster_method not in ("auto", "hdbscan", "kmeans"):
            raise InvalidRequest("cluster_method must be 'auto', 'hdbscan' or 'kmeans'", field="cluster_method")
        for name in ("sample_size", "batch_size", "n_neighbors", "html_max_points", "keep_snapshots"):
            if getattr(self, name) < 2:
                raise InvalidRequest(f"{name} must be at least 2", field=name)
        if min(self.pca_components, self.min_cluster_size, self.n_clusters) < 0 or self.keywords < 1:
            raise InvalidRequest("pca_components, min_cluster_size and n_clusters must be >= 0, keywords >= 1")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def fit_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIT_FIELDS}


@dataclass
class Reducer:
    reducer_id: str
    params: dict[str, Any]            # ProjectionParams.fit_params() it was fitted with
    input_dimension: int
    embedder: str | None
    mean: np.ndarray | None           # (input_dimension,), None without PCA
    components: np.ndarray | None     # (k, input_dimension)
    anchor_ids: list[str]
    anchor_hashes: list[str]
    anchor_vectors: np.ndarray        # (m, k) in PCA space
    anchor_xy: np.ndarray             # (m, 2) where the fit put them
    a: float
    b: float
    info: dict[str, Any] = field(default_factory=dict)
    # umap-learn's nearest-neighbour index over the anchors, alive only in the run that fitted them: it
    # makes placing the rest of a large space fast. Not stored; later runs search the anchors exactly.
    knn_index: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.params["method"]

    def reduce(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.components is None:
            return vectors
        return ((vectors - self.mean) @ self.components.T).astype(np.float32)

    def compatible(self, params: ProjectionParams, input_dimension: int, embedder: str | None) -> bool:
        return (self.params == params.fit_params() and self.input_dimension == input_dimension
                and self.embedder == embedder)

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """Coordinates for new rows in this map; the anchors (and so the map) do not move."""
        if len(vectors) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        from scipy.sparse import coo_matrix
        from umap.umap_ import compute_membership_strengths, smooth_knn_dist

        k = min(self.params["n_neighbors"], len(self.anchor_ids))
        reduced = self.reduce(vectors)
        if self.knn_index is not None:
            epsilon = 0.24 if getattr(self.knn_index, "_angular_trees", False) else 0.12  # as umap-learn's transform
            indices, dists = self.knn_index.query(np.ascontiguousarray(reduced), k, epsilon=epsilon)
            indices, dists = indices.astype(np.int32), dists.astype(np.float32)
        else:
            indices, dists = exact_cosine_knn(reduced, self.anchor_vectors, k)
        indices[dists >= 2.0] = -1  # umap-learn's disconnection distance for cosine
        # umap-learn's transform: local connectivity lowered by one for points outside the fitted set
        sigmas, rhos = smooth_knn_dist(dists, float(k), local_connectivity=0.0)
        rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
        weights = vals.reshape(len(vectors), k)
        xy = _weighted_start(indices, weights, self.anchor_xy)
        if self.method != "umap" or len(self.anchor_ids) < MIN_MANIFOLD_ROWS:
            return xy
        graph = coo_matrix((vals, (rows, cols)), shape=(len(vectors), len(self.anchor_ids)))
        return self._optimize(xy, graph)

    def _optimize(self, start: np.ndarray, graph) -> np.ndarray:
        from umap.layouts import optimize_layout_euclidean
        from umap.umap_ import INT32_MAX, INT32_MIN, make_epochs_per_sample

        n_epochs = 100 if graph.shape[0] <= 10_000 else 30  # umap-learn's transform defaults
        graph.data[graph.data < graph.data.max() / float(n_epochs)] = 0.0
        graph.eliminate_zeros()
        rng_state = np.random.RandomState(self.params["seed"]).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
        return optimize_layout_euclidean(
            np.ascontiguousarray(start, dtype=np.float32), self.anchor_xy.astype(np.float32, copy=True),
            graph.row, graph.col, n_epochs, graph.shape[1], make_epochs_per_sample(graph.data, n_epochs),
            self.a, self.b, rng_state, 1.0, 0.25, 5.0, parallel=False, move_other=False,
        )

    # -- open-format storage ---------------------------------------------------------------------
    def save(self, haze: HazeStore, space_id: str) -> None:
        """Parquet for the arrays, JSON for the rest; ``reducer.json`` last marks it complete."""
        k = self.anchor_vectors.shape[1]
        anchors = pa.table({
            "id": pa.array(self.anchor_ids, pa.utf8()),
            "content_hash": pa.array(self.anchor_hashes, pa.utf8()),
            "x": pa.array(self.anchor_xy[:, 0], pa.float32()),
            "y": pa.array(self.anchor_xy[:, 1], pa.float32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(self.anchor_vectors.reshape(-1), pa.float32()), k),
        })
        haze.files.write_bytes_atomic(parquet_bytes(anchors), *haze.reducer_parts(space_id, self.reducer_id,
                                                                                    "anchors.parquet"))
        if self.mean is not None and self.components is not None:
            rows = np.vstack([self.mean[None, :], self.components]).astype(np.float32)
            pca = pa.table({
                "role": ["mean"] + ["component"] * len(self.components),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), self.input_dimension),
            })
            haze.files.write_bytes_atomic(parquet_bytes(pca), *haze.reducer_parts(space_id, self.reducer_id,
                                                                                    "pca.parquet"))
        meta = {"reducer_id": self.reducer_id, "params": self.params, "input_dimension": self.input_dimension,
                "embedder": self.embedder, "pca": self.components is not None, "a": self.a, "b": self.b,
                "anchors": len(self.anchor_ids), **self.info}
        haze.files.write_bytes_atomic(json.dumps(meta, indent=1).encode(),
                                      *haze.reducer_parts(space_id, self.reducer_id, "reducer.json"))

    @classmethod
    def load(cls, haze: HazeStore, space_id: str, reducer_id: str) -> Reducer | None:
        """The stored reducer, or None when it is missing or incomplete."""
        if not haze.files.exists(*haze.reducer_parts(space_id, reducer_id, "reducer.json")):
            return None
        meta = json.loads(haze.files.read_bytes(*haze.reducer_parts(space_id, reducer_id, "reducer.json")))
        anchors = pq.read_table(io.BytesIO(haze.files.read_bytes(
            *haze.reducer_parts(space_id, reducer_id, "anchors.parquet"))))
        k = anchors.schema.field("vector").type.list_size
        mean = components = None
        if meta["pca"]:
            pca = pq.read_table(io.BytesIO(haze.files.read_bytes(
                *haze.reducer_parts(space_id, reducer_id, "pca.parquet"))))
            rows = _matrix(pca.column("vector"), meta["input_dimension"])
            mean, components = rows[0], rows[1:]
        info = {key: value for key, value in meta.items()
                if key not in ("reducer_id", "params", "input_dimension", "embedder", "pca", "a", "b", "anchors")}
        return cls(
            reducer_id=reducer_id, params=meta["params"], input_dimension=meta["input_dimension"],
            embedder=meta["embedder"], mean=mean, components=components,
            anchor_ids=anchors.column("id").to_pylist(), anchor_hashes=anchors.column("content_hash").to_pylist(),
            anchor_vectors=_matrix(anchors.column("vector"), k),
            anchor_xy=np.column_stack([anchors.column("x").to_numpy(), anchors.column("y").to_numpy()]),
            a=meta["a"], b=meta["b"], info=info,
        )


def fit_reducer(ids: list[str], hashes: list[str], vectors: np.ndarray, params: ProjectionParams, *,
                reducer_id: str, embedder: str | None) -> Reducer:
    """Fit PCA and the 2-D method on these rows (the sample). Rows are taken in id order, so the same
    rows give the same map whatever order the table stores them in."""
    from umap.umap_ import find_ab_params

    started = time.perf_counter()
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ids, hashes = [ids[i] for i in order], [hashes[i] for i in order]
    vectors = np.asarray(vectors, dtype=np.float32)[order]
    n, dim = vectors.shape
    mean = components = None
    reduced = vectors
    if params.pca_components and dim > params.pca_components and n > params.pca_components:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=params.pca_components, random_state=params.seed).fit(vectors)
        mean, components = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        reduced = ((vectors - mean) @ components.T).astype(np.float32)
    a, b = (float(v) for v in find_ab_params(1.0, params.min_dist))
    knn_index = None
    if n < MIN_MANIFOLD_ROWS:
        xy, layout = _principal_axes(reduced), "principal axes"
    elif params.method == "umap":
        import umap

        model = umap.UMAP(n_neighbors=max(2, min(params.n_neighbors, n - 1)), min_dist=params.min_dist,
                          metric="cosine", random_state=params.seed, transform_seed=params.seed,
                          n_jobs=1)  # a seeded UMAP runs on one thread anyway; saying so spares its warning
        xy, layout = model.fit_transform(reduced), "umap"
        a, b = float(model._a), float(model._b)
        knn_index = getattr(model, "_knn_search_index", None)  # built for spaces of 4,096 rows or more
    else:
        from sklearn.manifold import TSNE

        perplexity = min(params.perplexity, max(1.0, (n - 1) / 3))
        xy = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity,
                  random_state=params.seed).fit_transform(reduced)
        layout = "tsne"
    return Reducer(reducer_id=reducer_id, params=params.fit_params(), input_dimension=dim, embedder=embedder,
                   mean=mean, components=components, anchor_ids=ids, anchor_hashes=hashes,
                   anchor_vectors=reduced, anchor_xy=np.asarray(xy, dtype=np.float32), a=a, b=b,
                   info={"layout": layout, "fit_seconds": round(time.perf_counter() - started, 3)},
                   knn_index=knn_index)


def exact_cosine_knn(queries: np.ndarray, anchors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest anchors of each query by cosine distance, exactly, ``KNN_CHUNK`` queries at a
    time. torch's matrix product and top-k are several times faster than numpy's argpartition here."""
    import torch

    def unit(m: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))
        return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)

    anchors_t = unit(anchors).T.contiguous()
    indices = np.empty((len(queries), k), dtype=np.int32)
    dists = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), KNN_CHUNK):
        sims, idx = torch.topk(unit(queries[start:start + KNN_CHUNK]) @ anchors_t, k, dim=1)
        indices[start:start + KNN_CHUNK] = idx.numpy()
        dists[start:start + KNN_CHUNK] = (1.0 - sims).clamp_min(0.0).numpy()
    return indices, dists


def _weighted_start(indices: np.ndarray, weights: np.ndarray, anchor_xy: np.ndarray) -> np.ndarray:
    """umap-learn's ``init_graph_transform``, vectorised: a point identical to an anchor sits on it,
    others at the membership-weighted mean of their neighbours (the nearest one if all weights are 0)."""
    weights = np.where(indices >= 0, weights, 0.0).astype(np.float64)
    neighbours = anchor_xy[np.where(indices >= 0, indices, 0)].astype(np.float64)  # (n, k, 2)
    total = weights.sum(axis=1, keepdims=True)
    xy = (weights[:, :, None] * neighbours).sum(axis=1) / np.where(total > 0, total, 1.0)
    xy[total[:, 0] == 0] = neighbours[total[:, 0] == 0, 0]
    exact = weights == 1.0
    has_exact = exact.any(axis=1)
    xy[has_exact] = neighbours[has_exact, exact[has_exact].argmax(axis=1)]
    return xy.astype(np.float32)


def _principal_axes(vectors: np.ndarray) -> np.ndarray:
    """Coordinates on the first two principal axes; a stand-in map for spaces of a handful of rows."""
    centred = vectors - vectors.mean(axis=0)
    if len(vectors) < 2 or not np.any(centred):
        return np.zeros((len(vectors), 2), dtype=np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))).astype(np.float32)


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)

