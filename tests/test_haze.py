"""HAZE maps: reproducible projections, sampled fits, stable placement of new rows, the projection
store's layout, streaming readers and cluster labels. Real model, LanceDB on disk, umap-learn."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import yaml
from sklearn.neighbors import KNeighborsClassifier

from nexus_pipelines.haze.clusters import cluster_keywords, cluster_points
from nexus_pipelines.haze.plot import plot_snapshot
from nexus_pipelines.haze.projection import project_space
from nexus_pipelines.haze.reducer import ProjectionParams, Reducer, fit_reducer
from nexus_query.config import DEFAULT_CONFIG_PATH, NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import MissingRoute
from nexus_query.haze import POINT_COLUMNS, HazeSnapshotNotFound, HazeStore, SnapshotInfo, open_snapshot
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore, row_id
from tests.helpers import DISTINCTIVE, load_topics

ACME = RequestContext("acme")


@pytest.fixture
def topics_space(store, provider, topic_corpus):
    rows, vectors = topic_corpus
    return load_topics(store, provider, ACME, "main", rows, vectors)


def coordinates(snapshot) -> dict[str, tuple[float, float]]:
    table = snapshot.to_arrow(("id", "x", "y"))
    return {i: (x, y) for i, x, y in zip(*(table.column(c).to_pylist() for c in ("id", "x", "y")), strict=True)}


def test_the_same_seed_gives_the_same_map_and_another_seed_another(store, topics_space):
    haze = HazeStore.for_context(ACME)
    first = project_space(topics_space, haze, "main", ProjectionParams(seed=7), refit=True)
    again = project_space(store.open(ACME, "main"), haze, "main", ProjectionParams(seed=7), refit=True)
    other = project_space(store.open(ACME, "main"), haze, "main", ProjectionParams(seed=8), refit=True)
    assert first.snapshot_id != again.snapshot_id and again.info.refit
    a, b, c = (coordinates(haze.open("main", r.snapshot_id)) for r in (first, again, other))
    assert a == b
    assert a != c


def test_a_large_space_is_fitted_on_a_sample_and_the_rest_placed_near_their_topic(topics_space, topic_corpus):
    haze = HazeStore.for_context(ACME)
    result = project_space(topics_space, haze, "main", ProjectionParams(sample_size=80, batch_size=32))
    counts = result.counts
    assert 40 <= counts.anchors <= 120 and counts.fitted == counts.anchors
    assert counts.placed == 200 - counts.anchors and counts.kept == 0
    reducer = Reducer.load(haze, "main", result.info.reducer_id)
    anchors = set(reducer.anchor_ids)
    topic_of = {source: topic for source, _, topic in topic_corpus[0]}
    points = haze.open("main").to_pandas()
    points["topic"] = points["source"].map(topic_of)
    fitted, placed = points[points["id"].isin(anchors)], points[~points["id"].isin(anchors)]
    knn = KNeighborsClassifier(n_neighbors=5).fit(fitted[["x", "y"]], fitted["topic"])
    assert (knn.predict(placed[["x", "y"]]) == placed["topic"]).mean() >= 0.9


def test_new_rows_are_placed_without_moving_the_map_until_a_refit(store, provider, topics_space, topic_corpus):
    haze = HazeStore.for_context(ACME)
    first = project_space(topics_space, haze, "main")
    before = coordinates(haze.open("main"))
    rows, vectors = topic_corpus
    extra = [(f"late-{source}", text.replace("The ", "Our "), topic) for source, text, topic in rows[::10]]
    changed = [(rows[0][0], "A completely rewritten note about the tent and the campsite.", rows[0][2])]
    load_topics(store, provider, ACME, "main", extra + changed, provider.embed([t for _, t, _ in extra + changed]))

    second = project_space(store.open(ACME, "main"), haze, "main")
    after = coordinates(haze.open("main"))
    assert second.info.reducer_id == first.info.reducer_id and not second.info.refit
    assert second.counts.placed == len(extra) + 1 and second.counts.kept == 199
    unchanged = set(before) - {row_id(changed[0][0], 0)}
    assert {i: after[i] for i in unchanged} == {i: before[i] for i in unchanged}
    assert len(after) == 200 + len(extra)

    refitted = project_space(store.open(ACME, "main"), haze, "main", refit=True)
    assert refitted.info.refit and refitted.info.reducer_id != first.info.reducer_id
    assert coordinates(haze.open("main")) != after


def test_the_projection_store_keeps_each_snapshot_whole_with_a_latest_pointer(topics_space, nexus_home):
    haze = HazeStore.for_context(ACME)
    first = project_space(topics_space, haze, "main")
    second = project_space(topics_space, haze, "main", refit=True)
    root = nexus_home / "projections" / "acme" / "default" / "haze" / "main"
    for snapshot_id in (first.snapshot_id, second.snapshot_id):
        folder = root / "snapshots" / snapshot_id
        assert sorted(p.name for p in folder.iterdir()) == ["map.html", "map.png", "points.parquet", "snapshot.json"]
    assert json.loads((root / "latest.json").read_text())["snapshot_id"] == second.snapshot_id
    assert haze.snapshot_ids("main") == [first.snapshot_id, second.snapshot_id]
    assert sorted(p.name for p in (root / "reducers" / second.info.reducer_id).iterdir()) == \
        ["anchors.parquet", "pca.parquet", "reducer.json"]  # open formats only: no pickle

    info = json.loads((root / "snapshots" / second.snapshot_id / "snapshot.json").read_text())
    assert info["method"] == "umap" and info["params"]["seed"] == 42 and info["params"]["pca_components"] == 50
    assert info["table_version"] == topics_space.version and info["counts"]["rows"] == 200
    assert {"fit", "place", "cluster", "keywords", "render", "write", "total"} <= set(info["timings"])
    assert haze.open("main", first.snapshot_id).to_arrow().num_rows == 200

    # older snapshots go, with the reducers only they used; the kept ones stay readable
    third = project_space(topics_space, haze, "main", ProjectionParams(keep_snapshots=2), refit=True)
    assert haze.snapshot_ids("main") == [second.snapshot_id, third.snapshot_id]
    assert sorted(p.name for p in (root / "reducers").iterdir()) == [second.snapshot_id, third.snapshot_id]
    assert haze.open("main", second.snapshot_id).to_arrow().num_rows == 200

    # a snapshot whose snapshot.json was never written is invisible
    (root / "snapshots" / "20990101-000000-v9-abcdef").mkdir()
    (root / "snapshots" / "20990101-000000-v9-abcdef" / "points.parquet").write_bytes(b"partial")
    assert haze.snapshot_ids("main") == [second.snapshot_id, third.snapshot_id]
    with pytest.raises(HazeSnapshotNotFound):
        haze.open("main", "20990101-000000-v9-abcdef")


def test_an_unchanged_space_keeps_its_snapshot_and_an_empty_one_gets_none(store, provider, topics_space):
    haze = HazeStore.for_context(ACME)
    first = project_space(topics_space, haze, "main")
    again = project_space(store.open(ACME, "main"), haze, "main")
    assert first.created and not again.created and again.snapshot_id == first.snapshot_id
    assert again.png[:8] == b"\x89PNG\r\n\x1a\n"

    store.open_or_create(ACME, "empty", provider.info)
    empty = project_space(store.open(ACME, "empty"), haze, "empty")
    assert empty.snapshot_id is None and not haze.snapshot_ids("empty")


def test_ndjson_streams_every_point_one_batch_at_a_time(topics_space):
    haze = HazeStore.for_context(ACME)
    project_space(topics_space, haze, "main")
    snapshot = open_snapshot(ACME, "main")
    chunks = list(snapshot.iter_ndjson(batch_size=16))
    lines = [json.loads(line) for chunk in chunks for line in chunk.decode().splitlines()]
    assert len(chunks) == 13 and all(len(c.decode().splitlines()) <= 16 for c in chunks)
    assert len(lines) == 200 and set(lines[0]) == set(POINT_COLUMNS)
    assert [row["id"] for row in lines] == snapshot.to_arrow().column("id").to_pylist()
    assert snapshot.to_polars().height == 200 and len(snapshot.to_pandas()) == 200


def test_each_topic_becomes_a_cluster_labelled_with_its_own_words(topics_space, topic_corpus):
    haze = HazeStore.for_context(ACME)
    result = project_space(topics_space, haze, "main")
    points = haze.open("main").to_pandas()
    topic_of = {source: topic for source, _, topic in topic_corpus[0]}
    points["topic"] = points["source"].map(topic_of)
    clusters = {c.cluster: c for c in result.info.clusters}
    for topic, words in DISTINCTIVE.items():
        members = points.loc[points["topic"] == topic, "cluster"]
        main_cluster, size = Counter(members).most_common(1)[0]
        assert main_cluster >= 0 and size >= 0.8 * len(members), topic
        assert words & set(clusters[main_cluster].keywords), (topic, clusters[main_cluster].keywords)
        assert (points.loc[points["cluster"] == main_cluster, "label"] == clusters[main_cluster].label).all()


def test_class_based_tf_idf_prefers_words_that_set_a_cluster_apart():
    texts = ["the tent and the stove", "a tent for camping", "tent poles", "the refund on the card",
             "card refund policy", "a refund"]
    keywords = cluster_keywords(texts * 3, np.array([0, 0, 0, 1, 1, 1] * 3), top_n=2)
    assert keywords == {0: ["tent", "camping"], 1: ["refund", "card"]}


def test_a_word_fewer_than_three_texts_hold_labels_no_cluster_so_labels_are_the_spaces_vocabulary():
    texts = ["tent stove Zanzibar-7731", "tent poles", "tent camping", "card refund", "card refund", "card fee",
             "refund card Okonkwo"]
    keywords = cluster_keywords(texts, np.array([0, 0, 0, 1, 1, 1, 1]), top_n=5)
    assert keywords == {0: ["tent"], 1: ["card", "refund"]}  # no name, no code, nothing one text said


def test_clusters_are_numbered_by_size_and_auto_falls_back_to_kmeans_without_density_structure():
    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.normal(0, 0.3, (120, 2)), rng.normal(10, 0.3, (60, 2)), rng.normal(-10, 0.3, (90, 2))])
    labels, method = cluster_points(blobs, method="auto")
    assert method == "hdbscan" and Counter(labels.tolist()) == {0: 120, 1: 90, 2: 60}
    uniform = rng.uniform(0, 1, (200, 2))
    labels, method = cluster_points(uniform, method="auto")
    assert method == "kmeans" and (labels >= 0).all() and len(set(labels.tolist())) == 10


def test_tsne_maps_and_places_new_points_by_their_neighbours(topics_space):
    haze = HazeStore.for_context(ACME)
    result = project_space(topics_space, haze, "main", ProjectionParams(method="tsne", sample_size=120))
    assert result.info.method == "tsne" and result.counts.placed > 0
    points = haze.open("main").to_pandas()
    assert np.isfinite(points[["x", "y"]].to_numpy()).all() and len(points) == 200


def test_a_stored_reducer_places_points_exactly_as_the_fitted_one(topics_space, topic_corpus):
    haze = HazeStore.for_context(ACME)
    result = project_space(topics_space, haze, "main", ProjectionParams(sample_size=100))
    loaded = Reducer.load(haze, "main", result.info.reducer_id)
    vectors = topic_corpus[1][:20]
    placed = loaded.place(vectors)
    assert placed.shape == (20, 2) and np.isfinite(placed).all()
    assert np.array_equal(placed, Reducer.load(haze, "main", result.info.reducer_id).place(vectors))


def test_plot_draws_every_point_coloured_by_cluster_or_type(topics_space):
    import matplotlib

    matplotlib.use("Agg")
    project_space(topics_space, HazeStore.for_context(ACME), "main")
    snapshot = open_snapshot(ACME, "main")
    ax = plot_snapshot(snapshot)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 200
    assert {t.get_text() for t in ax.texts} == {c.label for c in snapshot.clusters}
    ax = plot_snapshot(snapshot, color_by="type")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["text"]


def test_the_snapshot_json_reads_back_as_the_same_typed_info(topics_space):
    haze = HazeStore.for_context(ACME)
    result = project_space(topics_space, haze, "main", ProjectionParams(sample_size=80, batch_size=32))
    stored = haze.open("main").info
    assert stored == result.info and isinstance(stored, SnapshotInfo)
    assert SnapshotInfo.from_json(json.loads(json.dumps(stored.to_json()))) == stored
    assert stored.counts.rows == 200 and stored.bounds.x[0] <= stored.bounds.x[1]
    assert [c.cluster for c in stored.clusters] == list(range(stored.counts.clusters))


def test_a_space_without_a_snapshot_answers_a_typed_404(nexus_home):
    with pytest.raises(HazeSnapshotNotFound) as missing:
        open_snapshot(ACME, "main")
    assert missing.value.status == 404 and missing.value.code == "nexus.haze_snapshot_not_found"
    with pytest.raises(HazeSnapshotNotFound):
        HazeStore.for_context(ACME).open("main", "../../globex")


def test_a_tenant_without_a_projection_route_gets_503(nexus_home):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["environments"]["dev"]["tenants"]["acme"] = {"nexus_projection_store": None}
    registry = RoutingRegistry(NexusConfig.from_dict(raw))
    with pytest.raises(MissingRoute) as missing:
        HazeStore.for_context(ACME, registry)
    assert missing.value.status == 503 and missing.value.code == "nexus_projection_store.missing_route"


def test_snapshots_live_in_s3_and_stream_from_there(s3_config, provider, topic_corpus):
    rows, vectors = topic_corpus
    space = load_topics(SpaceStore(RoutingRegistry.default()), provider, ACME, "main", rows[:60], vectors[:60])
    haze = HazeStore.for_context(ACME)
    result = project_space(space, haze, "main")
    assert haze.files.url("haze", "main", "latest.json").startswith("s3://")
    lines = b"".join(open_snapshot(ACME, "main").iter_ndjson(batch_size=25)).decode().splitlines()
    assert len(lines) == 60 and result.counts.rows == 60


def test_the_fitting_runs_fast_neighbour_index_places_points_where_the_exact_search_does():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 384)).astype(np.float32)
    topic = rng.integers(0, 8, 4_300)
    vectors = centres[topic] + rng.normal(scale=0.8, size=(4_300, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"row-{i:05d}" for i in range(4_100)]
    reducer = fit_reducer(ids, ids, vectors[:4_100], ProjectionParams(), reducer_id="r", embedder=None)
    assert reducer.knn_index is not None  # umap-learn builds one from 4,096 rows on
    fast = reducer.place(vectors[4_100:])
    reducer.knn_index = None
    exact = reducer.place(vectors[4_100:])
    extent = np.ptp(reducer.anchor_xy, axis=0).max()
    assert np.median(np.linalg.norm(fast - exact, axis=1)) < 0.02 * extent


def test_the_tenants_name_and_corpus_wide_words_label_no_cluster():
    texts = ["acme acme tent stove order", "acme acme tent poles order", "refund card order",
             "card refund order", "parcel courier order", "courier parcel order"]
    texts, labels = texts * 3, np.array([0, 0, 1, 1, 2, 2] * 3)
    plain = cluster_keywords(texts, labels, top_n=3)
    assert "order" not in {w for words in plain.values() for w in words}  # in every cluster: names none
    assert plain[0][0] == "acme"
    keywords = cluster_keywords(texts, labels, top_n=3, exclude={"acme"})  # the space's tenant
    assert keywords[0][:1] == ["tent"] and "acme" not in keywords[0]
    assert keywords[1][:2] == ["card", "refund"] and keywords[2][:2] == ["courier", "parcel"]
