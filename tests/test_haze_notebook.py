"""examples/haze.ipynb runs top to bottom in a real kernel against acme's example space and shows the map."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nexus_query.context import RequestContext
from nexus_query.store import Record, build_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts a Jupyter kernel
def test_the_haze_notebook_runs_top_to_bottom_and_draws_the_map(nexus_home, store, provider):
    records = [Record(text=item["content"], source=item["id"], metadata=item.get("metadata", {}))
               for path in sorted((REPO / "examples" / "data" / "acme").glob("*.jsonl"))
               for item in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if item]
    ctx = RequestContext("acme")
    space = store.open_or_create(ctx, "main", provider.info)
    space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info), provider.info)

    notebook = nbformat.read(REPO / "examples" / "haze.ipynb", as_version=4)
    # a hang guard per cell, not a speed check: the first UMAP call compiles numba code for a while
    before = sorted(p.name for p in (REPO / "examples").iterdir())
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "examples")}}).execute()  # as Jupyter starts it
    assert sorted(p.name for p in (REPO / "examples").iterdir()) == before

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    noise = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not noise  # no "Loading weights" bar, no TqdmWarning, no library warnings
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 3  # by cluster, by type, and the query's hits
    summary = next(o for o in outputs if "'umap'" in o.get("data", {}).get("text/plain", ""))
    assert f"'rows': {len(records)}" in summary["data"]["text/plain"]
    assert notebook.cells[-1].outputs[0]["data"]["text/plain"].endswith("map.html'")
