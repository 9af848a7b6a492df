"""How the query path's hybrid mode ranks, chosen by leave-one-fold-out cross-validation.

    .venv/bin/python bench/query_fusion_cv.py            # the example set and the conversation set
    .venv/bin/python bench/query_fusion_cv.py --smoke    # a few queries of each, to prove it runs

Two development sets, each stored as the product stores it: the 309 queries ``bench/retrieval_eval.py
--write-examples`` builds from the example documents (a title asks for its document; one fold per example
tenant; nDCG@10 by document, a document ranking where its best chunk does), and the conversation set of
``bench/data/conversations`` (one space per conversation, stored as ``nexus cognition import`` stores it;
each question asked of its own conversation's space; one fold per conversation; turn recall@10). For every
question the space's two rankings are read once, 100 deep each as ``nexus_query.query`` reads them (the
vector ranking, the full-text BM25 ranking), and every fusion of a grid orders their hits:

- rank fusion: equal-weight reciprocal rank fusion, ``1 / (60 + rank)`` summed over the two rankings
  (what hybrid did before this bench chose otherwise);
- score: each hit's ``scoring.hybrid_relevance`` at a text ``lift``, its text evidence the share of the
  query's terms it holds, counted alike (``rarity`` 0, what ``query`` does) or half by each term's rarity
  among the hits found (``rarity`` 0.5, ``cognition.recall.term_weights``; printed for reference, not a
  choice: such a weight depends on the other hits of the same space, and a query's scores are merged
  across spaces and cut by a fixed ``min_score``);
- score with nearest words: as the first, a query term a hit lacks held in part by the nearest word of
  the hit's own text above ``NEAR`` (``cognition.recall.term_credits``, what brick recall does); eligible,
  since a hit's credit depends on nothing but the hit and the query.

For each fold in turn, the eligible setting best on the other folds (the mean of the two sets' means) is
scored on it; the per-fold choices and the pooled held-out figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cognition_recall import DATA  # noqa: E402

DEPTH = 100  # as nexus_query.query.FUSION_DEPTH
RRF_K = 60
LIFTS = [0.25, 0.5, 0.75, 1.0]
RARITIES = [0.0, 0.5]
NEAR = 0.25  # cognition.recall.NEAR_FLOOR: a query term a hit lacks held in part by the hit's nearest word
K = 10


@dataclass(frozen=True)
class Setting:
    kind: Literal["rank", "score"]
    lift: float = 0.0
    rarity: float = 0.0
    near: float | None = None

    def __str__(self) -> str:
        if self.kind == "rank":
            return "rank fusion (k = 60)"
        return f"score, lift {self.lift}, rarity {self.rarity}" + ("" if self.near is None else f", near {self.near}")


@dataclass(frozen=True)
class Rankings:
    """One question's two rankings of a space's rows, best first: (row id, cosine, text) each; and per row,
    each query term's cosine with the row's nearest word (``cognition.near_words``)."""

    vector: list[tuple[str, float, str]]
    text: list[tuple[str, float, str]]
    terms: frozenset[str]
    near: dict[str, dict[str, float]]


def rankings(ctx: Any, space_id: str, question: str, provider: Any) -> tuple[Rankings, dict[str, dict]]:
    """Both rankings of ``question`` in the space, and each row's metadata by id."""
    import numpy as np

    from nexus_query.cognition.bricks import own_text
    from nexus_query.cognition.near_words import nearest_word_cosines
    from nexus_query.cognition.recall import asked_words
    from nexus_query.scoring import query_terms
    from nexus_query.store import SpaceStore
    from nexus_query.store.lance_search import text_top
    from nexus_query.store.snapshots import snapshot_cache

    space = SpaceStore().open(ctx, space_id)
    vector = provider.embed([question], ctx)[0]
    snapshot = snapshot_cache.get(space.table, space.location.dataset_uri, space.version)
    if snapshot is None:
        raise SystemExit(f"space {space_id} does not fit the snapshot cache (NEXUS_SNAPSHOT_CACHE_MB)")
    positions, scores = snapshot.top(vector, DEPTH, None)
    rows = [snapshot.row(p) for p in positions]
    by_vector = [(r["id"], float(s), r["text"]) for r, s in zip(rows, scores, strict=True)]
    found = text_top(space.table, question, DEPTH, with_vectors=True)
    by_text = [(r["id"], float(np.dot(np.asarray(r["vector"], dtype=np.float32), vector)), r["text"]) for r in found]
    metadata = {r["id"]: json.loads(r["metadata"]) for r in (*rows, *found)}
    terms = query_terms(question)
    texts = {row_id: own_text(text, metadata[row_id]) for row_id, _, text in (*by_vector, *by_text)}
    near = nearest_word_cosines(asked_words(question, terms, []), list(texts.values()), provider, ctx)
    return Rankings(by_vector, by_text, terms, dict(zip(texts, near, strict=True))), metadata


def ordered(r: Rankings, setting: Setting) -> list[str]:
    """Row ids of both rankings in ``setting``'s order (ties: text rank, then vector rank, then id)."""
    from nexus_query.cognition.recall import term_credits, term_weights
    from nexus_query.scoring import hybrid_relevance, terms_of, text_coverage, vector_relevance

    rank_v = {row_id: i for i, (row_id, _, _) in enumerate(r.vector, start=1)}
    rank_t = {row_id: i for i, (row_id, _, _) in enumerate(r.text, start=1)}
    pool = {row_id: (cosine, text) for row_id, cosine, text in (*r.vector, *r.text)}
    absent = 2 * DEPTH + 1
    if setting.kind == "rank":
        fused = {i: sum(1 / (RRF_K + rank[i]) for rank in (rank_v, rank_t) if i in rank) for i in pool}
        return sorted(pool, key=lambda i: (-fused[i], rank_v.get(i, absent), i))
    weights = term_weights(r.terms, [text for _, text in pool.values()])

    def evidence(row_id: str, text: str) -> float | None:
        if setting.near is not None and r.terms:
            credit = term_credits(r.terms, terms_of([text])[0], r.near.get(row_id, {}), setting.near)
            return sum(credit.values()) / len(credit)  # counted alike: such a setting has rarity 0
        alike, weighted = text_coverage(r.terms, text), text_coverage(r.terms, text, weights)
        return None if alike is None or weighted is None else (1 - setting.rarity) * alike + setting.rarity * weighted

    score = {i: hybrid_relevance(vector_relevance(c), evidence(i, t), setting.lift) for i, (c, t) in pool.items()}
    return sorted(pool, key=lambda i: (-score[i], rank_t.get(i, absent), rank_v.get(i, absent), i))


def example_questions(smoke: bool) -> tuple[list[dict], list[tuple[str, str, dict[str, int]]]]:
    """The example set's corpus and its (fold, query, judgements), the fold being the example tenant."""
    import bench.retrieval_eval as retrieval

    folder = Path(tempfile.mkdtemp(prefix="nexus-fusion-examples-"))
    retrieval.write_examples(folder)
    corpus = retrieval.read_jsonl(folder / "corpus.jsonl")
    texts = {q["_id"]: q["text"] for q in retrieval.read_jsonl(folder / "queries.jsonl")}
    judged = sorted(retrieval.read_qrels(folder / "qrels" / "test.tsv").items())
    asked = [(f"examples/{q.split('/')[0].removeprefix('q-')}", texts[q], j) for q, j in judged]
    return corpus, (asked[:8] + asked[-8:] if smoke else asked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="two conversations and 16 example queries")
    args = parser.parse_args()
    os.environ.setdefault("NEXUS_HOME", tempfile.mkdtemp(prefix="nexus-query-fusion-cv-"))

    import bench.retrieval_eval as retrieval
    from bench.cognition_fusion_cv import build
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import get_provider

    ctx, provider = RequestContext(retrieval.CTX_TENANT), get_provider()
    corpus, asked = example_questions(args.smoke)
    print(f"storing {len(corpus)} example documents through the ingest job ...", flush=True)
    retrieval.ingest(corpus)
    conversations = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DATA.glob("conv_*.json"))]
    if args.smoke:
        conversations = [{**c, "questions": c["questions"][:3]} for c in conversations[:2]]
    print(f"storing {len(conversations)} conversations ...", flush=True)
    build(conversations, provider)

    grid = [Setting("rank")] + [Setting("score", lift, rarity) for rarity in RARITIES for lift in LIFTS] + [
        Setting("score", lift, 0.0, NEAR) for lift in LIFTS]
    eligible = [s for s in grid if s.rarity == 0.0]
    values: dict[Setting, list[tuple[str, float]]] = {s: [] for s in grid}  # (fold, value) per question

    def measure(fold: str, space_id: str, question: str, value: Callable[[list[str], dict[str, dict]], float]):
        found, metadata = rankings(ctx, space_id, question, provider)
        for setting in grid:
            values[setting].append((fold, value(ordered(found, setting), metadata)))

    def ndcg(judged: dict[str, int]) -> Callable[[list[str], dict[str, dict]], float]:
        def value(order: list[str], metadata: dict[str, dict]) -> float:
            docs = list(dict.fromkeys(metadata[i].get("beir_id") for i in order))
            return retrieval.ndcg_at([d for d in docs if d is not None], judged, K)
        return value

    def turn_recall(evidence: list[str]) -> Callable[[list[str], dict[str, dict]], float]:
        def value(order: list[str], metadata: dict[str, dict]) -> float:
            return len({metadata[i].get("message_id") for i in order[:K]} & set(evidence)) / len(evidence)
        return value

    for fold, question, judged in asked:
        measure(fold, retrieval.SPACE_ID, question, ndcg(judged))
    for conversation in conversations:
        for q in conversation["questions"]:
            measure(conversation["conversation_id"], conversation["conversation_id"], q["question"],
                    turn_recall(q["evidence"]))

    def mean(setting: Setting, folds: set[str], examples: bool | None = None) -> float:
        parts = [[v for f, v in values[setting] if f in folds and f.startswith("examples/") == side]
                 for side in ((True, False) if examples is None else (examples,))]
        return statistics.fmean(statistics.fmean(p) for p in parts if p)

    folds = sorted({f for f, _ in values[grid[0]]})
    everything = set(folds)
    print(f"\nnDCG@{K} on {len(asked)} example queries / turn recall@{K} on "
          f"{sum(len(c['questions']) for c in conversations)} questions; every setting on all of them:")
    for setting in grid:
        note = "" if setting in eligible else "  (reference)"
        print(f"  {setting!s:28s} {mean(setting, everything, True):.4f} / {mean(setting, everything, False):.4f}{note}")
    print("leave-one-fold-out (the setting best on the other folds, scored on the held-out one):")
    held: dict[bool, list[float]] = {True: [], False: []}
    for fold in folds:
        best = max(eligible, key=lambda s: (round(mean(s, everything - {fold}), 6), s.kind == "score",
                                            s.near is None, -abs(s.lift - 0.5)))
        scores = [v for f, v in values[best] if f == fold]
        held[fold.startswith("examples/")] += scores
        rank = statistics.fmean(v for f, v in values[Setting("rank")] if f == fold)
        print(f"  {fold:20s} {best!s:28s} held-out {statistics.fmean(scores):.4f} (rank fusion {rank:.4f}, "
              f"{len(scores)} questions)")
    print(f"pooled held-out: nDCG@{K} {statistics.fmean(held[True]):.4f}, turn recall@{K} "
          f"{statistics.fmean(held[False]):.4f} (rank fusion {mean(Setting('rank'), everything, True):.4f}, "
          f"{statistics.fmean(v for f, v in values[Setting('rank')] if not f.startswith('examples/')):.4f})")


if __name__ == "__main__":
    main()
