"""How brick recall fuses full text and vectors, chosen by leave-one-conversation-out cross-validation.

    .venv/bin/python bench/cognition_fusion_cv.py [DATA_DIR] [--k 15] [--unrelated]
    .venv/bin/python bench/cognition_fusion_cv.py --only conv01,conv09 --per-category 5   # while developing

Reads the recall development set (``bench/data/conversations/conv_*.json``: sessions with a date, turns
with ids and speakers, questions with their evidence turn ids, the conversation's ``style``; schema in that
folder's README), stores each conversation in a space of its own as ``nexus cognition import`` would (one
canonical conversation per session, each turn a message named after its speaker), through the ingest
pipeline's own steps, then reads each question's two brick rankings once (``recall.brick_rankings``) and
scores every fusion of a grid by turn recall at k:

- score fusion (what recall does): bricks of both rankings by ``scoring.hybrid_relevance`` at a text
  ``lift`` (0 is the vector scan alone), the text evidence counting a query term alike (``rarity`` 0,
  recall before round 22) or by its rarity among the bricks found (``rarity`` 1, ``recall.term_weights``),
  or a mix, and a term a brick lacks held in part by its nearest word above a floor ``near``
  (``recall.term_credits``; None: not at all, recall before round 25); gated as ``assemble_topic`` is:
  nothing unless the topic matches (``recall.topic_matches``: the best brick's exact evidence, no
  nearest words, scores ``recall.TOPIC_MIN_SCORE``), then the bricks scoring ``recall.MIN_SCORE`` or more;
- rank fusion: weighted reciprocal rank fusion ``w / (rrf_k + text rank) + (1 - w) / (rrf_k + vector
  rank)`` (w = 1 is the full-text index alone) of the bricks recall's own score lets through.

For each conversation in turn, the setting best on the others is scored on it: the figures printed per
fold are held out, and the pooled held-out figure is their mean over every question. Turn recall is also
printed per style ("storylines", "recurring", "everyday") and question category for the vector scan alone, the
full-text index alone, recall before round 25 (``recall.LIFT``, ``recall.RARITY``, no nearest words)
and recall now (with ``recall.NEAR_FLOOR``). ``--unrelated`` also asks every conversation the example documents' titles
(``examples/data/*/*.jsonl``: outdoor gear, freight, units; nothing the conversations speak of) and prints
the share that gets no match (NO_RECALL_MATCHES) beside the share of development questions that match.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cognition_recall import (
    CATEGORIES,  # noqa: E402
    canonical_sessions,  # noqa: E402
)
from bench.cognition_recall import DATA as DEFAULT_DATA  # noqa: E402

LIFTS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
RARITIES = [0.0, 0.25, 0.5, 0.75, 1.0]
NEAR_FLOORS = [None, 0.0, 0.25, 0.5]  # None: a term a brick lacks counts nothing (recall before round 25)
RRF_WEIGHTS = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
RRF_KS = [10, 60]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"


@dataclass(frozen=True)
class Setting:
    """One fusion: by score at ``lift``, ``rarity`` and ``near`` (the floor of a nearest word's credit,
    ``recall.term_credits``), or by weighted reciprocal rank (``weight`` on text, ``rrf_k``)."""

    kind: Literal["score", "rank"]
    lift: float = 0.0
    rarity: float = 0.0
    near: float | None = None
    weight: float = 0.0
    rrf_k: int = 60

    def __str__(self) -> str:
        if self.kind == "score":
            return f"score, lift {self.lift}, rarity {self.rarity}, near {self.near}"
        return f"rank, w_text {self.weight}, k {self.rrf_k}"


def canonical_sessions_of(conversation: dict) -> list[dict]:
    return canonical_sessions(conversation["conversation_id"], conversation["speakers"], conversation["sessions"])


def build(conversations: list[dict], provider) -> None:
    from nexus_pipelines.common.load import upsert_records
    from nexus_pipelines.ingest.chunking import Chunker
    from nexus_pipelines.ingest.pipeline import ChunkStats, chunk_batches, chunk_records
    from nexus_pipelines.ingest.sources import LandingReader
    from nexus_query.cognition.bricks import import_export
    from nexus_query.context import RequestContext
    from nexus_query.landing import landing_zone
    from nexus_query.store import SpaceStore

    ctx, store = RequestContext("acme"), SpaceStore()
    zone = landing_zone(ctx)
    chunker = Chunker.for_provider(provider)
    for conversation in conversations:
        space_id = conversation["conversation_id"]
        data = json.dumps(canonical_sessions_of(conversation)).encode()
        import_export(zone.files, space_id, f"{space_id}.json", data)
        reader = LandingReader(zone, space_id)
        records = [r for batch in chunk_batches(reader.batches(), chunker, ChunkStats()) for r in chunk_records(batch)]
        upsert_records(store.open_or_create(ctx, space_id, provider.info), ctx, records, provider)


def turn_recall(found: list[str], evidence: list[str]) -> float:
    return len(set(found) & set(evidence)) / len(evidence)


def recalled(rankings, setting: Setting, k: int) -> list[str]:
    """The message ids of the first ``k`` bricks ``setting`` recalls."""
    from nexus_query.cognition.recall import LIFT, MIN_SCORE, NEAR_FLOOR, RARITY, TOPIC_MIN_SCORE, ranked, topic_matches

    own = setting.kind == "score"
    lift, rarity, near = (setting.lift, setting.rarity, setting.near) if own else (LIFT, RARITY, NEAR_FLOOR)
    if not topic_matches(rankings, TOPIC_MIN_SCORE, lift, rarity):
        return []
    scored = ranked(rankings, lift, rarity, near)
    rows = [row for row, score in scored if score >= MIN_SCORE]
    if not own:
        rank_t = {row["id"]: i for i, row in enumerate(rankings.text, start=1)}
        rank_v = {row["id"]: i for i, row in enumerate(rankings.vector, start=1)}

        def fused(brick_id: str) -> float:
            return (setting.weight / (setting.rrf_k + rank_t[brick_id]) if brick_id in rank_t else 0.0) + (
                (1 - setting.weight) / (setting.rrf_k + rank_v[brick_id]) if brick_id in rank_v else 0.0)

        rows = sorted(rows, key=lambda row: -fused(row["id"]))  # stable: ties by recall's score
    return [json.loads(row["metadata"])["message_id"] for row in rows[:k]]


def unrelated_topics() -> list[str]:
    """The example documents' titles: topics none of the conversations speaks of."""
    titles = {json.loads(line)["metadata"]["title"] for path in sorted(EXAMPLES.glob("*/*.jsonl"))
              for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    return sorted(titles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="two conversations, three questions each")
    parser.add_argument("--only", help="comma-separated conversation ids (a subset while developing)")
    parser.add_argument("--per-category", type=int, help="at most N questions of each category a conversation")
    parser.add_argument("--unrelated", action="store_true", help="also ask the example documents' titles")
    args = parser.parse_args()
    os.environ.setdefault("NEXUS_HOME", tempfile.mkdtemp(prefix="nexus-fusion-cv-"))

    from nexus_query.cognition.recall import (
        LIFT,
        MIN_SCORE,
        NEAR_FLOOR,
        RARITY,
        TOPIC_MIN_SCORE,
        brick_rankings,
        topic_matches,
    )
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import get_provider
    from nexus_query.store import SpaceStore

    conversations = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.data.glob("conv_*.json"))]
    if args.only:
        conversations = [c for c in conversations if c["conversation_id"] in args.only.split(",")]
    if args.per_category:
        conversations = [{**c, "questions": [q for cat in CATEGORIES
                                             for q in [q for q in c["questions"] if q["category"] == cat]
                                             [:args.per_category]]} for c in conversations]
    if args.smoke:  # folds need two conversations at least
        conversations = [{**c, "questions": c["questions"][:3]} for c in conversations[:2]]
    provider, store, ctx = get_provider(), SpaceStore(), RequestContext("acme")
    build(conversations, provider)
    grid = [Setting("score", lift=x, rarity=r, near=f) for f in NEAR_FLOORS for r in RARITIES for x in LIFTS] + [
        Setting("rank", weight=w, rrf_k=k) for w in RRF_WEIGHTS for k in RRF_KS]
    vector, text = Setting("score", lift=0.0), Setting("rank", weight=1.0, rrf_k=60)
    before = Setting("score", lift=LIFT, rarity=RARITY)
    now = Setting("score", lift=LIFT, rarity=RARITY, near=NEAR_FLOOR)
    # per conversation, per setting: the turn recall of each question; and each question's (style, category)
    scores: dict[str, dict[Setting, list[float]]] = {}
    kinds: dict[str, list[tuple[str, str]]] = {}
    topics = unrelated_topics() if args.unrelated else []
    matched: dict[Setting, list[bool]] = {before: [], now: []}  # development questions whose best brick matches
    unmatched: dict[Setting, list[bool]] = {before: [], now: []}  # unrelated topics that get no match
    for conversation in conversations:
        space_id = conversation["conversation_id"]
        per = scores[space_id] = {s: [] for s in grid}
        kinds[space_id] = [(conversation["style"], q["category"]) for q in conversation["questions"]]
        for question in conversation["questions"]:
            rankings = brick_rankings(ctx, space_id, question["question"], store=store, provider=provider)
            for setting in grid:
                per[setting].append(turn_recall(recalled(rankings, setting, args.k), question["evidence"]))
            for setting in matched:
                matched[setting].append(topic_matches(rankings, TOPIC_MIN_SCORE, setting.lift, setting.rarity))
        for topic in topics:
            rankings = brick_rankings(ctx, space_id, topic, store=store, provider=provider)
            for setting in unmatched:
                unmatched[setting].append(not topic_matches(rankings, TOPIC_MIN_SCORE, setting.lift, setting.rarity))

    def pooled(pairs: list[tuple[Setting, str]], style: str | None = None, category: str | None = None) -> float:
        """Mean turn recall over every question of the named conversations, each by its own setting."""
        xs = [x for setting, n in pairs for x, (st, cat) in zip(scores[n][setting], kinds[n], strict=True)
              if style in (None, st) and category in (None, cat)]
        return statistics.fmean(xs) if xs else float("nan")

    def mean(setting: Setting, names: list[str], style: str | None = None, category: str | None = None) -> float:
        return pooled([(setting, n) for n in names], style, category)

    names = sorted(scores)
    print(f"turn recall@{args.k}, TOPIC_MIN_SCORE {TOPIC_MIN_SCORE}, MIN_SCORE {MIN_SCORE}, "
          f"{len(names)} conversations, {sum(len(c['questions']) for c in conversations)} questions; "
          "every setting on all of them:")
    for setting in grid:
        print(f"  {setting!s:32s} {mean(setting, names):.3f}")
    print("leave-one-conversation-out folds (setting chosen on the others, scored on the held-out one):")
    chosen = []
    for name in names:
        others = [n for n in names if n != name]
        # ties: the setting nearer recall's own
        best = max(grid, key=lambda s: (round(mean(s, others), 6), s.kind == "score", s.near == NEAR_FLOOR,
                                        -abs(s.lift - LIFT), -abs(s.rarity - RARITY)))
        chosen.append((best, name))
        print(f"  {name} ({kinds[name][0][0]}): {best} -> held-out {mean(best, [name]):.3f} (vector only "
              f"{mean(vector, [name]):.3f}, text only {mean(text, [name]):.3f}, recall before "
              f"{mean(before, [name]):.3f}, recall now {mean(now, [name]):.3f})")
    print(f"cross-validated turn recall@{args.k}: {pooled(chosen):.3f} (vector only {mean(vector, names):.3f}, "
          f"text only {mean(text, names):.3f}, recall before {mean(before, names):.3f}, recall now "
          f"{mean(now, names):.3f})")
    styles = sorted({st for n in names for st, _ in kinds[n]})
    print("per style and category: held-out (each fold's choice), vector only, text only, before, now")
    for st in styles:
        for cat in (None, *CATEGORIES):
            count = sum(k[0] == st and cat in (None, k[1]) for n in names for k in kinds[n])
            if count:
                print(f"  {st:10s} {cat or 'all':12s} ({count:3d}) held-out {pooled(chosen, st, cat):.3f}  vector "
                      f"{mean(vector, names, st, cat):.3f}  text {mean(text, names, st, cat):.3f}  before "
                      f"{mean(before, names, st, cat):.3f}  now {mean(now, names, st, cat):.3f}")
    if topics:
        for setting in matched:
            print(f"{setting}: {statistics.fmean(matched[setting]):.1%} of the development questions match, "
                  f"{statistics.fmean(unmatched[setting]):.1%} of {len(topics)} unrelated topics x "
                  f"{len(names)} conversations get no match (best brick below {TOPIC_MIN_SCORE})")


if __name__ == "__main__":
    main()
