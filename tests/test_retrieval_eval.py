"""bench/retrieval_eval.py: its metrics are the standard ones, and it runs end to end on a BEIR folder
through the Dagster ingest job and nexus_query."""

import importlib.util
import math
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "beir_tiny"


def load_module():
    spec = importlib.util.spec_from_file_location("retrieval_eval", REPO / "bench" / "retrieval_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ndcg_and_recall_match_hand_computed_values():
    ev = load_module()
    judged = {"a": 2, "b": 1, "c": 1}
    # ranks: b (gain 1) at 1, x at 2, a (gain 2) at 3
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ev.ndcg_at(["b", "x", "a"], judged) == pytest.approx(dcg / idcg)
    assert ev.ndcg_at(["a", "b", "c"], judged) == pytest.approx(1.0)
    assert ev.recall_at(["b", "x", "a"], judged) == pytest.approx(2 / 3)
    assert ev.recall_at(["x"] * 100 + ["a"], judged) == 0.0  # past the cut-off


def test_the_fixture_is_a_well_formed_beir_folder():
    ev = load_module()
    corpus = {d["_id"] for d in ev.read_jsonl(FIXTURE / "corpus.jsonl")}
    queries = {q["_id"] for q in ev.read_jsonl(FIXTURE / "queries.jsonl")}
    qrels = ev.read_qrels(FIXTURE / "qrels" / "test.tsv")
    assert set(qrels) < queries and {d for j in qrels.values() for d in j} <= corpus


@pytest.mark.slow
def test_it_ingests_through_the_pipeline_and_prints_the_scores_last(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "bench" / "retrieval_eval.py"), "--beir", str(FIXTURE)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"nDCG@10=(\d\.\d{4}) Recall@100=(\d\.\d{4})", last)
    assert match, last
    ndcg, recall = map(float, match.groups())
    assert ndcg >= 0.8 and recall == 1.0  # 20 documents, one topic each: a working search finds them all
    assert "8 queries" in result.stdout  # Q9 has no judgements and is not counted
