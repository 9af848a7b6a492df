"""`make demo`: load the bundled example data for every demo space and show a sample query."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from nexus_query.cli import format_hits
from nexus_query.client import connect
from nexus_query.context import RequestContext
from nexus_query.embeddings import get_provider
from nexus_query.routing import RoutingRegistry
from nexus_query.store import Record, SpaceStore, build_rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
SAMPLES = [("acme-demo-key", "how do I return a tent?"), ("globex-demo-key", "documents for customs clearance")]


def example_records(folder: Path) -> list[Record]:
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                records.append(Record(text=item["content"], source=item["id"], type=item.get("type", "text"),
                                      metadata=item.get("metadata", {})))
    for path in sorted([*folder.glob("*.md"), *folder.glob("*.txt")]):
        records.append(Record(text=path.read_text(encoding="utf-8"), source=path.name, metadata={"source": path.name}))
    return records


def main() -> int:
    registry = RoutingRegistry.default()
    store = SpaceStore(registry)
    provider = get_provider()
    targets = [(RequestContext(t), EXAMPLES / t) for t in ("acme", "globex")]
    for ctx, folder in tqdm(targets, desc="embedding example spaces"):
        records = example_records(folder)
        space = store.open_or_create(ctx, "main", provider.info)
        result = space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info),
                              provider.info)
        print(f"{ctx.tenant_id}/main: {space.count()} rows (+{result.inserted} new, {result.updated} updated, "
              f"{result.unchanged} unchanged), table version {result.version}")
    for key, text in SAMPLES:
        nx = connect(api_key=key)
        print(f"\n{nx!r}  query: {text!r}")
        print(format_hits(nx.query("main", text, top_k=5).hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
