"""Import speed: ``nexus cognition import FILE --wait`` against embedding the same bricks, in one run.

    .venv/bin/python bench/cognition_import_speed.py [DIR] [--turns 600]

Takes the first sessions of the development set (``bench/data/conversations``, schema in its README)
until they hold ``--turns`` turns, writes them as one canonical export (one canonical conversation per
session, as ``bench/cognition_fusion_cv.py`` stores them) and times, in a fresh data root:

- the import: ``nexus cognition import FILE --wait`` in its own process, as a user runs it (start-up,
  model load, landing, chunking, embedding, writing, indexing: everything until it returns);
- the embedding: the same model, loaded once in this process, embedding the bricks that import stored,
  each as the model reads it (``bricks.vector_text``: the block without its who/when line; the model
  load is timed on its own and not counted).

It prints both and their ratio; issue 25 asks for an import of a 600-turn export at most 2x the embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.cognition_fusion_cv import DEFAULT_DATA, canonical_sessions_of  # noqa: E402

KEY = "acme-demo-key"  # the demo tenant's key in the default config
SPACE = "import-speed"
TARGET_RATIO = 2.0


def export_of(folder: Path, turns: int) -> tuple[list[dict], int]:
    """Canonical conversations (one per session) from the set's first sessions, ``turns`` turns or more."""
    sessions, count = [], 0
    for path in sorted(folder.glob("conv_*.json")):
        for session in canonical_sessions_of(json.loads(path.read_text(encoding="utf-8"))):
            if count >= turns:
                return sessions, count
            sessions.append(session)
            count += len(session["messages"])
    return sessions, count


def brick_texts() -> list[str]:
    from nexus_query.cognition.bricks import BRICK_KIND, vector_text
    from nexus_query.routing import RoutingRegistry
    from nexus_query.store import SpaceStore

    registry = RoutingRegistry.default()
    rows = SpaceStore(registry).open(registry.authenticate(KEY), SPACE).table.search().select(
        ["text", "metadata", "char_start"]).limit(None).to_list()
    bricks = [(r, meta) for r in rows if (meta := json.loads(r["metadata"])).get("kind") == BRICK_KIND]
    return [vector_text(r["text"], meta, r["char_start"]) for r, meta in bricks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--smoke", action="store_true", help="60 turns: proves the bench runs")
    args = parser.parse_args()
    if args.smoke:
        args.turns = 60
    sessions, turns = export_of(args.data, args.turns)
    with tempfile.TemporaryDirectory(prefix="nexus-import-speed-") as scratch:
        root = Path(scratch)
        os.environ.update(NEXUS_HOME=str(root / "home"), DAGSTER_HOME=str(root / "dagster"))
        os.environ.pop("NEXUS_CONFIG", None)  # the default config and its demo keys
        (root / "dagster").mkdir()
        export = root / "a chat export.json"
        export.write_text(json.dumps({"conversations": sessions}, ensure_ascii=False), encoding="utf-8")
        nexus = Path(sys.executable).with_name("nexus")
        started = time.perf_counter()
        done = subprocess.run([str(nexus), "cognition", "import", str(export), "--key", KEY, "--space", SPACE,
                               "--wait", "--json"], capture_output=True, text=True, check=False)
        import_s = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"import failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

        from nexus_query.embeddings import get_provider
        from nexus_query.routing import RoutingRegistry

        texts = brick_texts()
        started = time.perf_counter()
        provider = get_provider(RoutingRegistry.default().config)
        provider.embed(["warm up"])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        provider.embed(texts)
        embed_s = time.perf_counter() - started
    ratio = import_s / embed_s
    print(f"{len(sessions)} sessions, {turns} turns, {len(texts)} bricks")
    print(f"import (nexus cognition import --wait, own process): {import_s:.1f} s")
    print(f"embedding the same bricks in one process: {embed_s:.1f} s (model load {load_s:.1f} s, not counted)")
    print(f"ratio {ratio:.2f} (target <= {TARGET_RATIO:.1f}): {'holds' if ratio <= TARGET_RATIO else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
