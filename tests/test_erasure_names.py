"""The erasure naming rule, the space-erasing fence, blob confinement and cancelled tasks: what is decided
before any pipeline runs (no model needed)."""

from __future__ import annotations

import json
import unicodedata

import httpx
import pytest

from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.cognition.bricks import land_export
from nexus_query.erasure import request_erasure, tenant_target
from nexus_query.erasure.names import Catalog, nothing_to_erase, resolve
from nexus_query.erasure.plan import plan_erasure
from nexus_query.errors import NothingToErase, SpaceErasing, SpaceNotFound, TaskGone, ValidationFailed
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
from tests.helpers import ACME, assert_envelope, auth

RESUME = "Résumé draft.md"


def catalog() -> Catalog:
    found = Catalog()
    found.add_document("resume-draft-md-1", {"source": RESUME, "file_name": RESUME})
    found.add_document("plans-garden-1", {"source": "2026 plans/garden plan.txt", "file_name": "garden plan.txt"})
    found.add_document("whats-new-1", {"source": "Notes/Projets 2026/what's new.md"})
    found.add_document("a-notes-1", {"source": "a/notes.md", "file_name": "notes.md"})
    found.add_document("b-notes-1", {"source": "b/notes.md", "file_name": "notes.md"})
    found.add_document("conversations/chatgpt/c1.json#m1#0")
    found.add_conversation("conversations/chatgpt/c1.json", "My-Chats.json")
    return found


@pytest.mark.parametrize("name, doc_ids", [
    ("resume-draft-md-1", {"resume-draft-md-1"}),                        # the doc id (the source on a hit)
    (RESUME, {"resume-draft-md-1"}),                                     # the file name given to nexus ingest
    (unicodedata.normalize("NFD", RESUME), {"resume-draft-md-1"}),       # as a Mac spells it
    ("2026 plans/garden plan.txt", {"plans-garden-1"}),                  # a relative path in the folder
    ("garden plan.txt", {"plans-garden-1"}),                             # its bare file name, unique
    ("Notes/Projets 2026/what's new.md", {"whats-new-1"}),               # a nested path typed in full
    ("Projets 2026/what's new.md", {"whats-new-1"}),                     # a tail of it, only this one's
    ("a/notes.md", {"a-notes-1"}),
])
def test_a_document_answers_to_its_id_its_ingest_path_and_its_unique_file_name(name, doc_ids):
    assert resolve(catalog(), [name]).doc_ids == doc_ids


def test_a_conversation_answers_to_its_source_file_and_to_its_export_file_name_as_the_user_typed_it():
    for name in ("conversations/chatgpt/c1.json", "My Chats.json", "My-Chats.json"):
        assert resolve(catalog(), [name]).conversations == {"conversations/chatgpt/c1.json"}


def test_a_bare_file_name_two_document_paths_share_is_refused_with_both_paths():
    with pytest.raises(ValidationFailed) as refused:
        resolve(catalog(), ["notes.md"])
    assert refused.value.details["candidates"] == ["a/notes.md", "b/notes.md"]


def test_a_name_matching_nothing_lists_the_closest_names_the_space_has():
    error = nothing_to_erase(catalog(), ["Resume draft.md"])
    assert error.status == 404 and error.code == "nexus.nothing_to_erase"
    assert RESUME in error.details["closest"] and error.details["looked_for"] == ["Resume draft.md"]


@pytest.mark.parametrize("name", ["/etc/passwd", "a\\b.md", "tab\there", "x" * 1025, ""])
def test_names_outside_the_rule_are_422_in_python(nexus_home, name):
    with pytest.raises(ValidationFailed):
        request_erasure(ACME, "main", "sources", [name])


@pytest.fixture
def client(nexus_home):
    with background_server(create_app(RoutingRegistry.default())) as base_url:
        with httpx.Client(base_url=base_url, timeout=60, headers=auth("acme-demo-key")) as http:
            yield http


def land_items(space_id: str = "main", **metadata) -> str:
    items = [{"type": "text", "id": "resume-draft-md-1", "content": "Worked at the harbour office.",
              "metadata": {"source": RESUME, "file_name": RESUME, **metadata}}]
    return landing_zone(ACME).land_batch(space_id, items).task_id


@pytest.mark.parametrize("name", ["*", "what's new.md", 'say "hi".md', "y" * 300])
def test_names_the_schema_allows_are_looked_up_never_403_and_matching_nothing_is_404(client, name):
    land_items()
    body = assert_envelope(client.post("/nexus/spaces/main/erase", json={"sources": [name]}), 404,
                           "nexus.nothing_to_erase")
    assert body["looked_for"] == [name]
    assert landing_zone(ACME).files.list("erasures") == []  # nothing queued
    allowed = client.post("/nexus/spaces/main/erase", json={"sources": [name], "allow_none": True})
    assert allowed.status_code == 202


def test_the_openapi_document_states_the_naming_rule_and_the_error_codes(client):
    spec = client.get("/openapi.json").json()
    sources = spec["components"]["schemas"]["EraseSources"]["properties"]["sources"]
    assert sources["items"]["pattern"] and "file name or relative path" in sources["description"]
    responses = spec["paths"]["/nexus/spaces/{space_id}/erase"]["post"]["responses"]
    assert "nexus.nothing_to_erase" in responses["404"]["description"]
    assert "nexus.task_gone" in spec["paths"]["/nexus/tasks/{task_id}/retry"]["post"]["responses"]["410"]["description"]
    assert "/nexus/erase" in spec["paths"]


def test_erasing_by_the_file_name_given_at_ingest_plans_the_document_still_waiting_in_landing(nexus_home):
    land_items()
    task = request_erasure(ACME, "main", "sources", [RESUME])
    target = tenant_target(ACME, "main")
    request = json.loads(target.files.read_bytes("erasures", "main", "requests", f"{task.task_id}.json"))
    assert request["names"] == [RESUME]
    from nexus_query.erasure import ErasureRequest

    assert plan_erasure(target, ErasureRequest.from_dict(request), None).doc_ids == {"resume-draft-md-1"}


@pytest.mark.parametrize("blob_path", ["artifacts/{hex}.json", "tasks/{task}.json", "landing/main/batches/{task}.json",
                                       "erasures/main/receipts/x.json", "pipelines/raw_docs/main.parquet"])
def test_an_image_item_naming_a_file_outside_the_media_area_is_refused_at_ingest(client, blob_path):
    task = land_items()
    files = landing_zone(ACME).files
    path = blob_path.format(hex="ab" * 32, task=task)
    if not files.exists(path):
        files.write_bytes_atomic(b"{}", path)
    answer = client.post("/nexus/spaces/main/ingest", json={"items": [{"type": "image", "blob_path": path}]})
    assert_envelope(answer, 422, "nexus.validation_failed")  # the OpenAPI pattern says media/...
    with pytest.raises(ValidationFailed, match="media area"):  # and so does the Python path
        landing_zone(ACME).land_batch("main", [{"type": "image", "blob_path": path}])
    files.write_bytes_atomic(b"\x89PNG", "media", "main", "tent.png")
    image = {"type": "image", "blob_path": "media/main/tent.png"}
    assert client.post("/nexus/spaces/main/ingest", json={"items": [image]}).status_code == 202


def test_a_space_being_erased_refuses_ingest_import_retry_and_erase_with_409(client):
    accepted = land_items()
    zone = landing_zone(ACME)
    failed = zone.land_batch("main", [{"type": "text", "content": "a failed batch"}]).task_id
    zone.update_task(failed, "failed", error="boom")
    deleted = client.delete("/nexus/spaces/main")
    assert deleted.status_code == 202
    ingest = client.post("/nexus/spaces/main/ingest", json={"items": [{"type": "text", "content": "late"}]})
    body = assert_envelope(ingest, 409, "nexus.space_erasing")
    assert body["erasure_id"] == deleted.json()["task_id"]
    assert_envelope(client.post("/nexus/spaces/main/erase", json={"sources": [RESUME]}), 409, "nexus.space_erasing")
    assert_envelope(client.delete("/nexus/spaces/main"), 409, "nexus.space_erasing")
    assert_envelope(client.post(f"/nexus/tasks/{failed}/retry"), 409, "nexus.space_erasing")
    with pytest.raises(SpaceErasing):
        land_export(zone.files, "main", "chats.json", json.dumps([]).encode())
    # Other spaces are not fenced; the batch accepted before the fence is still there for the erasure.
    other = client.post("/nexus/spaces/other/ingest", json={"items": [{"type": "text", "content": "ok"}]})
    assert other.status_code == 202
    assert zone.read_task(accepted).status == "queued"


def test_a_batch_whose_write_raced_the_fence_is_taken_back_and_refused(nexus_home, monkeypatch):
    from nexus_query import fence

    zone = landing_zone(ACME)
    # The check before the write passed; the fence went up before the batch was written.
    monkeypatch.setattr("nexus_query.landing.refuse_if_erasing", lambda files, space_id: None)
    fence.put_up(zone.files, "main", "e" * 32)
    with pytest.raises(SpaceErasing):
        zone.land_batch("main", [{"type": "text", "content": "raced"}])
    assert zone.batch_ids("main") == [] and zone.list_tasks().tasks == []


def test_a_cancelled_task_cannot_be_retried_410_and_no_run_moves_it(client):
    task = land_items()
    zone = landing_zone(ACME)
    assert zone.cancel_task(task, "e" * 32)
    assert_envelope(client.post(f"/nexus/tasks/{task}/retry"), 410, "nexus.task_gone")
    shown = client.get(f"/nexus/tasks/{task}").json()
    assert (shown["status"], shown["reason"], shown["erasure_id"]) == ("cancelled", "erased", "e" * 32)
    assert not zone.settle_task(task, "run-1") and not zone.claim_task(task, "run-1")
    assert not zone.fail_task(task, "run-1", "boom") and zone.read_task(task).status == "cancelled"


def test_retrying_a_failed_task_whose_batch_is_gone_is_410_not_500(client):
    zone = landing_zone(ACME)
    task = land_items()
    zone.update_task(task, "failed", error="boom")
    zone.files.fs.rm_file(zone.files.path(*zone.batch_parts("main", task)))
    with pytest.raises(TaskGone):
        zone.retry_task(task)
    assert_envelope(client.post(f"/nexus/tasks/{task}/retry"), 410, "nexus.task_gone")


def test_a_whole_space_erasure_takes_no_names_and_nothing_to_erase_is_not_raised_for_it(nexus_home):
    for space in ("empty", "other"):
        landing_zone(ACME).land_batch(space, [{"type": "text", "id": "landed", "content": "a note"}])
    task = request_erasure(ACME, "empty", "space")
    assert task.status == "queued"
    with pytest.raises(NothingToErase):
        request_erasure(ACME, "other", "doc_ids", ["never-landed"])
    with pytest.raises(SpaceNotFound):  # a space that never existed is not erased "successfully"
        request_erasure(ACME, "never", "space")


def test_an_erasure_that_found_a_document_but_removes_nothing_of_it_fails_instead_of_verifying(nexus_home,
                                                                                              monkeypatch):
    from nexus_query.erasure import run_erasure
    from nexus_query.erasure.model import ErasureIncomplete
    from nexus_query.erasure.plan import read_request

    land_items()
    task = request_erasure(ACME, "main", "sources", [RESUME])
    target = tenant_target(ACME, "main")
    monkeypatch.setattr("nexus_query.erasure.run.purge_landing", lambda target, plan: {})  # a step that did nothing
    with pytest.raises(ErasureIncomplete):
        run_erasure(target, read_request(target, "main", task.task_id))
    assert not target.files.exists("erasures", "main", "receipts", f"{task.task_id}.json")


def test_a_request_whose_documents_went_before_it_ran_fails_as_nothing_to_erase(nexus_home):
    from nexus_query.erasure import run_erasure
    from nexus_query.erasure.plan import read_request

    zone = landing_zone(ACME)
    batch = land_items()
    task = request_erasure(ACME, "main", "sources", [RESUME])
    zone.files.fs.rm_file(zone.files.path(*zone.batch_parts("main", batch)))
    target = tenant_target(ACME, "main")
    with pytest.raises(NothingToErase):
        run_erasure(target, read_request(target, "main", task.task_id))
