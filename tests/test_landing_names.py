"""Files named as people name them are ingested (spaces, quotes, accents, emoji, either Unicode form), a name
that could escape or confuse a path is skipped and reported without stopping the space, and a run that
fails after claiming tasks leaves none of them ``running``."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import dagster as dg
import pytest

from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.ingest.sources import LandingReader
from nexus_pipelines.partitions import SpaceKey
from nexus_query.errors import Forbidden, InvalidRequest
from nexus_query.file_ingest import collect
from nexus_query.landing import landing_zone
from nexus_query.paths import safe_relative_path
from nexus_query.store import SpaceStore
from tests.helpers import ACME

# As people write them: what a Mac writes (NFD accents), quotes, spaces, nested folders, emoji.
GOOD_NAMES = {
    "Résumé draft.md": "My résumé lists three tents I designed.",
    "what's new.md": "What's new: the stove now burns white gas.",
    '"quoted" notes.txt': "Quoted notes about sleeping bags.",
    "Été 2025/plans (v2) & ideas.md": "Summer plans: a canoe trip to the island.",
    unicodedata.normalize("NFD", "café menu.txt"): "The café serves coffee at the base camp.",
    "family 👨\u200d👩\u200d👧 trip.md": "A family trip with the four-person tent.",
}
# What can confuse a path and still be a file on disk: a control character, a bidi override.
REFUSED_NAMES = ["bell\x07.md", "evil\u202egnp.md"]


def drop(root: Path, names: dict[str, str]) -> None:
    """Files written straight into the landing zone, as a user or a sync tool drops them (not through the
    API, which would refuse the bad names before they were written)."""
    for name, text in names.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def files_root(space_id: str = "main") -> Path:
    return Path(landing_zone(ACME).files.path("landing", space_id, "files"))


@pytest.mark.parametrize("name", [*GOOD_NAMES, "a b/c d.md", "l'été.md"])
def test_names_as_people_write_them_are_valid_paths(name):
    assert safe_relative_path(name) == name


@pytest.mark.parametrize("name", [*REFUSED_NAMES, "é" * 128 + ".md", "a/../b", "..", "a//b", "a\\b", "x\u2028y",
                                  "\x00"])
def test_names_that_escape_or_confuse_a_path_are_refused(name):
    with pytest.raises((Forbidden, InvalidRequest)):
        safe_relative_path(name)


def test_the_landing_reader_ingests_every_good_name_and_reports_each_refused_one(nexus_home):
    drop(files_root(), GOOD_NAMES | dict.fromkeys(REFUSED_NAMES, "refused"))
    reader = LandingReader(landing_zone(ACME), "main")
    docs = {doc["doc_id"]: doc for batch in reader.batches() for doc in batch.to_pylist()}
    assert set(docs) == {unicodedata.normalize("NFC", name) for name in GOOD_NAMES}
    assert docs["café menu.txt"]["text"].startswith("The café")
    assert len(reader.problems) == len(REFUSED_NAMES) == reader.counts["refused_files"]
    for name in REFUSED_NAMES:
        assert any(repr(f"landing/main/files/{name}")[1:-1] in problem for problem in reader.problems)


def test_one_file_dropped_either_way_is_one_document(nexus_home, tmp_path):
    """The same name in NFC and NFD (a Linux and a Mac copy) is one document id, locally and when landed."""
    nfc, nfd = unicodedata.normalize("NFC", "Résumé.md"), unicodedata.normalize("NFD", "Résumé.md")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / nfc).write_text("one")
    (tmp_path / "b" / nfd).write_text("two")
    ids = {item["id"] for item in collect([tmp_path / "a" / nfc, tmp_path / "b" / nfd], "main").items}
    assert len(ids) == 1


@pytest.mark.slow
def test_a_space_with_odd_file_names_is_ingested_and_its_task_names_what_was_skipped(nexus_home, provider):
    zone = landing_zone(ACME)
    drop(files_root(), GOOD_NAMES | {REFUSED_NAMES[0]: "refused"})
    task = zone.land_batch("main", [{"type": "text", "content": "Tents can be returned within 60 days.",
                                     "id": "returns"}])
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = ingest_space_in_process(SpaceKey("acme", "default", "main"), instance=instance,
                                          task_id=task.task_id, progress=False)
    assert outcome.success, outcome.error
    done = zone.read_task(task.task_id)
    assert done.status == "succeeded" and len(done.problems) == 1 and "bell" in done.problems[0]
    rows = SpaceStore().open(ACME, "main").table.search().select(["source"]).limit(None).to_list()
    sources = {r["source"] for r in rows}
    assert {"returns", "Résumé draft.md", "what's new.md", "Été 2025/plans (v2) & ideas.md"} <= sources
    assert not any("bell" in s for s in sources)


@pytest.mark.slow
def test_a_run_that_fails_after_claiming_leaves_no_task_running_and_each_can_be_retried(nexus_home, provider):
    zone = landing_zone(ACME)
    good = zone.land_batch("main", [{"type": "text", "content": "Gift cards never expire."}])
    broken = zone.land_batch("main", [{"type": "text", "content": "This batch file gets damaged."}])
    batch_file = zone.files.path(*zone.batch_parts("main", broken.task_id))
    with open(batch_file, "w") as fh:  # claimed (its task record is fine), then unreadable to raw_docs
        fh.write("not json")
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = ingest_space_in_process(SpaceKey("acme", "default", "main"), instance=instance,
                                          task_id=good.task_id, progress=False)
    assert not outcome.success
    for task in (good, broken):
        settled = zone.read_task(task.task_id)
        assert settled.status == "failed" and settled.run_id == outcome.run_id and settled.error
    os.remove(batch_file)
    assert zone.retry_task(good.task_id).status == "queued"
