"""Retrieval quality on a BEIR-format folder, through the real ingestion path and nexus_query.

    .venv/bin/python bench/retrieval_eval.py --beir DIR [--mode vector|hybrid] [--groups acme,globex]
    .venv/bin/python bench/retrieval_eval.py --write-examples DIR   # a BEIR set from examples/data
    .venv/bin/python bench/retrieval_eval.py --smoke                # that set, written to a temporary folder

DIR holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
``qrels/test.tsv`` (``query-id``, ``corpus-id``, ``score``). The corpus is landed in a fresh temporary
Nexus home as a JSON-lines file and loaded by the Dagster ingest job (raw_docs -> chunks -> embeddings ->
space_table) for one partition; then every query with judgements runs through ``nexus_query.query``.
A document's rank is its best chunk's. The last line printed is ``nDCG@10=<x> Recall@100=<y>``
(nDCG with the judged score as gain, as trec_eval computes it).

``--groups A,B`` also measures how well a hit's score tells an answer from no answer. Corpus ids are
``group/...`` (as ``--write-examples`` writes them); each group's documents are ingested into a space of
their own, and each judged query is asked of its own group's space (in-domain: it has an answer) and of
every other group's space (out-of-domain: it has none). The line before the last is
``AUC=<a> out-of-domain cut=<c> in-domain kept=<k> at min_score=<m>``: the ROC AUC of the top hit's
score as a detector of in-domain queries, and the shares of out-of-domain queries whose top hit falls
below ``nexus_query.scoring.SUGGESTED_MIN_SCORE`` and of in-domain ones whose top hit stays.

``--write-examples`` turns the bundled example documents into a BEIR set: each JSON-lines document's
title is a query whose one relevant document is that document's text (without the title); ids are
``tenant/document``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SPACE_ID = "beir-eval"
CTX_TENANT = "acme"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(qrels)


def doc_item(doc: dict) -> dict:
    """A landing-zone item for one corpus document; BEIR ids may be anything, so the item id is derived
    and the original id travels in metadata."""
    text = "\n\n".join(part for part in (doc.get("title", "").strip(), doc["text"].strip()) if part)
    return {"id": "beir-" + hashlib.sha256(doc["_id"].encode()).hexdigest()[:24], "type": "text",
            "content": text, "metadata": {"beir_id": doc["_id"]}}


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(judged.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def ingest(corpus: list[dict], space_id: str = SPACE_ID) -> dict:
    """Land the corpus and run the ingest job for its partition; returns the space_table metadata."""
    import dagster as dg

    from nexus_pipelines.definitions import defs
    from nexus_pipelines.partitions import SpaceKey
    from nexus_query.context import RequestContext
    from nexus_query.landing import landing_zone

    ctx = RequestContext(CTX_TENANT)
    lines = "\n".join(json.dumps(doc_item(d), ensure_ascii=False) for d in corpus)
    landing_zone(ctx).files.write_bytes_atomic(lines.encode("utf-8"), "landing", space_id, "files", "corpus.jsonl")
    key = SpaceKey(ctx.tenant_id, ctx.project_id, space_id).partition_key
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [key])
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = defs.resolve_job_def("ingest_space").execute_in_process(partition_key=key, instance=instance,
                                                                          run_config=quiet)
        if not result.success:
            raise SystemExit("the ingest run failed")
        events = result.get_asset_materialization_events()
        table = [e.event_specific_data.materialization for e in events
                 if e.event_specific_data.materialization.asset_key.path[-1] == "space_table"]
        return {k: v.value for k, v in table[-1].metadata.items()} if table else {}


def ranked_docs(ctx, text: str, mode: str | None, depth: int = 100) -> list[str]:
    """Distinct corpus ids best first; a document ranks where its best chunk does."""
    from nexus_query.query import query

    ranked: list[str] = []
    cursor = None
    for _ in range(20):  # chunks of one document can crowd a page; following the cursor reaches depth
        result = query(ctx, SPACE_ID, text, top_k=2 * depth, mode=mode, cursor=cursor)
        for hit in result.hits:
            doc = hit.metadata.get("beir_id")
            if doc is not None and doc not in ranked:
                ranked.append(doc)
        cursor = result.next_cursor
        if len(ranked) >= depth or cursor is None:
            break
    return ranked[:depth]


def evaluate(folder: Path, mode: str | None) -> tuple[float, float, int]:
    from tqdm import tqdm

    from nexus_query.context import RequestContext
    from nexus_query.store import SpaceStore
    from nexus_query.store.lance_indexes import ensure_indexes

    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    qrels = {q: judged for q, judged in read_qrels(folder / "qrels" / "test.tsv").items() if q in queries}
    print(f"corpus {len(corpus)} documents, {len(qrels)} judged queries; ingesting through the Dagster job ...")
    loaded = ingest(corpus)
    ctx = RequestContext(CTX_TENANT)
    report = ensure_indexes(SpaceStore().open(ctx, SPACE_ID))
    print(f"space {SPACE_ID}: {report.rows} rows (ingest metadata: {loaded.get('rows', '?')} rows), "
          f"indexes created: {', '.join(report.created) or 'none'}")
    ndcgs, recalls = [], []
    for query_id, judged in tqdm(sorted(qrels.items()), desc=f"queries ({mode or 'default mode'})"):
        ranked = ranked_docs(ctx, queries[query_id], mode)
        ndcgs.append(ndcg_at(ranked, judged))
        recalls.append(recall_at(ranked, judged))
    return sum(ndcgs) / len(ndcgs), sum(recalls) / len(recalls), len(ndcgs)


@dataclass(frozen=True)
class Separation:
    """How well the top hit's score separates queries a space can answer from ones it cannot."""

    auc: float
    out_of_domain_cut: float  # share of out-of-domain queries whose top score is below min_score
    in_domain_kept: float  # share of in-domain queries whose top score is at least min_score
    min_score: float
    in_domain: int
    out_of_domain: int

    @classmethod
    def of(cls, inside: list[float], outside: list[float], min_score: float) -> Separation:
        """From the top scores of in-domain (``inside``) and out-of-domain (``outside``) queries."""
        from sklearn.metrics import roc_auc_score

        labels = [1] * len(inside) + [0] * len(outside)
        return cls(auc=float(roc_auc_score(labels, inside + outside)),
                   out_of_domain_cut=sum(s < min_score for s in outside) / len(outside),
                   in_domain_kept=sum(s >= min_score for s in inside) / len(inside),
                   min_score=min_score, in_domain=len(inside), out_of_domain=len(outside))


def top_score(ctx, space_id: str, text: str, mode: str | None) -> float:
    from nexus_query.query import query

    hits = query(ctx, space_id, text, top_k=1, mode=mode).hits
    return hits[0].score if hits else 0.0


def separation(folder: Path, groups: list[str], mode: str | None) -> Separation:
    """Each group's corpus in a space of its own; every judged query asked of its own group's space and
    of the others' (see the module docstring)."""
    from tqdm import tqdm

    from nexus_query.context import RequestContext
    from nexus_query.scoring import SUGGESTED_MIN_SCORE
    from nexus_query.store import SpaceStore
    from nexus_query.store.lance_indexes import ensure_indexes

    def group_of(doc_id: str) -> str:
        return doc_id.split("/", 1)[0]

    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    ctx = RequestContext(CTX_TENANT)
    spaces = {}
    for group in groups:
        docs = [d for d in corpus if group_of(d["_id"]) == group]
        if not docs:
            raise SystemExit(f"--groups: no document id starts with {group}/")
        spaces[group] = f"{SPACE_ID}-{group}"
        ingest(docs, spaces[group])
        ensure_indexes(SpaceStore().open(ctx, spaces[group]))
    asked = []
    for query_id, judged in sorted(read_qrels(folder / "qrels" / "test.tsv").items()):
        owners = {group_of(d) for d, gain in judged.items() if gain > 0}
        if query_id in queries and len(owners) == 1 and owners <= set(groups):
            asked.append((queries[query_id], owners.pop()))
    inside, outside = [], []
    for text, owner in tqdm(asked, desc=f"separation ({mode or 'default mode'})"):
        for group, space_id in spaces.items():
            (inside if group == owner else outside).append(top_score(ctx, space_id, text, mode))
    if not inside:
        raise SystemExit("--groups: no judged query has its relevant documents in one of the groups")
    return Separation.of(inside, outside, SUGGESTED_MIN_SCORE)


def write_examples(folder: Path) -> None:
    corpus, queries, qrels = [], [], []
    for path in sorted((REPO / "examples" / "data").glob("*/*.jsonl")):
        for item in read_jsonl(path):
            title = item.get("metadata", {}).get("title")
            if not title:
                continue
            doc_id = f"{path.parent.name}/{item['id']}"
            corpus.append({"_id": doc_id, "title": "", "text": item["content"]})
            queries.append({"_id": f"q-{doc_id}", "text": title})
            qrels.append((f"q-{doc_id}", doc_id, 1))
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(corpus)} documents and {len(queries)} queries to {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, help="a BEIR-format folder")
    parser.add_argument("--mode", choices=["vector", "hybrid"], help="ranking mode (default: nexus_query's)")
    parser.add_argument("--write-examples", type=Path, metavar="DIR", help="write a BEIR set from examples/data")
    parser.add_argument("--groups", metavar="A,B", help="also measure how the top score separates in-domain "
                        "from out-of-domain queries between these id groups (e.g. acme,globex)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works "
                        "(the example set, with --beir: that set)")
    args = parser.parse_args(argv)
    if args.smoke and not args.beir and not args.write_examples:
        args.beir = Path(tempfile.mkdtemp(prefix="nexus-beir-smoke-"))
        write_examples(args.beir)
    if args.write_examples:
        write_examples(args.write_examples)
        return 0
    if not args.beir:
        parser.error("--beir DIR is required")
    groups = [g for g in (args.groups or "").split(",") if g]
    if args.groups is not None and len(set(groups)) < 2:
        parser.error("--groups takes at least two groups, e.g. acme,globex")
    with tempfile.TemporaryDirectory(prefix="nexus-beir-") as home:
        os.environ["NEXUS_HOME"] = home  # a fresh Nexus home: routes, landing zone and space are temporary
        os.environ.pop("NEXUS_CONFIG", None)
        ndcg, recall, n = evaluate(args.beir, args.mode)
        split = separation(args.beir, list(dict.fromkeys(groups)), args.mode) if groups else None
    print(f"{n} queries, mode {args.mode or 'default'}")
    if split:
        print(f"separation: {split.in_domain} in-domain and {split.out_of_domain} out-of-domain top scores")
        print(f"AUC={split.auc:.4f} out-of-domain cut={split.out_of_domain_cut:.3f} "
              f"in-domain kept={split.in_domain_kept:.3f} at min_score={split.min_score}")
    print(f"nDCG@10={ndcg:.4f} Recall@100={recall:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
