"""HAZE projection against raw umap-learn on the same vectors, and a large space with a sampled fit.

    .venv/bin/python bench/haze_bench.py [--sizes 10000,50000] [--big 200000] [--sample-size 50000] [--no-big] [--smoke]

Vectors: a realistic clustered set (unit 384-d vectors around 40 topic centres of uneven size and
spread, like a sentence-embedding space; the real model would take over an hour to embed 200k texts on
two cores), each row with a short topic text, written into a LanceDB space through ``SpaceTable.upsert``.

For each of ``--sizes`` (side by side, in one process, after warming numba's JIT on both paths):
``project_space`` (read at a pinned version, PCA 50, UMAP cosine, placement, clusters, keywords, PNG,
HTML, writes) against ``umap.UMAP(metric="cosine", random_state=seed).fit_transform`` on the same
in-memory vectors. Target: ratio <= 1.1.
For ``--big``: ``project_space`` fitting on a sample of ``--sample-size`` rows and placing the rest, in
its own process so that its peak resident memory is its own. Targets: <= 300 s, <= 4 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DIM, TOPICS, SEED = 384, 40, 42
RATIO_TARGET, BIG_SECONDS_TARGET, BIG_MEMORY_TARGET_GB = 1.1, 300.0, 4.0


def clustered_vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(TOPICS, DIM)).astype(np.float32)
    weights = rng.dirichlet(np.full(TOPICS, 0.8))
    topic = rng.choice(TOPICS, size=n, p=weights)
    spread = rng.uniform(0.5, 0.9, TOPICS).astype(np.float32)
    vectors = centres[topic] + rng.normal(size=(n, DIM)).astype(np.float32) * spread[topic, None]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, topic


def build_space(home: Path, n: int) -> np.ndarray:
    """A tenant space of ``n`` rows under ``home``; returns the vectors (in row order)."""
    os.environ["NEXUS_HOME"] = str(home)
    from nexus_query.context import RequestContext
    from nexus_query.embeddings.base import EmbedderInfo
    from nexus_query.store import Record, SpaceStore, build_rows

    vectors, topic = clustered_vectors(n)
    embedder = EmbedderInfo("bench-clustered", DIM)
    ctx = RequestContext("acme")
    space = SpaceStore().open_or_create(ctx, "bench", embedder)
    for start in range(0, n, 50_000):
        rows = range(start, min(n, start + 50_000))
        records = [Record(text=f"topic{topic[i]} theme{topic[i] % 7} note about subject {topic[i]} number {i}",
                          source=f"doc-{i}") for i in rows]
        space.upsert(build_rows(ctx, records, vectors[start:start + len(records)], embedder), embedder)
    return vectors


def run_projection(home: Path, sample_size: int) -> dict:
    os.environ["NEXUS_HOME"] = str(home)
    from nexus_pipelines.haze.projection import project_space
    from nexus_pipelines.haze.reducer import ProjectionParams
    from nexus_query.context import RequestContext
    from nexus_query.haze import HazeStore
    from nexus_query.store import SpaceStore

    ctx = RequestContext("acme")
    started = time.perf_counter()
    result = project_space(SpaceStore().open(ctx, "bench"), HazeStore.for_context(ctx), "bench",
                           ProjectionParams(seed=SEED, sample_size=sample_size), refit=True)
    assert result.info is not None, "the bench space is not empty"
    return {"seconds": time.perf_counter() - started, "counts": dataclasses.asdict(result.counts),
            "timings": result.info.timings}


def raw_umap(vectors: np.ndarray) -> float:
    import umap

    started = time.perf_counter()
    umap.UMAP(metric="cosine", random_state=SEED).fit_transform(vectors)
    return time.perf_counter() - started


def child(args: argparse.Namespace) -> None:
    """``--child``: one big projection; prints its result and its own peak memory as JSON."""
    result = run_projection(Path(args.home), args.sample_size)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--big", type=int, default=200_000)
    parser.add_argument("--sample-size", type=int, default=50_000)
    parser.add_argument("--no-big", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.no_big, args.sample_size = "800", True, 500
    warm_points = 500 if args.smoke else 5_000
    warnings.filterwarnings("ignore")
    if args.child:
        return child(args)
    RESULTS.mkdir(exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    report: dict = {"cores": os.cpu_count(), "sizes": [], "big": None}
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        print(f"warming numba's JIT on both paths ({warm_points:,} points) ...", flush=True)
        warm = build_space(Path(tmp) / "warm", warm_points)
        raw_umap(warm)
        run_projection(Path(tmp) / "warm", args.sample_size)
        print(f"\n{'points':>8} {'raw umap-learn':>15} {'haze_projection':>16} {'ratio':>6} {'target':>7}  "
              f"breakdown (s)", flush=True)
        for n in sizes:
            vectors = build_space(Path(tmp) / f"n{n}", n)
            raw = raw_umap(vectors)
            ours = run_projection(Path(tmp) / f"n{n}", args.sample_size)
            ratio = ours["seconds"] / raw
            report["sizes"].append({"points": n, "raw_umap_seconds": raw, **ours, "ratio": ratio})
            steps = " ".join(f"{k}={v:.1f}" for k, v in ours["timings"].items() if k != "total")
            print(f"{n:>8,} {raw:>14.1f}s {ours['seconds']:>15.1f}s {ratio:>6.2f} {'<=' + str(RATIO_TARGET):>7}  "
                  f"{steps}", flush=True)
        if not args.no_big:
            home = Path(tmp) / f"n{args.big}"
            t = time.perf_counter()
            build_space(home, args.big)
            print(f"\nbuilt a {args.big:,}-row space in {time.perf_counter() - t:.0f}s; projecting with a "
                  f"{args.sample_size:,}-row sampled fit ...", flush=True)
            out = subprocess.run([sys.executable, __file__, "--child", "--home", str(home),
                                  "--sample-size", str(args.sample_size)], check=True, capture_output=True,
                                 text=True)
            big = json.loads(out.stdout.strip().splitlines()[-1])
            report["big"] = {"points": args.big, **big}
            steps = " ".join(f"{k}={v:.1f}" for k, v in big["timings"].items() if k != "total")
            print(f"{args.big:>8,} sampled fit on {big['counts']['anchors']:,}, placed {big['counts']['placed']:,}: "
                  f"{big['seconds']:.1f}s (target <= {BIG_SECONDS_TARGET:.0f}s), peak memory "
                  f"{big['peak_rss_gb']:.2f} GB (target <= {BIG_MEMORY_TARGET_GB:.0f} GB)  {steps}", flush=True)
    if not args.smoke:  # a smoke run's figures mean nothing: the last real report stays
        (RESULTS / "haze_bench.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
