"""Freshness: how long from posting a small batch to finding it, and what bulk ingest costs.

    python bench/freshness.py [--items 20] [--bulk 1000] [--path fast|sensors] [--no-daemon] [--smoke]

On a fresh data root it starts a real ``dagster dev`` (daemon, sensors on) and ``nexus serve`` on loopback,
posts ``--items`` one-item batches to ``POST /nexus/spaces/main/ingest`` one after another, and for each
polls the task and the query endpoint: p50 and p99 of post → task ``succeeded`` and post → found by a query.
``--path fast`` (the default) is ``nexus serve`` with ``$DAGSTER_HOME`` set, so it ingests small batches
itself (``nexus_pipelines.ingest.fast``); ``--path sensors`` leaves them to the daemon's sensors and runs
(what every batch did before the fast path). Then it times the server's first query after start against
warm ones, and lands a ``--bulk``-document batch with ``land_and_wait`` (a pipeline run in this process)
against a raw ``embed`` of the same chunks by the embedder the pipeline used (the space's, int8 ONNX by
default; ``NEXUS_EMBEDDER=local`` for the float32 model), side by side.

``--smoke``: 3 items, 50 bulk documents, no ``dagster dev`` (the fast path records in the same instance
without a daemon): a quick check that it all works.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _client_warmup import throwaway_server  # noqa: E402

from tests.helpers import free_port, stop, wait_for_port  # noqa: E402

BIN = Path(sys.executable).parent
KEY = {"Authorization": "Bearer acme-demo-key"}
POLL = 0.05  # seconds between polls of the task and the query
ITEM_TIMEOUT = 600.0  # give up on one item after this long (the sensors path takes about 90 s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def start_dagster_dev(env: dict[str, str], log: Path) -> subprocess.Popen:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, proc, attempts=3000)
    return proc


def start_serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int, float]:
    """``nexus serve`` on a free port; with the seconds it took to listen (it warms up first)."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([str(BIN / "nexus"), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc, attempts=6000)
    return proc, port, time.monotonic() - started


def found(http: httpx.Client, needle: str, source: str) -> bool:
    """Whether a query sees the item: filtered to its source, so what is timed is when it becomes visible,
    not where the ranking puts it among 20 notes that differ in one word."""
    hits = http.post("/nexus/spaces/main/query", json={"q": needle, "top_k": 3, "filters": {"source": source}}
                     ).json().get("hits", [])
    return any(needle in hit["content"] for hit in hits)


def post_and_follow(http: httpx.Client, number: int) -> tuple[float, float]:
    """Post one item; seconds until its task succeeded and until a query finds it."""
    needle = f"freshness-canary-{number}-{os.urandom(4).hex()}"
    started = time.monotonic()
    answer = http.post("/nexus/spaces/main/ingest", json={"items": [
        {"type": "text", "content": f"Note {number}: the field kit checklist names {needle}.",
         "metadata": {"source": f"note {number}.md"}}]})
    answer.raise_for_status()
    task_id = answer.json()["task_id"]
    succeeded = queryable = None
    while time.monotonic() - started < ITEM_TIMEOUT and (succeeded is None or queryable is None):
        now = time.monotonic() - started
        if succeeded is None:
            status = http.get(f"/nexus/tasks/{task_id}").json()["status"]
            if status == "failed":
                raise RuntimeError(f"task {task_id} failed")
            if status == "succeeded":
                succeeded = now
        if queryable is None and found(http, needle, f"note {number}.md"):
            queryable = now
        time.sleep(POLL)
    if succeeded is None or queryable is None:
        raise RuntimeError(f"item {number} not settled within {ITEM_TIMEOUT:.0f} s")
    return succeeded, queryable


def first_and_warm_queries(http: httpx.Client) -> tuple[float, float]:
    """The server's first query, then the median of 10 more (different texts, so nothing is cached)."""
    def timed(q: str) -> float:
        started = time.monotonic()
        http.post("/nexus/spaces/main/query", json={"q": q, "top_k": 5}).raise_for_status()
        return time.monotonic() - started

    with throwaway_server() as url:  # the client's own first request is not the server's first query
        httpx.post(url, json={})
    first = timed("what is on the field kit checklist?")
    return first, statistics.median(timed(f"checklist question number {i}") for i in range(10))


def seed() -> None:
    """One document in space ``main`` before the servers start, so the first query has a space to read."""
    from nexus_pipelines.ingest.fast import land_and_wait
    from nexus_query.context import RequestContext

    landed = land_and_wait(RequestContext("acme"), "main", [{"type": "text", "metadata": {"source": "kit.md"},
                                                             "content": "The field kit checklist: stove, tent."}])
    if not landed.succeeded:
        raise RuntimeError(f"seeding failed: {landed.error}")


def bulk(count: int) -> dict[str, Any]:
    """A ``count``-document batch through ``land_and_wait`` (a pipeline run here), and a raw ``embed`` of the
    chunks it wrote by the embedder that wrote them."""
    from nexus_pipelines.ingest.fast import land_and_wait
    from nexus_query.config import default_config
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import get_provider, provider_for_space
    from nexus_query.store import SpaceStore

    ctx = RequestContext("acme")
    items = [{"type": "text", "metadata": {"source": f"bulk {i}.md"},
              "content": f"Document {i}. " + " ".join(f"Section {j} of document {i} covers tents, stoves, returns "
                                                       f"and shipping rule {i * 7 + j}." for j in range(6))}
             for i in range(count)]
    get_provider().embed(["load the model before timing"])
    started = time.monotonic()
    landed = land_and_wait(ctx, "bulk", items)
    pipeline = time.monotonic() - started
    if not landed.succeeded:
        raise RuntimeError(f"bulk batch failed: {landed.error}")
    space = SpaceStore().open(ctx, "bulk")
    texts = space.table.to_arrow().column("text").to_pylist()
    provider = provider_for_space(default_config(), space.embedder)  # the embedder the pipeline used
    started = time.monotonic()
    provider.embed(texts)
    raw = time.monotonic() - started
    return {"documents": count, "chunks": len(texts), "path": landed.path, "pipeline_s": pipeline,
            "raw_encode_s": raw, "pipeline_docs_per_s": count / pipeline, "raw_docs_per_s": count / raw,
            "ratio": raw / pipeline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20, help="one-item batches posted one after another")
    parser.add_argument("--bulk", type=int, default=1000, help="documents in the bulk batch (0: skip)")
    parser.add_argument("--path", choices=["fast", "sensors"], default="fast",
                        help="fast: nexus serve ingests small batches; sensors: the daemon's runs do")
    parser.add_argument("--no-daemon", action="store_true", help="no dagster dev (only with --path fast)")
    parser.add_argument("--smoke", action="store_true", help="3 items, 50 bulk documents, no dagster dev")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.bulk, args.no_daemon = 3, 50, True
    if args.no_daemon and args.path == "sensors":
        parser.error("--path sensors needs the daemon")

    root = Path(tempfile.mkdtemp(prefix="nexus-freshness-"))
    nexus_home, dagster_home = root / "nexus", root / "dagster"
    nexus_home.mkdir()
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ.update(NEXUS_HOME=str(nexus_home), DAGSTER_HOME=str(dagster_home))
    os.environ.pop("NEXUS_CONFIG", None)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    serve_env = dict(env)
    if args.path == "sensors":
        serve_env.pop("DAGSTER_HOME")  # no instance to record in: nexus serve leaves batches to the sensors
    procs: list[subprocess.Popen] = []
    seed()
    try:
        if not args.no_daemon:
            procs.append(start_dagster_dev(env, root / "dagster-dev.log"))
        serve, port, start_s = start_serve(serve_env, root / "serve.log")
        procs.append(serve)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=KEY, timeout=120) as http:
            first, warm = first_and_warm_queries(http)
            times = [post_and_follow(http, n) for n in range(args.items)]
        succeeded, queryable = [t[0] for t in times], [t[1] for t in times]
        result: dict = {
            "path": args.path, "daemon": not args.no_daemon, "items": args.items,
            "succeeded_p50_s": percentile(succeeded, 0.5), "succeeded_p99_s": percentile(succeeded, 0.99),
            "queryable_p50_s": percentile(queryable, 0.5), "queryable_p99_s": percentile(queryable, 0.99),
            "serve_start_s": start_s, "first_query_s": first, "warm_query_s": warm}
    finally:
        for proc in reversed(procs):
            stop(proc)
    if args.bulk:
        result["bulk"] = bulk(args.bulk)

    print(f"\nfreshness, {args.items} one-item batches, path {args.path} "
          f"({'with' if result['daemon'] else 'without'} dagster dev):")
    print(f"  post -> task succeeded   p50 {result['succeeded_p50_s']:7.2f} s   p99 {result['succeeded_p99_s']:7.2f} s")
    print(f"  post -> found by a query p50 {result['queryable_p50_s']:7.2f} s   p99 {result['queryable_p99_s']:7.2f} s")
    print(f"nexus serve: listening after {start_s:.1f} s (warmed up); first query {1000 * first:.0f} ms, "
          f"warm {1000 * warm:.0f} ms ({first / warm:.2f}x)")
    if args.bulk:
        b = result["bulk"]
        print(f"bulk, {b['documents']} documents ({b['chunks']} chunks, path {b['path']}): pipeline "
              f"{b['pipeline_s']:.1f} s = {b['pipeline_docs_per_s']:.1f} docs/s | raw embed {b['raw_encode_s']:.1f} s "
              f"= {b['raw_docs_per_s']:.1f} docs/s | pipeline at {b['ratio']:.2f}x raw embed")
    if args.json:
        print(json.dumps(result, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
