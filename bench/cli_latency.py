"""How long `nexus query` takes as a user types it: a cold process each time.

    .venv/bin/python bench/cli_latency.py [--runs 5] [--smoke]
    NEXUS_EMBEDDER=onnx-int8 .venv/bin/python bench/cli_latency.py     # the int8 ONNX query embedder

On a fresh data root it builds one small space (the bundled model embeds a few sentences), then times, as
the median wall time of ``--runs`` fresh `nexus query` processes:

  cold, in process     the command alone: imports, config, the query's embedding, LanceDB search, output
  NEXUS_URL            the same command with NEXUS_URL naming a running `nexus serve` (warmed by one query)

Targets (issue 28, two idle cores): cold < 1.5 s, NEXUS_URL < 0.3 s. The 1-minute load average is printed
beside the figures: on a loaded machine they are not the targets' figures.
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


def main() -> int:
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
        time_query(env, 1)  # the first process may build caches (an int8 model export): not a typed query
        figures = {"cold": time_query(env, runs)}
        proc, url = serve(env)
        try:
            time_query({**env, "NEXUS_URL": url}, 1)  # the server loads its model on the first query
            figures["url"] = time_query({**env, "NEXUS_URL": url}, runs)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    load = os.getloadavg()[0]
    embedder = os.environ.get("NEXUS_EMBEDDER", "the config's")
    for name, label in (("cold", "cold process, in process"), ("url", "NEXUS_URL (nexus serve)")):
        verdict = "within" if figures[name] < TARGETS[name] else "OVER"
        print(f"nexus query, {label:<26} median {figures[name]:6.3f} s of {runs}  "
              f"(target < {TARGETS[name]} s: {verdict})")
    print(f"embedder: {embedder}; cores: {os.cpu_count()}; 1-min load average: {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
