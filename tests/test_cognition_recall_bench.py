"""bench/cognition_recall.py and its development set (bench/data/conversations): the set is what its
generator writes and holds what the issue asks; the bench's metrics and fusion are the standard ones, its
export is canonical JSON that import accepts, and ``--smoke`` prints the whole table (no figure is
thresholded here)."""

import importlib.util
import json
import re
import subprocess
import sys
from datetime import datetime

import pytest

from nexus_query.cognition import parse_export
from tests.helpers import REPO

DATA = REPO / "bench" / "data" / "conversations"
CATEGORIES = {"single-hop", "multi-hop", "temporal", "paraphrased"}
STYLES = {"storylines", "recurring", "everyday"}


def load(name: str, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bench():
    return load("cognition_recall", REPO / "bench" / "cognition_recall.py")


def conversations():
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DATA.glob("conv_*.json"))]


def test_the_committed_set_is_exactly_what_its_generator_writes(tmp_path):
    generator = load("recall_set_generator", DATA / "generate.py")
    generator.main(["--out", str(tmp_path)])
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(p.name for p in DATA.glob("conv_*.json"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_the_set_has_six_conversations_of_twelve_dated_sessions_and_300_questions_with_valid_evidence():
    convs = conversations()
    assert len(convs) >= 6
    seen_turns: set[str] = set()
    questions = 0
    for conv in convs:
        sessions = conv["sessions"]
        assert len(sessions) >= 12
        dates = [datetime.fromisoformat(s["date"].replace("Z", "+00:00")) for s in sessions]
        assert dates == sorted(dates) and len(set(dates)) == len(dates)
        session_of = {t["id"]: s["session_id"] for s in sessions for t in s["turns"]}
        assert not seen_turns & set(session_of)  # turn ids are unique across the set
        seen_turns |= set(session_of)
        assert all(t["speaker"] in conv["speakers"] and t["text"].strip() for s in sessions for t in s["turns"])
        for q in conv["questions"]:
            assert q["category"] in CATEGORIES and q["question"].strip()
            assert q["evidence"] and all(e in session_of for e in q["evidence"])
            if q["category"] == "multi-hop":
                assert len({session_of[e] for e in q["evidence"]}) >= 2
        # the recurring style asks about the things it names, so it has no paraphrased questions
        expected = CATEGORIES - {"paraphrased"} if conv["style"] == "recurring" else CATEGORIES
        assert conv["style"] in STYLES and {q["category"] for q in conv["questions"]} == expected
        questions += len(conv["questions"])
    assert questions >= 300
    assert {conv["style"] for conv in convs} == STYLES


def test_paraphrased_questions_share_no_content_word_with_their_evidence():
    generator = load("recall_set_generator", DATA / "generate.py")
    for conv in conversations():
        text = {t["id"]: t["text"] for s in conv["sessions"] for t in s["turns"]}
        names = set(conv["speakers"])
        for q in conv["questions"]:
            if q["category"] == "paraphrased":
                evidence = set().union(*(generator.content_words(text[e], names) for e in q["evidence"]))
                assert not generator.shared_words(generator.content_words(q["question"], names), evidence), q


def test_each_session_exports_as_one_canonical_conversation_with_its_date_and_turn_ids():
    cr = bench()
    conv = cr.load_set(DATA, smoke=False)[0]
    parsed = parse_export(json.dumps(cr.canonical_export(conv)))
    assert len(parsed.conversations) == len(conv.sessions)
    for session, canonical in zip(conv.sessions, parsed.conversations, strict=True):
        assert canonical.created_at == session["date"]
        assert [m.message_id for m in canonical.messages] == [t["id"] for t in session["turns"]]
        assert [m.blocks[0].text for m in canonical.messages] == [t["text"] for t in session["turns"]]


def test_smoke_asks_two_questions_of_each_category_of_only_the_sessions_holding_their_evidence():
    cr = bench()
    (smoke,) = cr.load_set(DATA, smoke=True)
    full = cr.load_set(DATA, smoke=False)[0]
    assert smoke.cid == full.cid
    assert sorted(q.category for q in smoke.questions) == sorted([*CATEGORIES, *CATEGORIES])
    needed = {full.session_of[t] for q in smoke.questions for t in q.evidence}
    assert [s["session_id"] for s in smoke.sessions] == [s["session_id"] for s in full.sessions
                                                         if s["session_id"] in needed]
    assert len(smoke.sessions) < len(full.sessions)


def test_baselines_index_a_turns_words_alone_or_after_its_speakers_name(tmp_path):
    cr = bench()
    turns = [{"id": "t1", "speaker": "Priya", "text": "The lease ends in March."},
             {"id": "t2", "speaker": "Marco", "text": "My lease is fine."}]
    conv = cr.Conversation("c1", ["Priya", "Marco"], [{"session_id": "s1", "date": "2024-01-01T00:00:00Z",
                                                       "turns": turns}],
                           [cr.Question("q1", "Priya", "single-hop", ("t1",))])
    assert cr.bm25_rankings(conv, tmp_path, "speaker") == {"q1": ["t1"]}
    assert cr.bm25_rankings(conv, tmp_path, "text") == {"q1": []}


def test_rrf_sums_reciprocal_ranks_with_equal_weight():
    cr = bench()
    # a: 1/61 + 1/63, b: 1/62 + 1/61, c: 1/63, d: 1/62
    assert cr.rrf(["a", "b", "c"], ["b", "d", "a"]) == ["b", "a", "d", "c"]
    assert cr.rrf(["x"] * 0, ["y", "z"]) == ["y", "z"]


def test_scores_are_turn_recall_all_found_and_session_recall_per_question():
    cr = bench()
    sessions = {"t1": "s1", "t2": "s2", "t3": "s2"}.__getitem__
    two = cr.Question("q1", "?", "multi-hop", ("t1", "t2"))
    one = cr.Question("q2", "?", "single-hop", ("t3",))
    got = cr.Retrieved(frozenset({"t1"}), frozenset({"s1", "s2"}))
    scores = cr.score([(two, got, sessions), (one, got, sessions)])
    assert scores.turn_recall == pytest.approx((0.5 + 0.0) / 2)
    assert scores.all_found == 0.0
    assert scores.session_recall == pytest.approx((1.0 + 1.0) / 2)
    assert scores.questions == 2


@pytest.mark.slow
def test_smoke_imports_through_the_cli_and_prints_every_table(tmp_path):
    cr = bench()
    result = subprocess.run([sys.executable, str(REPO / "bench" / "cognition_recall.py"), "--smoke"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"imported conv01: 4 sessions, \d+ turns", out)
    number = r"(?:\d\.\d{3}|nan)"
    for k in (5, 15):
        block = out.split(f"## k = {k}: recall of the evidence turns")[1]
        overall = block.split("###")[0]
        assert "| method | turn recall | all evidence found | session recall |" in overall
        for method in cr.METHODS:
            row = rf"^\| {re.escape(cr.LABELS[method])} \| {number} \| {number} \| {number} \|$"
            assert re.search(row, overall, flags=re.M), method
        per_category = block.split(f"### k = {k}: turn recall per category")[1].split("##")[0]
        assert "| method | single-hop (2) | multi-hop (2) | temporal (2) | paraphrased (2) |" in per_category
        assert len(re.findall(rf"^\| [^|]+ \| {number} \| {number} \| {number} \| {number} \|$", per_category,
                              flags=re.M)) == len(cr.METHODS)
        per_style = block.split(f"### k = {k}: turn recall / session recall per conversation style")[1].split("##")[0]
        assert "| method | storylines (8) |" in per_style
        assert len(re.findall(rf"^\| [^|]+ \| {number} / {number} \|$", per_style, flags=re.M)) == len(cr.METHODS)
        per_conversation = block.split(f"### k = {k}: turn recall per conversation")[1].split("##")[0]
        assert "| method | conv01 (8) |" in per_conversation
        assert len(re.findall(rf"^\| [^|]+ \| {number} \|$", per_conversation, flags=re.M)) == len(cr.METHODS)
    cost = out.split("## assemble_topic: artifact size, time per call, dates")[1]
    row = r"^\| (5|15) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| \d+ \| \d+/8 \((yes|no)\) \| \d+ / \d+ \|$"
    assert len(re.findall(row, cost, flags=re.M)) == 2
    assert "evidence sessions without a dated excerpt at k = 15:" in cost
