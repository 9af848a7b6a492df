"""examples/analyst.ipynb runs top to bottom on example data ingested by the real pipeline."""

import re
import shutil

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient

from nexus_pipelines.common.in_process import QUIET
from nexus_pipelines.definitions import defs
from nexus_pipelines.demo import land_examples
from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.resources import NexusResource
from tests.helpers import REPO

NOTEBOOK = REPO / "examples" / "analyst.ipynb"
SUBSET = {SpaceKey("acme", "default", "main"): ["acme/returns.jsonl", "acme/products.jsonl"],
          SpaceKey.global_space(): ["global/latency.jsonl"]}


@pytest.mark.slow
def test_the_analyst_notebook_runs_top_to_bottom_with_its_kernel_in_examples(nexus_home, tmp_path, monkeypatch):
    # As Jupyter starts it: the kernel's folder is examples/, and no NEXUS_HOME says where the data is.
    # The config file does (a relative data_root is relative to the file), never the current folder.
    config = nexus_home.parent / "nexus.yaml"
    config.write_text((REPO / "nexus_query" / "default_config.yaml").read_text()
                      .replace("data_root: ${NEXUS_HOME:-}", f"data_root: {nexus_home.name}"))
    monkeypatch.delenv("NEXUS_HOME")
    monkeypatch.setenv("NEXUS_CONFIG", str(config))
    before = sorted(p.name for p in (REPO / "examples").iterdir())
    nexus = NexusResource()
    assert nexus.registry.config.data_root == nexus_home
    for key, files in SUBSET.items():
        folder = tmp_path / key.space_id / key.tenant_id
        folder.mkdir(parents=True)
        for name in files:
            shutil.copy(REPO / "examples" / "data" / name, folder)
        land_examples(nexus.files(key), key.space_id, folder)
    job = defs.resolve_job_def("ingest_space")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [k.partition_key for k in SUBSET])
        for key in SUBSET:
            assert job.execute_in_process(partition_key=key.partition_key, instance=instance, run_config=QUIET).success

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "examples")}}).execute()
    assert sorted(p.name for p in (REPO / "examples").iterdir()) == before  # no stray .nexus there

    outputs = {i: cell.outputs for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    errors = [o for cell in outputs.values() for o in cell if o.output_type == "error"]
    assert not errors
    noise = [o.text for cell in outputs.values() for o in cell if o.output_type == "stream" and o.name == "stderr"]
    assert not noise  # no "Loading weights" bar, no TqdmWarning, no library warnings
    text = "\n".join(str(o.get("data", {}).get("text/plain", o.get("text", ""))) for cell in outputs.values()
                     for o in cell)
    assert "Nexus(tenant='acme'" in text and "best match: ret-how-to-return-tent" in text
    assert "global" in text and "latency" in text  # the global space was merged in
    assert "400 {'error': {'code': 'nexus.invalid_filter'" in text  # errors are typed and enveloped
    real, nonsense = map(float, re.search(r"top score: real question (\S+), nonsense (\S+)", text).groups())
    assert real >= 0.5 and nonsense < 0.6 * real
    assert re.search(r"kept at min_score: [1-9]\d* vs 0", text)
    assert any("image/png" in o.get("data", {}) for cell in outputs.values() for o in cell)  # the histogram
