"""bench/retrieval_eval.py: its metrics are the standard ones, and it runs end to end on a BEIR folder
through the Dagster ingest job and nexus_query."""

import importlib.util
import json
import math
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

FIXTURE = REPO / "tests" / "fixtures" / "beir_tiny"


def load_module():
    spec = importlib.util.spec_from_file_location("retrieval_eval", REPO / "bench" / "retrieval_eval.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
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


def test_separation_is_the_roc_auc_of_top_scores_and_the_shares_at_the_cut():
    ev = load_module()
    split = ev.Separation.of(inside=[0.9, 0.8, 0.45], outside=[0.3, 0.85, 0.2, 0.5], min_score=0.5)
    # 12 (in, out) pairs; the in-domain score is higher in 9 of them (0.9 and 0.8 beat three each, 0.45 two)
    assert split.auc == pytest.approx(9 / 12)
    assert split.out_of_domain_cut == pytest.approx(2 / 4)  # 0.5 itself is kept: "below" is strict
    assert split.in_domain_kept == pytest.approx(2 / 3)
    assert (split.in_domain, split.out_of_domain) == (3, 4)


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


@pytest.mark.slow
def test_groups_ask_each_query_of_its_own_space_and_the_others(tmp_path):
    ev = load_module()
    folder = tmp_path / "grouped"
    (folder / "qrels").mkdir(parents=True)
    group = {f"D{i}": "outdoor" if i <= 10 else "other" for i in range(1, 21)}
    docs = ev.read_jsonl(FIXTURE / "corpus.jsonl")
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({**d, "_id": f"{group[d['_id']]}/{d['_id']}"})
                                                   for d in docs))
    (folder / "queries.jsonl").write_text((FIXTURE / "queries.jsonl").read_text())
    rows = [line.split("\t") for line in (FIXTURE / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{group[d]}/{d}\t{g}\n" for q, d, g in rows))
    result = subprocess.run([sys.executable, str(REPO / "bench" / "retrieval_eval.py"), "--beir", str(folder),
                             "--groups", "outdoor,other"], capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    # Q7 judges documents of both groups and is left out; the other seven are asked of both spaces
    assert "separation: 7 in-domain and 7 out-of-domain top scores" in result.stdout
    match = re.fullmatch(r"AUC=(\d\.\d{4}) out-of-domain cut=(\d\.\d{3}) in-domain kept=(\d\.\d{3}) "
                         r"at min_score=0\.5", lines[-2])
    assert match, lines[-2]
    assert 0.0 <= float(match.group(1)) <= 1.0
    assert re.fullmatch(r"nDCG@10=(\d\.\d{4}) Recall@100=(\d\.\d{4})", lines[-1])
