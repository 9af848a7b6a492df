"""How long one erasure takes, by space size: a space of N rows (appended in 10 writes, with a full-text
index and 10 older versions), one document erased, verified. Random unit vectors, no model.

    .venv/bin/python bench/erasure_bench.py --rows 1000 10000 50000 [--smoke]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run that proves the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.rows = [200]
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as home:
            os.environ["NEXUS_HOME"] = home
            os.environ.pop("NEXUS_CONFIG", None)
            from nexus_query.context import RequestContext
            from nexus_query.embeddings.base import EmbedderInfo
            from nexus_query.erasure import new_request, run_erasure, tenant_target
            from nexus_query.store import Record, SpaceStore, build_rows
            from nexus_query.store.lance_indexes import ensure_indexes

            ctx, info = RequestContext("acme"), EmbedderInfo(model="bench-random", dimension=384, provider="bench")
            space = SpaceStore().open_or_create(ctx, "main", info)
            rng = np.random.default_rng(7)
            for part in range(10):
                n = rows // 10
                records = [Record(text=f"document {part}-{i} about tents, stoves and returns", source=f"doc-{part}-{i}")
                           for i in range(n)]
                vectors = rng.normal(size=(n, 384)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                space.upsert(build_rows(ctx, records, vectors, info), info)
            ensure_indexes(space)
            started = time.perf_counter()
            receipt = run_erasure(tenant_target(ctx, "main"), new_request("main", "doc_ids", ["doc-3-7"]))
            seconds = time.perf_counter() - started
            print(f"{rows:>7} rows: erased {receipt.rows_deleted} row, rewrote {receipt.rows_rewritten}, "
                  f"removed {receipt.versions_removed} versions, rebuilt {receipt.indexes_rebuilt} index in "
                  f"{seconds:.2f} s (verified: {receipt.verified})")


if __name__ == "__main__":
    main()
