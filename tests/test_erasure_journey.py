"""Erasure as a user meets it, on a fresh data root: a folder of notes named the way people name files is
ingested with ``nexus ingest``, one note is erased by the name the user typed, and a scan written here (not
the erasure's own) finds no byte of it under NEXUS_HOME or DAGSTER_HOME, nor in any Lance version. Then the
scope rules: a chat export in two spaces, another space's artifacts, and a space deleted while a client keeps
ingesting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import httpx
import pytest

from nexus_pipelines.definitions import defs
from nexus_pipelines.erasure.assets import erasure_request_sensor, remap_space
from nexus_pipelines.resources import NexusResource
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.cognition import ArtifactStore
from nexus_query.cognition.assembly import assemble_topic
from nexus_query.cognition.bricks import import_export
from nexus_query.erasure import request_erasure, run_erasure, tenant_target
from nexus_query.erasure.model import ErasureIncomplete
from nexus_query.erasure.plan import read_request
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from tests.helpers import ACME, CANARY, OTHER, assert_envelope, auth, files_with, lance_versions_with

MEETING = "Notes/Réunion d'équipe 2.md"
SPACES = ("main", "drafts")


def nexus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "nexus")
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def instance(nexus_home, dagster_home):
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [f"acme.default.{s}" for s in SPACES])
        yield instance


@pytest.fixture
def client(nexus_home):
    with background_server(create_app(RoutingRegistry.default())) as base_url:
        with httpx.Client(base_url=base_url, timeout=120, headers=auth("acme-demo-key")) as http:
            yield http


def ingest(instance, space_id: str = "main") -> None:
    assert defs.resolve_job_def("ingest_space").execute_in_process(
        partition_key=f"acme.default.{space_id}", instance=instance).success


def run_requested(instance) -> list[str]:
    """The erasure request sensor's runs, carried out as the daemon would."""
    result = erasure_request_sensor(dg.build_sensor_context(instance=instance, resources={"nexus": NexusResource()}))
    for request in result.run_requests:
        assert defs.resolve_job_def("erase_space").execute_in_process(
            partition_key=request.partition_key, instance=instance, run_config=request.run_config,
            tags=request.tags).success
    return [r.run_key for r in result.run_requests]


def notes_folder(root: Path) -> None:
    """A folder as people keep one: accents, apostrophes, quotes, spaces, nested folders."""
    files = {MEETING: f"# Réunion\n\nLe code de la porte du quai est {CANARY}; ne le dites à personne.\n",
             "Notes/Projets 2026/what's new.md": "The garden shed gets a new roof in spring, with cedar shingles.\n",
             'Notes/Résumé "draft".md': OTHER + "\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_nexus_ingest_a_folder_then_erase_one_note_by_the_path_typed_leaves_no_byte_of_it(nexus_home, tmp_path):
    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    env = {**os.environ, "NEXUS_HOME": str(nexus_home), "DAGSTER_HOME": str(dagster_home),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    key = ("--key", "acme-demo-key", "--space", "main")
    notes_folder(tmp_path / "Documents")
    landed = nexus("ingest", str(tmp_path / "Documents"), *key, "--wait", env=env)
    assert landed.returncode == 0, landed.stderr[-3000:]
    assert f"source: {MEETING}" in landed.stderr  # the name to erase it by is printed
    assert files_with(nexus_home, CANARY.encode()) and lance_versions_with(nexus_home, CANARY)

    erased = nexus("erase", *key, "--source", MEETING, "--wait", env=env)

    assert erased.returncode == 0, erased.stderr[-3000:]
    receipt = json.loads(erased.stdout)
    assert receipt["verified"] is True and receipt["documents"] == 1 and receipt["rows_deleted"] >= 1
    assert receipt["found"] == 0 and receipt["scanned_files"] > 0 and receipt["scanned_versions"] >= 1
    assert MEETING not in erased.stdout and "Réunion" not in erased.stdout  # hashes of names, not names
    assert files_with(nexus_home, CANARY.encode()) == [] and files_with(dagster_home, CANARY.encode()) == []
    assert lance_versions_with(nexus_home, CANARY) == []
    again = nexus("erase", *key, "--source", MEETING, env=env)
    assert again.returncode == 1 and "nexus.nothing_to_erase" in again.stderr
    kept = nexus("query", *key, "--json", "garden shed roof cedar shingles", env=env)
    assert "Notes/Projets 2026/what's new.md" in kept.stdout or "cedar shingles" in kept.stdout


def test_over_http_a_document_is_erased_by_the_source_on_its_hit_or_its_file_name(instance, client, nexus_home,
                                                                                 dagster_home, tmp_path):
    items = [{"type": "text", "id": "reunion-equipe-2", "content": f"Le code du quai est {CANARY}.",
              "metadata": {"source": MEETING}},
             {"type": "text", "id": "faq-tents", "content": OTHER, "metadata": {"source": "FAQ/tents.md"}}]
    assert client.post("/nexus/spaces/main/ingest", json={"items": items}).status_code == 202
    ingest(instance)
    hit = client.post("/nexus/spaces/main/query", json={"q": f"code du quai {CANARY}", "top_k": 1}).json()["hits"][0]
    missing = client.post("/nexus/spaces/main/erase", json={"sources": ["Reunion d'equipe 2.md"]})
    body = assert_envelope(missing, 404, "nexus.nothing_to_erase")
    assert "Réunion d'équipe 2.md" in body["closest"]  # the names the space has, as the user sees them

    answer = client.post("/nexus/spaces/main/erase", json={"sources": [hit["source"]]})

    assert answer.status_code == 202 and run_requested(instance)
    task = client.get(f"/nexus/tasks/{answer.json()['task_id']}").json()
    assert task["status"] == "succeeded" and task["counts"]["rows_deleted"] == 1 and task["counts"]["found"] == 0
    assert files_with(nexus_home, CANARY.encode()) == [] and files_with(dagster_home, CANARY.encode()) == []
    assert lance_versions_with(nexus_home, CANARY) == []
    by_file_name = client.post("/nexus/spaces/main/erase", json={"doc_ids": ["tents.md"]})
    assert by_file_name.status_code == 202 and run_requested(instance)
    assert client.post("/nexus/spaces/main/query", json={"q": "tents returned dry"}).json()["hits"] == []


def chats() -> bytes:
    return json.dumps([{"conversation_id": "gate-chat", "title": "Gate code", "messages": [
        {"message_id": "m1", "role": "user", "created_at": None,
         "blocks": [{"index": 0, "text": "What is the north gate code for deliveries?"}]},
        {"message_id": "m2", "role": "assistant", "created_at": None,
         "blocks": [{"index": 0, "text": f"The north gate code for deliveries is {CANARY}."}]}]}]).encode()


def test_a_chat_export_in_two_spaces_erased_in_one_stays_in_the_other_and_goes_from_both_tenant_wide(
        instance, client, nexus_home):
    files = landing_zone(ACME).files
    for space_id in SPACES:
        import_export(files, space_id, "Équipe chats.json", chats())
        ingest(instance, space_id)
    kept_artifact = assemble_topic(ACME, "drafts", "north gate code for deliveries")
    assert kept_artifact["payload"]["coverage_status"] == "ASSEMBLED"

    answer = client.post("/nexus/spaces/main/erase", json={"sources": ["Équipe chats.json"]})

    assert answer.status_code == 202 and run_requested(instance)
    task = client.get(f"/nexus/tasks/{answer.json()['task_id']}").json()
    assert task["status"] == "succeeded" and task["counts"]["shared_files_kept"] >= 1
    assert all(CANARY not in h.content for h in query(ACME, "main", f"north gate {CANARY}", top_k=20).hits)
    assert CANARY in query(ACME, "drafts", f"north gate code {CANARY}", top_k=1).hits[0].content
    assert ArtifactStore.for_context(ACME).get(kept_artifact["artifact_id"]) == kept_artifact  # untouched
    assert assemble_topic(ACME, "drafts", "north gate code")["payload"]["coverage_status"] == "ASSEMBLED"

    everywhere = client.post("/nexus/erase", json={"sources": ["conversations/canonical/gate-chat.json"]})

    assert everywhere.status_code == 202 and len(everywhere.json()["task_ids"]) == 1  # only drafts has it now
    run_requested(instance)
    assert files_with(nexus_home, CANARY.encode()) == [] and lance_versions_with(nexus_home, CANARY) == []
    assert ArtifactStore.for_context(ACME).get(kept_artifact["artifact_id"])["coverage_status"] == "ERASED"


def test_the_verification_scan_finds_what_the_plan_did_not_know_of_and_refuses_to_verify(instance):
    files = landing_zone(ACME).files
    files.write_bytes_atomic(f"The dock door code is {CANARY}, kept for the night shift only.".encode(),
                             "landing", "main", "files", "dock.md")
    ingest(instance)
    task = request_erasure(ACME, "main", "sources", ["dock.md"])
    target = tenant_target(ACME, "main")

    def stray_copy(step: str) -> None:  # a copy the purge never heard of, in the space's media area
        if step == "artifacts":
            files.write_bytes_atomic(b"copied: the dock door code is " + CANARY.encode(), "media", "main", "x.txt")

    with pytest.raises(ErasureIncomplete) as refused:
        run_erasure(target, read_request(target, "main", task.task_id), after_step=stray_copy,
                    remap=remap_space(lambda message: None))
    assert refused.value.details["remaining"] == {"blobs": 1}
    assert not files.exists("erasures", "main", "receipts", f"{task.task_id}.json")


def test_a_space_deleted_while_a_client_keeps_ingesting_leaves_every_task_succeeded_or_cancelled(
        instance, client):
    first = client.post("/nexus/spaces/main/ingest", json={"items": [{"type": "text", "content": OTHER}]})
    ingest(instance)
    answers: list[httpx.Response] = []
    five_in = threading.Event()

    def keep_ingesting() -> None:  # a bounded client, on its own connection
        with httpx.Client(base_url=client.base_url, timeout=120, headers=auth("acme-demo-key")) as own:
            for n in range(40):
                answers.append(own.post("/nexus/spaces/main/ingest",
                                        json={"items": [{"type": "text", "content": f"note {n}"}]}))
                if n == 5:
                    five_in.set()

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    five_in.wait(timeout=300)
    deleted = client.delete("/nexus/spaces/main")
    writer.join()

    assert deleted.status_code == 202
    accepted = [a.json()["task_id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert len(accepted) >= 6 and len(accepted) + len(refused) == 40
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} <= {(409, "nexus.space_erasing")}
    run_requested(instance)
    zone = landing_zone(ACME)
    assert zone.read_task(first.json()["task_id"]).status == "succeeded"
    for task in map(zone.read_task, accepted):
        assert (task.status, task.reason, task.erasure_id) == ("cancelled", "erased", deleted.json()["task_id"])
    assert zone.list_tasks("queued").tasks == [] and zone.batch_ids("main") == []
    assert_envelope(client.post(f"/nexus/tasks/{accepted[0]}/retry"), 410, "nexus.task_gone")
    after = client.post("/nexus/spaces/main/ingest", json={"items": [{"type": "text", "content": "after"}]})
    assert after.status_code == 202  # the fence is down once the erasure ended
