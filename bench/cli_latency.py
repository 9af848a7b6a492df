"""How long `nexus query` takes as a user types it: a cold process each time.

    .venv/bin/python bench/cli_latency.py [--runs 5] [--smoke]
    NEXUS_EMBEDDER=onnx-int8 .venv/bin/python bench/cli_latency.py     # the int8 ONNX query embedder

On a fresh data root it builds one small space (the bundled model embeds a few sentences), then times, as
the median wall time of ``--runs`` fresh `nexus query` processes:

  cold, in process     the command alone: imports, config, the query's embedding, LanceDB search, output
  NEXUS_URL            the same command with NEXUS_URL naming a running `nexus serve` (warmed by one query)
  serve: first/warm    over HTTP, the first query a freshly started `nexus serve` answers against the median
                       of the next ``--runs`` (each a different question: no cache hit of any kind), timed
                       by a client that has already made one request elsewhere

Targets (issue 28, two idle cores): cold < 1.5 s, NEXUS_URL < 0.3 s; (issue 26) first <= 1.5x warm. The
1-minute load average is printed beside the figures: on a loaded machine they are not the targets' figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NEXUS = str(Path(sys.executable).with_name("nexus"))
TEXTS = {
    "returns.md": "Tents can be returned within 60 days with the receipt.",
    "ferry.md": "The ferry timetable changes in June; the early boat leaves at 6:10.",
    "garden.txt": "Plant tomatoes along the south fence after the last frost.",
    "stove.md": "An Embercore stove from an affected batch is replaced free of charge.",
}
TARGETS = {"cold": 1.5, "url": 0.3}
FIRST_OVER_WARM = 1.5


def build_space(env: dict[str, str]) -> str:
    """A tenant, a key and a space with a few embedded rows; returns the key."""
    subprocess.run([NEXUS, "tenants", "add", "bench"], env=env, check=True, capture_output=True)
    key = subprocess.run([NEXUS, "keys", "create", "--tenant", "bench"], env=env, capture_output=True, text=True,
                         check=True)
    os.environ.update(env)
    from nexus_query.context import RequestContext
    from nexus_query.embeddings import get_provider
    from nexus_query.store import Record, SpaceStore, build_rows

    ctx = RequestContext("bench")
    provider = get_provider()
    records = [Record(text=t, source=s) for s, t in TEXTS.items()]
    space = SpaceStore().open_or_create(ctx, "main", provider.info)
    space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    return key.stdout.strip()


def time_query(env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([NEXUS, "query", "early boat to the island"], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0 or "ferry" not in done.stdout:
            raise SystemExit(f"nexus query failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return statistics.median(times)


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([NEXUS, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env)
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            raise SystemExit("nexus serve exited")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("nexus serve did not listen within 60 s")


def post_query(url: str, key: str, text: str) -> float:
    """Seconds for one query over HTTP (standard library only: what the server does, not the client)."""
    import json
    import urllib.request

    request = urllib.request.Request(f"{url}/nexus/spaces/main/query", data=json.dumps({"q": text}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return time.perf_counter() - start


WARM_QUESTIONS = ["ferry timetable in june", "can I return a tent", "when to plant tomatoes", "stove batch replaced",
                  "what time is the first boat", "receipt for a return", "south fence garden frost",
                  "is my stove affected", "boat to the island in summer", "how long do returns take"]


def warm_client() -> None:
    """One request elsewhere first: the first timed query then pays no first-use cost of this client."""
    from _client_warmup import throwaway_server

    with throwaway_server() as url:
        post_query(url, "none", "warm the client")


def first_vs_warm(url: str, key: str, runs: int) -> tuple[float, float]:
    """The first query against the median of the next ones, each a different question (as people ask)."""
    first = post_query(url, key, "when does the early boat leave")
    warm = [post_query(url, key, WARM_QUESTIONS[i % len(WARM_QUESTIONS)] + ("?" * (i // len(WARM_QUESTIONS))))
            for i in range(max(runs, 3))]
    return first, statistics.median(warm)


def main() -> int:
    from nexus_query.config import default_config
    from nexus_query.embeddings import resolved_provider_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="two runs of each (a quick check that it works)")
    args = parser.parse_args()
    runs = 2 if args.smoke else args.runs
    with tempfile.TemporaryDirectory(prefix="cli-latency-") as root:
        env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CONFIG", "NEXUS_URL", "NEXUS_API_KEY")}
        env.update(NEXUS_HOME=str(Path(root) / "home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
        env["NEXUS_API_KEY"] = build_space(env)
        embedder = resolved_provider_name(default_config())
        time_query(env, 1)  # the first process reads the cold files from disk: not a typed query
        figures = {"cold": time_query(env, runs)}
        warm_client()
        proc, url = serve(env)
        try:
            figures["first"], figures["warm"] = first_vs_warm(url, env["NEXUS_API_KEY"], runs)
            time_query({**env, "NEXUS_URL": url}, 1)  # the server loads its model on the first query
            figures["url"] = time_query({**env, "NEXUS_URL": url}, runs)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    load = os.getloadavg()[0]
    for name, label in (("cold", "cold process, in process"), ("url", "NEXUS_URL (nexus serve)")):
        verdict = "within" if figures[name] < TARGETS[name] else "OVER"
        print(f"nexus query, {label:<26} median {figures[name]:6.3f} s of {runs}  "
              f"(target < {TARGETS[name]} s: {verdict})")
    ratio = figures["first"] / figures["warm"]
    print(f"nexus serve, first query {figures['first'] * 1000:7.1f} ms, warm median {figures['warm'] * 1000:6.1f} ms: "
          f"{ratio:.2f}x (target <= {FIRST_OVER_WARM}x: {'within' if ratio <= FIRST_OVER_WARM else 'OVER'})")
    print(f"embedder: {embedder}; cores: {os.cpu_count()}; 1-min load average: {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
