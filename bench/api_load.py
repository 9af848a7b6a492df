"""Load on the HTTP API, bounded and on loopback only: requests/s and p50/p99 query latency for 1, 4 and 8
concurrent clients, then the cross-tenant stall: one tenant's query latency while another sends 30 MiB
bodies to every route that takes a body (ingest's are landed, the others' refused 413 past 1 MiB; target:
p99 within 2x of idle). The uploading tenant is its own process, as a real client would be.

    .venv/bin/python bench/api_load.py [--docs 300] [--queries 40] [--uploads 4] [--smoke]

It builds a throwaway Nexus home (acme and globex spaces embedded with the real model), runs
``nexus serve`` in a subprocess on a free loopback port, and drives it from threads with httpx.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.queues
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = ["how do I return a tent?", "which stove burns white gas?", "customs documents for export",
             "warranty on sleeping bags", "how heavy is the tent?", "shipping time to Norway"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_home(home: Path, docs: int) -> None:
    os.environ["NEXUS_HOME"] = str(home)
    os.environ.pop("NEXUS_CONFIG", None)
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import LocalProvider
    from nexus_query.store import Record, SpaceStore, build_rows

    provider, store = LocalProvider(), SpaceStore()
    for tenant in ("acme", "globex"):
        ctx = RequestContext(tenant)
        records = [Record(text=f"{tenant} note {i}: {QUESTIONS[i % len(QUESTIONS)]} Answer number {i}.",
                          source=f"{tenant}-{i}", metadata={"n": i % 7}) for i in range(docs)]
        space = store.open_or_create(ctx, "main", provider.info)
        space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info),
                     provider.info)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def query_once(client: httpx.Client, key: str, i: int) -> float:
    started = time.perf_counter()
    response = client.post("/nexus/spaces/main/query", headers={"Authorization": f"Bearer {key}"},
                           json={"q": QUESTIONS[i % len(QUESTIONS)], "top_k": 5})
    response.raise_for_status()
    return time.perf_counter() - started


def concurrent_queries(base: str, clients: int, per_client: int) -> tuple[float, list[float]]:
    def worker(c: int) -> list[float]:
        with httpx.Client(base_url=base, timeout=120) as client:
            return [query_once(client, "acme-demo-key", c * per_client + i) for i in range(per_client)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for part in pool.map(worker, range(clients)) for t in part]
    return len(latencies) / (time.perf_counter() - started), latencies


def max_size_body(limit: int) -> bytes:
    """A valid ingest body just under ``limit`` bytes: items of about 900 kB of text each."""
    item_chars = 900_000
    head, tail = b'{"items": [', b"]}"
    items, size = [], len(head) + len(tail)
    n = 0
    while True:
        item = b'{"type": "text", "content": "upload ' + str(n).encode() + b" " + b"u" * item_chars + b'"}'
        if size + len(item) + 2 > limit:
            break
        items.append(item)
        size += len(item) + 2
        n += 1
    return head + b", ".join(items) + tail


# Every route that takes a body, and what a 30 MiB body to it is answered (ingest's: landed).
BODY_ROUTES = {"/nexus/spaces/main/ingest": 202, "/nexus/spaces/main/query": 413,
               "/nexus/spaces/main/cognition/assemble": 413, "/nexus/spaces/main/erase": 413,
               "/nexus/spaces/main/haze/snapshot": 413, "/nexus/tasks/abc/retry": 413}


def send_large(client: httpx.Client, route: str, body: bytes) -> int:
    """The answer's status; a server that closes under a body it refused is a 413 too."""
    try:
        return client.post(route, content=body, headers={"Authorization": "Bearer acme-demo-key",
                                                          "Content-Type": "application/json"}).status_code
    except httpx.TransportError:
        return 413


def upload_rounds(base: str, uploads: int, ingest_bytes: int, large_body: int,
                  seconds: multiprocessing.queues.Queue, ready: Any) -> None:
    """acme's side of the stall, in its own process (as another tenant's client would be): the client's
    own work on a 30 MiB body (httpx joins it into one buffer) must not be counted as the server's."""
    ingest_body = max_size_body(ingest_bytes)
    junk = b'{"q": "tent", "junk": "' + b"j" * large_body + b'"}'
    with httpx.Client(base_url=base, timeout=300) as client:
        ready.set()
        for _ in range(uploads):
            for route, expected in BODY_ROUTES.items():
                started = time.perf_counter()
                status = send_large(client, route, ingest_body if expected == 202 else junk)
                assert status == expected, f"{route}: {status}"
                seconds.put((route, time.perf_counter() - started))


def stall(base: str, uploads: int, limit: int, queries_idle: int, large_body: int
          ) -> tuple[list[float], list[float], dict[str, float]]:
    """(idle query latencies of globex, its latencies while acme sends large bodies to every route,
    mean seconds per large body by route)."""
    with httpx.Client(base_url=base, timeout=120) as client:
        idle = [query_once(client, "globex-demo-key", i) for i in range(queries_idle)]
    context = multiprocessing.get_context("spawn")
    times, ready = context.Queue(), context.Event()
    uploader = context.Process(target=upload_rounds,
                               args=(base, uploads, min(limit, large_body), large_body, times, ready))
    uploader.start()
    busy: list[float] = []
    seconds: dict[str, list[float]] = {route: [] for route in BODY_ROUTES}
    ready.wait(timeout=120)  # its bodies built: measure from its first byte on
    with httpx.Client(base_url=base, timeout=120) as client:
        i = 0
        while uploader.is_alive() and i < 10_000:
            busy.append(query_once(client, "globex-demo-key", i))
            i += 1
    uploader.join()
    assert uploader.exitcode == 0, "the uploader failed"
    for _ in range(uploads * len(BODY_ROUTES)):
        route, took = times.get(timeout=10)
        seconds[route].append(took)
    return idle, busy, {route: statistics.mean(took) for route, took in seconds.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="documents per tenant space")
    parser.add_argument("--queries", type=int, default=40, help="queries per client per round")
    parser.add_argument("--uploads", type=int, default=4, help="rounds of 30 MiB bodies to every route while "
                                                                  "the other tenant queries")
    parser.add_argument("--body-mib", type=int, default=30, help="size of the large bodies")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.docs, args.queries, args.uploads, args.body_mib = 20, 3, 1, 4
    with tempfile.TemporaryDirectory(prefix="nexus-api-load-") as tmp:
        home = Path(tmp) / "home"
        print(f"building two spaces of {args.docs} documents ...", flush=True)
        build_home(home, args.docs)
        from nexus_query.config import load_config

        limit = load_config().api.max_body_bytes
        port = free_port()
        env = {**os.environ, "NEXUS_HOME": str(home), "PYTHONPATH": str(REPO)}
        exe = str(Path(sys.executable).with_name("nexus"))
        command = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=120) as client:  # warm: model loaded, snapshots built
                for key in ("acme-demo-key", "globex-demo-key"):
                    for i in range(3):
                        query_once(client, key, i)
            print(f"{'clients':>7}  {'req/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}")
            for clients in (1, 4, 8):
                rate, latencies = concurrent_queries(base, clients, args.queries)
                print(f"{clients:>7}  {rate:7.1f}  {percentile(latencies, 50) * 1000:7.1f}  "
                      f"{percentile(latencies, 99) * 1000:7.1f}", flush=True)
            idle, busy, per_route = stall(base, args.uploads, limit, args.queries, args.body_mib * 2**20)
            idle_p99, busy_p99 = percentile(idle, 99), percentile(busy, 99)
            print(f"\ncross-tenant stall: globex queries while acme sends {args.uploads} round(s) of "
                  f"{args.body_mib} MiB bodies to {len(BODY_ROUTES)} routes (ingest limit "
                  f"{limit / 2**20:.0f} MiB); seconds per body:")
            for route, mean in per_route.items():
                print(f"  {route:<40} {BODY_ROUTES[route]}  {mean:.2f} s")
            print(f"  idle: p50 {percentile(idle, 50) * 1000:.1f} ms, p99 {idle_p99 * 1000:.1f} ms "
                  f"({len(idle)} queries)")
            print(f"  busy: p50 {percentile(busy, 50) * 1000:.1f} ms, p99 {busy_p99 * 1000:.1f} ms, max "
                  f"{max(busy) * 1000:.1f} ms ({len(busy)} queries)")
            print(f"  p99 busy / idle: {busy_p99 / idle_p99:.2f}x (target <= 2x)")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
