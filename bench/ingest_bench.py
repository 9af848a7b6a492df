"""Ingest pipeline throughput against raw SentenceTransformer.encode of the same chunk texts, the cost of
re-running an unchanged partition, and peak memory, measured side by side in one run.

    .venv/bin/python bench/ingest_bench.py [--docs 2000] [--rounds 2] [--memory-docs 0] [--smoke]

N synthetic short documents (an outdoor-gear retailer's support notes, 25 to 90 words; one in ten a
longer guide of several chunks; all distinct, deterministic) land as API batches of 1,000 items in a
fresh Nexus home. The model is loaded and warmed first; then, ``--rounds`` times, alternating so that
load from other processes hits both sides alike:

  raw encode      SentenceTransformer.encode(chunk texts, batch_size=64, normalize_embeddings=True)
                  over the chunk texts the pipeline produced (read from its chunks Parquet)
  pipeline        the ingest_space job for the partition, in process on an ephemeral Dagster instance,
                  timed end to end (landing zone read, chunking, embedding, Parquet, LanceDB upsert,
                  compaction, checks, Dagster's own bookkeeping), each round on a fresh store
  re-run          the same job again on the unchanged partition
  int8 embed      the onnx-int8 embedder (all-MiniLM-L6-v2 exported and quantized to int8 from the
                  bundled weights) over the same chunk texts; target >= 1.2x raw encode in chunks/s.
                  Its retrieval quality: NEXUS_EMBEDDER=onnx-int8 bench/retrieval_eval.py (README)

The pipeline embeds with the float32 model here (``NEXUS_EMBEDDER=local`` unless set), so that it and raw
encode run the same model; the int8 row compares the default of new spaces against it.

Best of the rounds is reported, in wall-clock seconds and in CPU seconds of this process (the steadier
figure when other processes share the cores: both sides run here, with the same torch threads).
Targets: pipeline chunks/s >= 0.85 x raw encode; re-run <= 5% of the first run. ``--memory-docs N``
also runs the pipeline alone over N documents in a child process and reports that process's peak
resident memory (target: <= 2.5 GB for 100,000 short documents). Its documents cycle through 2,000
texts, so the model embeds 2,000 texts rather than N (hours on two cores) while reading, chunking,
Parquet, the table (N rows), deletes and checks all run at full size.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("DAGSTER_HOME", None)  # an ephemeral Dagster instance: nothing of the bench outlives it

PARTITION = "acme.default.main"
THROUGHPUT_TARGET, RERUN_TARGET, MEMORY_TARGET_GB = 0.85, 0.05, 2.5
INT8_TARGET = 1.2  # the int8 embedder's chunks/s over raw encode
MEMORY_DISTINCT_TEXTS = 2000  # the memory run's documents cycle through this many texts
PRODUCTS = ["Ridgeline 2 tent", "Ridgeline 3 tent", "Basecamp 6 tent", "Embercore stove", "Stormline jacket",
            "Cascade rain shell", "Nordic 0C sleeping bag", "Ridgeback 45 pack", "Lumen 400 headlamp",
            "Alpine trekking poles", "Granite approach shoes", "Basecamp cooler", "Trailhead camp chair"]
CITIES = ["Denver", "Portland", "Boise", "Salt Lake City", "Anchorage", "Duluth", "Asheville", "Bend", "Tucson"]
SENTENCES = [
    "A customer in {c} asked whether the {p} can be returned after {n} days of use.",
    "The {p} ordered on order {o} arrived with a bent part and was replaced within {n} days.",
    "Store staff in {c} report that the {p} sells out every weekend in spring.",
    "Warranty claim {o} for the {p} was approved because the seam tape failed after {n} months.",
    "The {p} weighs {w} grams and packs down to the size of a water bottle.",
    "Shipping the {p} to {c} takes {n} working days with the standard service.",
    "Customers compare the {p} with last year's model and ask about the {w} gram difference.",
    "An on-call engineer traced slow checkout for the {p} page to a cache miss in {c}.",
    "The repair centre in {c} fixed {n} zips on the {p} this month.",
    "Inventory in {c} shows {n} units of the {p}, with {w} more due next week.",
]


def synthetic_items(n: int, distinct: int | None = None, seed: int = 7) -> list[dict]:
    """``n`` documents, all different, or cycling through ``distinct`` texts (each document still its own
    id and rows: the model then embeds each text once and every other path runs at full size)."""
    rng = random.Random(seed)
    texts = []
    for i in range(distinct or n):
        count = rng.randint(18, 30) if i % 10 == 0 else rng.randint(2, 6)
        texts.append(f"Note {i}. " + " ".join(
            rng.choice(SENTENCES).format(p=rng.choice(PRODUCTS), c=rng.choice(CITIES), n=rng.randint(2, 90),
                                         o=f"A{rng.randint(10000, 99999)}", w=rng.randint(300, 4000))
            for _ in range(count)))
    return [{"type": "text", "id": f"note-{i}", "content": texts[i % len(texts)],
             "metadata": {"source": "support-notes", "topic": ("returns", "warranty", "stock")[i % 3]}}
            for i in range(n)]


def fresh_home(items: list[dict]) -> None:
    """A new Nexus home holding the documents as landed API batches."""
    os.environ["NEXUS_HOME"] = home = tempfile.mkdtemp(prefix="nexus-ingest-bench-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    from nexus_query.context import RequestContext
    from nexus_query.landing import landing_zone

    zone = landing_zone(RequestContext("acme"))
    for start in range(0, len(items), 1000):
        zone.land_batch("main", items[start:start + 1000])


def run_pipeline() -> tuple[float, float, dict]:
    """One ingest_space run for the partition: wall and CPU seconds, and space_table's metadata."""
    import dagster as dg

    from nexus_pipelines.definitions import defs

    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        started, cpu = time.perf_counter(), time.process_time()
        result = defs.resolve_job_def("ingest_space").execute_in_process(
            partition_key=PARTITION, instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.success
    table = result.asset_materializations_for_node("space_table")[0].metadata
    return seconds, cpu, {k: v.value for k, v in table.items()}


def chunk_texts() -> list[str]:
    import pyarrow.parquet as pq

    from nexus_pipelines.partitions import SpaceKey
    from nexus_pipelines.resources import NexusResource

    files = NexusResource().files(SpaceKey.parse(PARTITION))
    return pq.read_table(files.path("pipelines", "chunks", "main.parquet"), columns=["text"]).column("text").to_pylist()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # Linux reports KiB


def memory_only(docs: int) -> None:
    """Child process: land, run the pipeline, then again unchanged; print peak RSS and timings as JSON."""
    fresh_home(synthetic_items(docs, distinct=MEMORY_DISTINCT_TEXTS))
    seconds, _, table = run_pipeline()
    rerun, _, _ = run_pipeline()
    print(json.dumps({"docs": docs, "rows": table["rows"], "seconds": round(seconds, 1), "rerun": round(rerun, 1),
                      "peak_rss_gb": peak_rss_gb()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-docs", type=int, default=0, help="also measure peak memory over this many docs")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 ONNX Runtime embedder (needs [onnx])")
    parser.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.docs, args.rounds, args.memory_docs, args.no_int8 = 40, 1, 0, True
    if args.pipeline_only:
        memory_only(args.docs)
        return 0

    os.environ.setdefault("NEXUS_EMBEDDER", "local")  # the pipeline and raw encode: one model (docstring)
    from nexus_query.embeddings import get_provider

    items = synthetic_items(args.docs)
    model = get_provider().model
    model.encode(["warm up the model and its thread pool"] * 128, batch_size=64)
    int8 = None
    if not args.no_int8:  # the int8 ONNX Runtime embedder, exported here from the bundled weights
        from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider

        started = time.perf_counter()
        int8 = OnnxInt8Provider(cache_dir=tempfile.mkdtemp(prefix="nexus-bench-models-"))
        int8.embed(["warm up the model and its thread pool"] * 128)
        print(f"int8 ONNX model exported and loaded in {time.perf_counter() - started:.1f} s", flush=True)
    raw, first_run, rerun, raw_int8 = [], [], [], []  # (wall, cpu) seconds per round
    for round_ in range(args.rounds):
        fresh_home(items)
        *timing, first = run_pipeline()
        first_run.append(timing)
        *timing, again = run_pipeline()
        rerun.append(timing)
        assert again["rows_added"] == again["rows_updated"] == again["rows_deleted"] == 0
        texts = chunk_texts()
        started, cpu = time.perf_counter(), time.process_time()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        raw.append((time.perf_counter() - started, time.process_time() - cpu))
        if int8 is not None:
            started, cpu = time.perf_counter(), time.process_time()
            int8.embed(texts)
            raw_int8.append((time.perf_counter() - started, time.process_time() - cpu))
            print(f"   int8 ONNX embed {raw_int8[-1][0]:.1f}/{raw_int8[-1][1]:.1f}", flush=True)
        print(f"round {round_ + 1} (wall/cpu s): pipeline {first_run[-1][0]:.1f}/{first_run[-1][1]:.1f}, re-run "
              f"{rerun[-1][0]:.2f}/{rerun[-1][1]:.2f}, raw encode {raw[-1][0]:.1f}/{raw[-1][1]:.1f} "
              f"({len(texts)} chunks)", flush=True)
    chunks = first["rows"]
    print(f"\n{args.docs} documents -> {chunks} chunks, best of {args.rounds} rounds; wall clock, and CPU time of "
          f"this process (steadier when other processes share the cores)")
    for label, index in (("wall", 0), ("cpu", 1)):
        best_raw, best_first, best_rerun = (min(t[index] for t in runs) for runs in (raw, first_run, rerun))
        print(f"  [{label}] raw SentenceTransformer.encode {best_raw:7.1f} s {chunks / best_raw:7.1f} chunks/s")
        print(f"  [{label}] pipeline, first run            {best_first:7.1f} s {chunks / best_first:7.1f} chunks/s"
              f"   ratio {best_raw / best_first:.2f} (target >= {THROUGHPUT_TARGET})")
        print(f"  [{label}] pipeline, unchanged re-run     {best_rerun:7.2f} s"
              f"   {best_rerun / best_first:.1%} of the first run (target <= {RERUN_TARGET:.0%})")
        if raw_int8:
            best_int8 = min(t[index] for t in raw_int8)
            ratio = best_raw / best_int8
            print(f"  [{label}] int8 ONNX Runtime embed        {best_int8:7.1f} s {chunks / best_int8:7.1f} chunks/s"
                  f"   {ratio:.2f}x raw encode "
                  f"(target >= {INT8_TARGET}x: {'PASS' if ratio >= INT8_TARGET else 'FAIL'})")
    print(f"  peak RSS of this process        {peak_rss_gb():7.2f} GB")
    if args.memory_docs:
        child = subprocess.run([sys.executable, __file__, "--pipeline-only", "--docs", str(args.memory_docs)],
                               capture_output=True, text=True, check=True)
        found = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  pipeline alone over {found['docs']} documents ({found['rows']} rows, {MEMORY_DISTINCT_TEXTS} "
              f"distinct texts): {found['seconds']} s, unchanged re-run {found['rerun']} s, "
              f"peak RSS {found['peak_rss_gb']:.2f} GB (target <= {MEMORY_TARGET_GB} GB at 100,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
