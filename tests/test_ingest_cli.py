"""``nexus ingest PATH... --key K --space S [--wait]`` and ``nexus tasks``: files and folders land as one
task whose id is printed; --wait ingests them here, without a daemon, and the space is searchable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nexus_query.cli import main
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.store import Record, SpaceStore, build_rows

ACME = RequestContext("acme")
EXPORT = Path(__file__).resolve().parents[1] / "examples" / "data" / "acme" / "conversations"


@pytest.fixture
def folder(tmp_path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "stove.md").write_text("# Embercore stove\n\nThe Embercore stove weighs 2.1 kg and burns white gas.\n")
    (docs / "sub" / "items.jsonl").write_text(json.dumps({"type": "text", "id": "returns",
                                                          "content": "Tents can be returned within 60 days."}) + "\n")
    (docs / "tent.png").write_bytes(b"\x89PNG not really")
    (docs / "tent.png.json").write_text(json.dumps({"caption": "a green dome tent", "metadata": {"color": "green"}}))
    (docs / "notes.bin").write_bytes(b"\x00\x01")
    for export in EXPORT.glob("*.json"):
        shutil.copy(export, docs / export.name)
    return docs


def test_ingest_lands_a_folder_as_one_queued_task_and_prints_its_id(nexus_home, folder, capsys):
    assert main(["ingest", str(folder), "--key", "acme-demo-key", "--space", "notes"]) == 0
    out, err = capsys.readouterr()
    task_id = out.splitlines()[0]
    zone = landing_zone(ACME)
    task = zone.read_task(task_id)
    assert task.status == "queued" and task.counts == {"items": 3, "files": 1}
    batch = zone.read_batch("notes", task_id)
    assert sorted(i["type"] for i in batch["items"]) == ["image", "text", "text"]
    image = next(i for i in batch["items"] if i["type"] == "image")
    assert image["content"] == "a green dome tent"
    assert zone.files.read_bytes(image["blob_path"]) == b"\x89PNG not really"
    assert batch["files"][0].startswith("landing/notes/files/conversations/")
    assert "notes.bin" in err and "skipped" in err


@pytest.mark.slow
def test_ingest_wait_makes_the_files_searchable_and_reports_rows_and_the_final_state(nexus_home, folder, capsys,
                                                                                      provider):
    assert main(["ingest", str(folder / "stove.md"), str(folder / "sub"), "--key", "acme-demo-key",
                 "--space", "notes", "--wait"]) == 0
    out, _ = capsys.readouterr()
    task_id = out.splitlines()[0]
    assert "rows: 2 in the space (2 added, 0 updated, 0 unchanged, 0 deleted)" in out
    assert out.strip().endswith(f"task {task_id}: succeeded")
    hits = query(ACME, "notes", "how heavy is the stove?", top_k=1).hits
    assert "2.1 kg" in hits[0].content
    assert main(["ingest", str(folder / "stove.md"), "--key", "acme-demo-key", "--space", "notes", "--wait"]) == 0
    again = capsys.readouterr().out
    # the same file keeps its id; the fast path counts this batch's rows (the space still holds 2)
    assert "rows: 2 in the space (0 added, 0 updated, 1 unchanged, 0 deleted)" in again


@pytest.mark.slow
def test_ingest_wait_reports_a_failed_run_with_its_root_error_and_the_task_can_be_retried(nexus_home, folder,
                                                                                         capsys, provider):
    other = EmbedderInfo(model="another-model", dimension=8)
    space = SpaceStore().open_or_create(ACME, "notes", other)
    space.upsert(build_rows(ACME, [Record(text="x", source="x")], np.ones((1, 8), np.float32) / np.sqrt(8), other),
                 other)
    assert main(["ingest", str(folder / "stove.md"), "--key", "acme-demo-key", "--space", "notes", "--wait"]) == 1
    out, err = capsys.readouterr()
    task_id = out.splitlines()[0]
    assert out.strip().endswith(f"task {task_id}: failed") and "another-model" in err
    assert main(["tasks", "list", "--key", "acme-demo-key", "--state", "failed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["tasks"]
    assert [t["task_id"] for t in listed] == [task_id] and "another-model" in listed[0]["error"]
    assert main(["tasks", "retry", task_id, "--key", "acme-demo-key"]) == 0
    retried = json.loads(capsys.readouterr().out)
    assert (retried["status"], retried["attempts"]) == ("queued", 2)


def test_ingest_refuses_a_tenant_without_a_store_before_anything_lands(nexus_home, folder, capsys):
    assert main(["ingest", str(folder / "stove.md"), "--key", "initech-demo-key", "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "nexus_store.missing_route"
    files = landing_zone(RequestContext("initech")).files
    assert not files.fs.exists(files.root)


def test_ingest_refuses_a_missing_path_and_writes_nothing(nexus_home, folder, capsys):
    assert main(["ingest", str(folder / "stove.md"), str(folder / "missing.md"), "--key", "acme-demo-key",
                 "--json"]) == 2
    assert "missing.md" in json.loads(capsys.readouterr().err)["error"]["message"]
    files = landing_zone(ACME).files
    assert not files.fs.exists(files.root)


def test_an_image_sidecar_gives_the_item_its_caption_alt_text_and_metadata_and_blank_ones_are_left_out(tmp_path):
    from nexus_query.file_ingest import collect

    (tmp_path / "tent.png").write_bytes(b"\x89PNG")
    (tmp_path / "tent.png.json").write_text(json.dumps({"caption": "a dome tent", "alt_text": "green tent",
                                                        "metadata": {"color": "green"}}))
    (tmp_path / "stove.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "stove.jpg.json").write_text(json.dumps({"caption": "", "alt_text": None}))
    (tmp_path / "lamp.webp").write_bytes(b"RIFF")
    items = {i["metadata"]["file_name"]: i for i in collect([tmp_path], "notes").items}
    assert items["tent.png"]["content"] == "a dome tent"
    assert items["tent.png"]["metadata"] == {"color": "green", "source": "tent.png", "file_name": "tent.png",
                                             "alt_text": "green tent"}
    assert "content" not in items["stove.jpg"] and "alt_text" not in items["stove.jpg"]["metadata"]
    assert items["lamp.webp"]["metadata"] == {"source": "lamp.webp", "file_name": "lamp.webp"}
