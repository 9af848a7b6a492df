"""How brick recall fuses full text and vectors, chosen by leave-one-conversation-out cross-validation.

    .venv/bin/python bench/cognition_fusion_cv.py [DATA_DIR] [--k 15]

Reads the recall development set (``bench/data/conversations/conv_*.json``: sessions with a date, turns
with ids and speakers, questions with their evidence turn ids; schema in that folder's README), stores each
conversation in a space of its own as ``nexus cognition import`` would (one canonical conversation per
session, each turn a message named after its speaker), through the ingest pipeline's own steps, then reads
each question's two brick rankings once (``recall.brick_rankings``) and scores every fusion of a grid by
turn recall at k. Which bricks are eligible is decided as ``assemble_topic`` decides it, by recall's own
score (``recall.ranked`` at ``scoring.TEXT_LIFT``): none unless the best scores ``recall.TOPIC_MIN_SCORE``,
then those scoring ``recall.MIN_SCORE`` or more; a setting only orders them:

- score fusion: bricks of both rankings by ``scoring.hybrid_relevance`` at a text lift (0 is the vector
  scan alone; ``scoring.TEXT_LIFT`` is what recall uses);
- rank fusion: weighted reciprocal rank fusion ``w / (rrf_k + text rank) + (1 - w) / (rrf_k + vector
  rank)`` (w = 1 is the full-text index alone).

For each conversation in turn, the setting best on the others is scored on it: the figures printed per fold
are held out.
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

from bench.cognition_recall import DATA as DEFAULT_DATA  # noqa: E402
from bench.cognition_recall import canonical_sessions  # noqa: E402

LIFTS = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5]
RRF_WEIGHTS = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
RRF_KS = [10, 60]


@dataclass(frozen=True)
class Setting:
    """One fusion: by score at ``lift``, or by weighted reciprocal rank (``weight`` on text, ``rrf_k``)."""

    kind: Literal["score", "rank"]
    lift: float = 0.0
    weight: float = 0.0
    rrf_k: int = 60

    def __str__(self) -> str:
        return f"score, lift {self.lift}" if self.kind == "score" else f"rank, w_text {self.weight}, k {self.rrf_k}"


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
    """The message ids of the first ``k`` eligible bricks in the order of ``setting``."""
    from nexus_query.cognition.recall import MIN_SCORE, TOPIC_MIN_SCORE, ranked

    scored = ranked(rankings)  # recall's own score gates, whatever the order
    if not scored or scored[0][1] < TOPIC_MIN_SCORE:
        return []
    eligible = {row["id"] for row, score in scored if score >= MIN_SCORE}
    if setting.kind == "score":
        rows = [row for row, _ in ranked(rankings, setting.lift) if row["id"] in eligible]
    else:
        rank_t = {row["id"]: i for i, row in enumerate(rankings.text, start=1)}
        rank_v = {row["id"]: i for i, row in enumerate(rankings.vector, start=1)}

        def fused(brick_id: str) -> float:
            return (setting.weight / (setting.rrf_k + rank_t[brick_id]) if brick_id in rank_t else 0.0) + (
                (1 - setting.weight) / (setting.rrf_k + rank_v[brick_id]) if brick_id in rank_v else 0.0)

        order = sorted(range(len(scored)), key=lambda i: -fused(scored[i][0]["id"]))  # stable: ties by score
        rows = [scored[i][0] for i in order if scored[i][0]["id"] in eligible]
    return [json.loads(row["metadata"])["message_id"] for row in rows[:k]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="two conversations, three questions each")
    args = parser.parse_args()
    os.environ.setdefault("NEXUS_HOME", tempfile.mkdtemp(prefix="nexus-fusion-cv-"))

    from nexus_query.cognition.recall import MIN_SCORE, TOPIC_MIN_SCORE, brick_rankings
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import get_provider
    from nexus_query.scoring import TEXT_LIFT
    from nexus_query.store import SpaceStore

    conversations = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.data.glob("conv_*.json"))]
    if args.smoke:  # folds need two conversations at least
        conversations = [{**c, "questions": c["questions"][:3]} for c in conversations[:2]]
    provider, store, ctx = get_provider(), SpaceStore(), RequestContext("acme")
    build(conversations, provider)
    grid = [Setting("score", lift=x) for x in LIFTS] + [Setting("rank", weight=w, rrf_k=k)
                                                        for w in RRF_WEIGHTS for k in RRF_KS]
    # per conversation, per setting: the turn recall of each question
    scores: dict[str, dict[Setting, list[float]]] = {}
    for conversation in conversations:
        space_id = conversation["conversation_id"]
        per = scores[space_id] = {s: [] for s in grid}
        for question in conversation["questions"]:
            rankings = brick_rankings(ctx, space_id, question["question"], store=store, provider=provider)
            for setting in grid:
                per[setting].append(turn_recall(recalled(rankings, setting, args.k), question["evidence"]))

    def mean(setting: Setting, names: list[str]) -> float:
        return statistics.fmean(x for n in names for x in scores[n][setting])

    names = sorted(scores)
    vector, text = Setting("score", lift=0.0), Setting("rank", weight=1.0, rrf_k=60)
    print(f"turn recall@{args.k}, TOPIC_MIN_SCORE {TOPIC_MIN_SCORE}, MIN_SCORE {MIN_SCORE}, "
          f"{len(names)} conversations, {sum(len(c['questions']) for c in conversations)} questions; "
          "every setting on all of them:")
    for setting in grid:
        print(f"  {setting!s:28s} {mean(setting, names):.3f}")
    print("leave-one-conversation-out folds (setting chosen on the others, scored on the held-out one):")
    held = []
    for name in names:
        others = [n for n in names if n != name]
        # ties: the setting nearer recall's own (score fusion at TEXT_LIFT)
        best = max(grid, key=lambda s: (round(mean(s, others), 6), s.kind == "score", -abs(s.lift - TEXT_LIFT)))
        held.append(mean(best, [name]))
        print(f"  {name}: {best} -> held-out {held[-1]:.3f} (vector only {mean(vector, [name]):.3f}, "
              f"text only {mean(text, [name]):.3f})")
    print(f"cross-validated turn recall@{args.k}: {statistics.fmean(held):.3f} (vector only "
          f"{mean(vector, names):.3f}, text only {mean(text, names):.3f}, recall's own "
          f"{mean(Setting('score', lift=TEXT_LIFT), names):.3f})")


if __name__ == "__main__":
    main()
