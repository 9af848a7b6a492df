"""Recall of the evidence turns of multi-session conversations: ``assemble_topic`` beside a dense, a
BM25 and a fused baseline, measured in one run.

    .venv/bin/python bench/cognition_recall.py [DIR]    # DIR defaults to the development set, bench/data/conversations
    .venv/bin/python bench/cognition_recall.py --smoke  # its first conversation, 2 questions a category (tests)

DIR holds one JSON file per conversation (schema: ``bench/data/conversations/README.md``): dated
sessions of turns with ids and speakers, and questions with the ids of their evidence turns and a
category. In a fresh data root (a temporary ``NEXUS_HOME``), each conversation's sessions are written as
one canonical export, one canonical conversation per session (``created_at`` the session's date, each
turn a message whose ``message_id`` is the turn id, ``role`` "user" and ``name`` the speaker), and
imported into a space of its own with ``nexus cognition import FILE --key acme-demo-key --space ID
--wait``, the real CLI, as a user would. Every question is then asked of its conversation's space:

- ``assemble_topic`` (nexus_query.cognition) with k = 5 and 15: the turns it recalled are the message
  ids of its excerpts' ``coverage.spans``, its sessions are the excerpts' conversations;
- dense: the same embedding model, one vector per turn, cosine top k in numpy;
- BM25: LanceDB's own full-text index (its default tokenizer) over the same turn texts;
- RRF: equal-weight reciprocal rank fusion of the two baselines, each ranked 100 deep, k = 60;

each baseline twice: over the turn's words alone, and over ``speaker: words``.

Per k it prints, for each method, turn recall (mean share of a question's evidence turns in its top k),
all-evidence-found rate and session recall (mean share of the evidence sessions among the top k's
sessions); turn recall per question category and per conversation (the folds a setting chosen by
cross-validation across conversations is judged on); the artifacts' size and ``assemble_topic``'s time per call;
and how many questions' artifacts carry every evidence session's date as an excerpt's ``created_at``.
Nothing is thresholded here: the figures are printed for a reader (and the issue) to judge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

KEY = "acme-demo-key"  # the demo tenant's key in the default config (README)
KS = (5, 15)
DEPTH = 100  # how deep each baseline ranks before fusion
RRF_K = 60
CATEGORIES = ("single-hop", "multi-hop", "temporal", "paraphrased")
# What a baseline indexes for a turn: its words alone, or its speaker's name before them (a question
# names the speaker, the turn's words do not). Both are measured: on the development set dense ranks far
# better on the words alone, BM25 a little better with the name.
TurnText = Literal["text", "speaker"]
TURN_TEXTS: tuple[TurnText, ...] = ("text", "speaker")
BASELINES = ("dense", "bm25", "rrf")
METHODS = ("assemble_topic", *(f"{b}/{t}" for t in TURN_TEXTS for b in BASELINES))
_INDEXED = {"text": "turn text", "speaker": "speaker: turn text"}
LABELS = {"assemble_topic": "assemble_topic",
          **{f"dense/{t}": f"dense, same model, one vector per turn ({_INDEXED[t]})" for t in TURN_TEXTS},
          **{f"bm25/{t}": f"LanceDB BM25 over the turns ({_INDEXED[t]})" for t in TURN_TEXTS},
          **{f"rrf/{t}": f"RRF of dense + BM25 (100 deep, k = 60) ({_INDEXED[t]})" for t in TURN_TEXTS}}
SMOKE_PER_CATEGORY = 2
DATA = REPO / "bench" / "data" / "conversations"


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    category: str
    evidence: tuple[str, ...]


@dataclass
class Conversation:
    """One conversation of the set, and where each turn lives."""

    cid: str
    speakers: list[str]
    sessions: list[dict[str, Any]]
    questions: list[Question]
    style: str = "storylines"  # how the set wrote it (its README): "storylines", "recurring" or "everyday"
    session_of: dict[str, str] = field(default_factory=dict)  # turn id -> session id
    turns: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for session in self.sessions:
            for turn in session["turns"]:
                self.session_of[turn["id"]] = session["session_id"]
                self.turns.append(turn)

    @property
    def space_id(self) -> str:
        return self.cid.lower()

    def session_date(self, session_id: str) -> str:
        return next(s["date"] for s in self.sessions if s["session_id"] == session_id)


def load_set(folder: Path, smoke: bool) -> list[Conversation]:
    conversations = []
    for path in sorted(folder.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        questions = [Question(q["id"], q["question"], q["category"], tuple(q["evidence"])) for q in raw["questions"]]
        conversation = Conversation(raw["conversation_id"], raw["speakers"], raw["sessions"], questions,
                                    raw.get("style", "storylines"))
        if smoke:
            return [smoke_subset(conversation)]
        conversations.append(conversation)
    if not conversations:
        raise SystemExit(f"no conversation files (*.json) in {folder}")
    return conversations


def smoke_subset(conversation: Conversation) -> Conversation:
    """The first ``SMOKE_PER_CATEGORY`` questions of each category and only the sessions they need."""
    asked = [q for category in CATEGORIES
             for q in [q for q in conversation.questions if q.category == category][:SMOKE_PER_CATEGORY]]
    needed = {conversation.session_of[t] for q in asked for t in q.evidence}
    kept = [s for s in conversation.sessions if s["session_id"] in needed]
    return Conversation(conversation.cid, conversation.speakers, kept, asked, conversation.style)


def turn_text(turn: dict[str, Any], indexed: TurnText) -> str:
    """What a baseline indexes for a turn: its words, or ``speaker: words``."""
    return f"{turn['speaker']}: {turn['text']}" if indexed == "speaker" else turn["text"]


def canonical_sessions(cid: str, speakers: Sequence[str], sessions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One canonical conversation per session of a set conversation: dated by the session, each turn a
    message named after its speaker (what every cognition bench imports)."""
    title = f"Chat between {speakers[0]} and {speakers[1]}"
    return [{"conversation_id": f"{cid}-{s['session_id']}", "title": title, "created_at": s["date"],
             "source_format": "canonical",
             "messages": [{"message_id": t["id"], "role": "user", "name": t["speaker"],
                           "blocks": [{"index": 0, "text": t["text"]}]} for t in s["turns"]]}
            for s in sessions]


def canonical_export(conversation: Conversation) -> dict[str, Any]:
    """The conversation as one canonical export."""
    return {"conversations": canonical_sessions(conversation.cid, conversation.speakers, conversation.sessions)}


def import_all(conversations: Sequence[Conversation], exports: Path) -> list[float]:
    """``nexus cognition import --wait`` once per conversation, into a space of its own; seconds each."""
    nexus = Path(sys.executable).with_name("nexus")
    seconds = []
    for conversation in conversations:
        path = exports / f"{conversation.cid} sessions.json"  # a name with a space, as users have
        path.write_text(json.dumps(canonical_export(conversation), ensure_ascii=False), encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run([str(nexus), "cognition", "import", str(path), "--key", KEY,
                               "--space", conversation.space_id, "--wait", "--json"],
                              capture_output=True, text=True, check=False)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"import of {path.name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        print(f"imported {conversation.cid}: {len(conversation.sessions)} sessions, {len(conversation.turns)} "
              f"turns in {seconds[-1]:.1f} s", flush=True)
    return seconds


def dense_rankings(conversation: Conversation, provider: Any, indexed: TurnText) -> dict[str, list[str]]:
    """Turn ids by cosine similarity to each question, best first (ties by turn order)."""
    turns = np.asarray(provider.embed([turn_text(t, indexed) for t in conversation.turns]), dtype=np.float32)
    asked = np.asarray(provider.embed([q.text for q in conversation.questions]), dtype=np.float32)
    turns /= np.linalg.norm(turns, axis=1, keepdims=True)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    ids = [t["id"] for t in conversation.turns]
    return {q.qid: [ids[i] for i in np.argsort(-(turns @ v), kind="stable")[:DEPTH]]
            for q, v in zip(conversation.questions, asked, strict=True)}


def bm25_rankings(conversation: Conversation, folder: Path, indexed: TurnText) -> dict[str, list[str]]:
    """Turn ids by LanceDB's own BM25 (its full-text index with default settings), best first."""
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    db = lancedb.connect(folder / f"{conversation.cid}-{indexed}")
    table = db.create_table("turns", pa.table({"id": [t["id"] for t in conversation.turns],
                                               "text": [turn_text(t, indexed) for t in conversation.turns]}))
    table.create_index("text", config=FTS())  # LanceDB's defaults: stemmed, stop words removed, folded
    return {q.qid: [row["id"] for row in table.search(q.text, query_type="fts").select(["id", "_score"])
                    .limit(DEPTH).to_list()]
            for q in conversation.questions}


def rrf(*rankings: list[str]) -> list[str]:
    """Equal-weight reciprocal rank fusion (k = 60); ties by the first ranking's order."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, turn_id in enumerate(ranking[:DEPTH]):
            score[turn_id] = score.get(turn_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(score, key=lambda t: -score[t])


@dataclass(frozen=True)
class Retrieved:
    """What one method found for one question at one k."""

    turns: frozenset[str]
    sessions: frozenset[str]


@dataclass
class Assembled:
    """``assemble_topic``'s answer to one question at one k, with its cost."""

    retrieved: Retrieved
    size: int  # bytes of the artifact as JSON
    turns: int  # turns it recalled (at most k: recall cuts below its minimum score)
    seconds: float
    undated: tuple[str, ...]  # each evidence session without an excerpt carrying its date, and why

    @property
    def dated(self) -> bool:
        """Every evidence session's date is an excerpt's ``created_at``."""
        return not self.undated


def excerpt_date_matches(excerpt: dict[str, Any], date: str) -> bool:
    created = excerpt.get("created_at")
    return isinstance(created, str) and created[:10] == date[:10]


def assemble_answers(conversation: Conversation, k: int, ctx: Any, store: Any, provider: Any) -> dict[str, Assembled]:
    from nexus_query.cognition import assemble_topic

    answers = {}
    for q in conversation.questions:
        started = time.perf_counter()
        artifact = assemble_topic(ctx, conversation.space_id, q.text, k, store=store, provider=provider)
        seconds = time.perf_counter() - started
        excerpts = artifact["payload"]["raw_excerpts"]
        turns = {span["message_id"] for e in excerpts for span in e["coverage"]["spans"]}
        by_session: dict[str, dict[str, Any]] = {}
        for e in excerpts:
            for m in e["conversation"]:
                if m["message_id"] in conversation.session_of:
                    by_session[conversation.session_of[m["message_id"]]] = e
                    break
        needed = {conversation.session_of[t] for t in q.evidence}
        undated = tuple(f"{q.qid} session {s} ({conversation.session_date(s)[:10]}): " + (
            f"excerpt created_at {by_session[s].get('created_at')!r}" if s in by_session else "not recalled")
            for s in sorted(needed)
            if not (s in by_session and excerpt_date_matches(by_session[s], conversation.session_date(s))))
        answers[q.qid] = Assembled(Retrieved(frozenset(turns), frozenset(by_session)),
                                   len(json.dumps(artifact, ensure_ascii=False).encode()), len(turns), seconds,
                                   undated)
    return answers


def top(conversation: Conversation, ranking: list[str], k: int) -> Retrieved:
    turns = ranking[:k]
    return Retrieved(frozenset(turns), frozenset(conversation.session_of[t] for t in turns))


@dataclass(frozen=True)
class Scores:
    turn_recall: float
    all_found: float
    session_recall: float
    questions: int


def score(pairs: Sequence[tuple[Question, Retrieved, Callable[[str], str]]]) -> Scores:
    turn, every, session = [], [], []
    for q, got, session_of in pairs:
        found = [t in got.turns for t in q.evidence]
        needed = {session_of(t) for t in q.evidence}
        turn.append(sum(found) / len(found))
        every.append(float(all(found)))
        session.append(len(needed & got.sessions) / len(needed))
    n = len(pairs)
    mean = (lambda xs: sum(xs) / n) if n else (lambda xs: float("nan"))
    return Scores(mean(turn), mean(every), mean(session), n)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report(conversations: Sequence[Conversation], found: dict[int, dict[str, dict[str, Retrieved]]],
           assembled: dict[int, dict[str, Assembled]], import_seconds: list[float]) -> str:
    """The printed tables: per k, the four methods overall, per category and per conversation, then cost
    and dates."""
    questions = [(c, q) for c in conversations for q in c.questions]
    out = [f"{len(conversations)} conversations, {sum(len(c.sessions) for c in conversations)} sessions, "
           f"{sum(len(c.turns) for c in conversations)} turns, {len(questions)} questions; imports took "
           f"{sum(import_seconds):.1f} s ({', '.join(f'{s:.1f}' for s in import_seconds)})\n"]
    for k in KS:
        def of(method: str, category: str | None = None, conversation: str | None = None, k: int = k,
               style: str | None = None) -> Scores:
            return score([(q, found[k][method][q.qid], c.session_of.__getitem__) for c, q in questions
                          if category in (None, q.category) and conversation in (None, c.cid)
                          and style in (None, c.style)])
        rows = [[LABELS[m], *(f"{getattr(of(m), f):.3f}" for f in ("turn_recall", "all_found", "session_recall"))]
                for m in METHODS]
        out.append(table(f"## k = {k}: recall of the evidence turns", ["method", "turn recall", "all evidence found",
                                                                        "session recall"], rows))
        styles = sorted({c.style for c in conversations})
        counts_style = {st: sum(c.style == st for c, _ in questions) for st in styles}
        rows = [[LABELS[m], *(f"{of(m, style=st).turn_recall:.3f} / {of(m, style=st).session_recall:.3f}"
                              for st in styles)] for m in METHODS]
        out.append(table(f"### k = {k}: turn recall / session recall per conversation style",
                         ["method", *(f"{st} ({counts_style[st]})" for st in styles)], rows))
        counts = {cat: sum(q.category == cat for _, q in questions) for cat in CATEGORIES}
        rows = [[LABELS[m], *(f"{of(m, cat).turn_recall:.3f}" for cat in CATEGORIES)] for m in METHODS]
        out.append(table(f"### k = {k}: turn recall per category", ["method", *(f"{cat} ({counts[cat]})"
                                                                              for cat in CATEGORIES)], rows))
        rows = [[LABELS[m], *(f"{of(m, conversation=c.cid).turn_recall:.3f}" for c in conversations)]
                for m in METHODS]
        out.append(table(f"### k = {k}: turn recall per conversation (the folds of a cross-validation)",
                         ["method", *(f"{c.cid} ({len(c.questions)})" for c in conversations)], rows))
    rows = []
    for k in KS:
        answers = list(assembled[k].values())
        sizes = [a.size / 1024 for a in answers]
        ms = [a.seconds * 1000 for a in answers]
        dated = sum(a.dated for a in answers)
        missed = [why for a in answers for why in a.undated]
        unrecalled = sum(why.endswith("not recalled") for why in missed)
        rows.append([str(k), f"{statistics.mean(a.turns for a in answers):.1f}", f"{statistics.mean(sizes):.1f}",
                     f"{max(sizes):.1f}", f"{statistics.median(ms):.0f}", f"{_p95(ms):.0f}",
                     f"{dated}/{len(answers)} ({'yes' if dated == len(answers) else 'no'})",
                     f"{unrecalled} / {len(missed) - unrecalled}"])
    out.append(table("## assemble_topic: artifact size, time per call, dates",
                     ["k", "turns recalled (mean)", "artifact KiB (mean)", "artifact KiB (max)", "assemble ms (p50)",
                      "assemble ms (p95)", "artifacts carrying every evidence session's date (all?)",
                      "evidence sessions without a dated excerpt: not recalled / recalled, date missing or wrong"],
                     rows))
    out += [f"evidence sessions without a dated excerpt at k = {KS[-1]}:",
            *(f"- {why}" for a in assembled[KS[-1]].values() for why in a.undated)]
    return "\n".join(out)


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DATA,
                        help="a folder of conversation files (default: bench/data/conversations)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"the first conversation only: {SMOKE_PER_CATEGORY} questions of each category and "
                             "the sessions holding their evidence")
    args = parser.parse_args(argv)
    conversations = load_set(args.folder, args.smoke)
    with tempfile.TemporaryDirectory(prefix="nexus-recall-") as scratch:
        root = Path(scratch)
        os.environ["NEXUS_HOME"] = str(root / "home")  # a fresh data root; the CLI imports inherit it
        os.environ["DAGSTER_HOME"] = str(root / "dagster")
        os.environ.pop("NEXUS_CONFIG", None)  # the default config and its demo keys
        (root / "exports").mkdir()
        import_seconds = import_all(conversations, root / "exports")

        from nexus_query.cognition import recall_bricks_readonly
        from nexus_query.embeddings import get_provider
        from nexus_query.routing import RoutingRegistry
        from nexus_query.store import SpaceStore

        registry = RoutingRegistry.default()
        ctx, store, provider = registry.authenticate(KEY), SpaceStore(registry), get_provider(registry.config)
        found: dict[int, dict[str, dict[str, Retrieved]]] = {k: {m: {} for m in METHODS} for k in KS}
        assembled: dict[int, dict[str, Assembled]] = {k: {} for k in KS}
        provider.embed(["warm up"])  # the model loads once, outside every timing
        for conversation in conversations:
            # the space's first read (opening the table, its snapshot) is not part of any timed call
            recall_bricks_readonly(ctx, conversation.space_id, "warm up", 1, store=store, provider=provider)
            ranked: dict[str, dict[str, list[str]]] = {}
            for indexed in TURN_TEXTS:
                dense = dense_rankings(conversation, provider, indexed)
                bm25 = bm25_rankings(conversation, root / "bm25", indexed)
                ranked |= {f"dense/{indexed}": dense, f"bm25/{indexed}": bm25,
                           f"rrf/{indexed}": {q.qid: rrf(dense[q.qid], bm25[q.qid]) for q in conversation.questions}}
            for k in KS:
                answers = assemble_answers(conversation, k, ctx, store, provider)
                assembled[k].update(answers)
                for q in conversation.questions:
                    found[k]["assemble_topic"][q.qid] = answers[q.qid].retrieved
                    for method, ranking in ranked.items():
                        found[k][method][q.qid] = top(conversation, ranking[q.qid], k)
            print(f"measured {conversation.cid}: {len(conversation.questions)} questions", flush=True)
        print()
        print(report(conversations, found, assembled, import_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
