import json

import pytest

from nexus_query.context import RequestContext
from nexus_query.errors import BlobNotFound, Forbidden, GlobalSpaceReadOnly, InvalidRequest, NotFound, TaskNotRetryable
from nexus_query.landing import landing_zone

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")


def test_accepted_batch_is_written_whole_with_a_queued_task(nexus_home):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "hello", "metadata": {"source": "doc1"}}])
    assert task.status == "queued" and task.counts == {"items": 1}
    assert zone.batch_ids("main") == [task.task_id]
    batch = zone.read_batch("main", task.task_id)
    assert batch["items"][0]["content"] == "hello" and batch["items"][0]["id"].startswith("item-")
    assert zone.read_task(task.task_id).status == "queued"
    assert zone.spaces() == ["main"]


def test_one_invalid_item_rejects_the_whole_batch_and_writes_nothing(nexus_home):
    zone = landing_zone(ACME)
    items = [{"type": "text", "content": "fine"}, {"type": "text", "content": "   "}]
    with pytest.raises(InvalidRequest) as info:
        zone.land_batch("main", items)
    assert info.value.envelope()["error"]["item_index"] == 1
    assert zone.batch_ids("main") == [] and zone.files.list("tasks") == []


@pytest.mark.parametrize("items", [[], "text", [{"type": "video", "content": "x"}],
                                   [{"type": "text", "content": "x", "extra": 1}],
                                   [{"type": "text", "content": "x", "metadata": []}],
                                   [{"type": "text", "content": "x", "id": "../x"}],
                                   [{"type": "image"}]])
def test_malformed_items_are_invalid_requests(nexus_home, items):
    with pytest.raises(InvalidRequest):
        landing_zone(ACME).land_batch("main", items)


def test_image_blob_paths_must_exist_inside_the_tenants_store(nexus_home):
    acme, globex = landing_zone(ACME), landing_zone(GLOBEX)
    theirs = globex.files.write_bytes_atomic(b"png", "media", "plan.png")
    with pytest.raises(Forbidden):
        acme.land_batch("main", [{"type": "image", "blob_path": theirs}])
    with pytest.raises(BlobNotFound, match="does not exist"):
        acme.land_batch("main", [{"type": "image", "blob_path": "media/missing.png"}])
    mine = acme.files.write_bytes_atomic(b"png", "media", "tent.png")
    task = acme.land_batch("main", [{"type": "image", "blob_path": mine, "content": "a green tent"}])
    assert acme.read_batch("main", task.task_id)["items"][0]["blob_path"] == "media/tent.png"


def test_the_global_space_cannot_be_written_by_tenants(nexus_home):
    with pytest.raises(GlobalSpaceReadOnly):
        landing_zone(ACME).land_batch("global", [{"type": "text", "content": "x"}])


def test_tasks_are_per_tenant(nexus_home):
    task = landing_zone(ACME).land_batch("main", [{"type": "text", "content": "x"}])
    with pytest.raises(NotFound):
        landing_zone(GLOBEX).read_task(task.task_id)
    with pytest.raises(NotFound):
        landing_zone(ACME).read_task("../globex/tasks/x")
    updated = landing_zone(ACME).update_task(task.task_id, "succeeded", counts={"rows_added": 1})
    assert updated.counts == {"items": 1, "rows_added": 1}
    stored = json.loads(landing_zone(ACME).files.read_bytes("tasks", f"{task.task_id}.json"))
    assert stored["status"] == "succeeded"


def test_the_batch_is_written_before_its_task_and_a_lost_task_record_comes_back_from_it(nexus_home):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "hello"}])
    assert zone.read_batch("main", task.task_id)["task"]["status"] == "queued"
    zone.files.fs.rm(zone.files.path("tasks", f"{task.task_id}.json"))  # as if killed between the two writes
    with pytest.raises(NotFound):
        zone.read_task(task.task_id)
    repaired = zone.task_of_batch("main", task.task_id)
    assert (repaired.status, repaired.counts, repaired.created_at) == ("queued", {"items": 1}, task.created_at)
    assert zone.read_task(task.task_id) == repaired


def test_a_later_run_settles_a_task_and_the_earlier_runs_failure_does_not_undo_it(nexus_home):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "hello"}])
    assert zone.claim_task(task.task_id, "run-a")
    assert zone.claim_task(task.task_id, "run-b")  # run-a died; run-b read the batch too
    assert zone.settle_task(task.task_id, "run-b", {"rows_added": 1})
    assert not zone.fail_task(task.task_id, "run-a", "worker killed")  # run-a's failure arrives late
    settled = zone.read_task(task.task_id)
    assert (settled.status, settled.run_id, settled.error) == ("succeeded", "run-b", None)
    assert not zone.claim_task(task.task_id, "run-c") and not zone.settle_task(task.task_id, "run-c")
    assert zone.read_task(task.task_id).run_id == "run-b"


def test_a_failure_keeps_its_root_error_and_touches_only_tasks_the_run_still_holds(nexus_home):
    zone = landing_zone(ACME)
    mine, taken = (zone.land_batch("main", [{"type": "text", "content": t}]) for t in ("a", "b"))
    zone.claim_task(mine.task_id, "run-a")
    zone.claim_task(taken.task_id, "run-a")
    zone.claim_task(taken.task_id, "run-b")
    assert zone.fail_task(mine.task_id, "run-a", "ValueError: the root cause")
    assert not zone.fail_task(taken.task_id, "run-a", "ValueError: the root cause")
    assert zone.read_task(mine.task_id).error == "ValueError: the root cause"
    assert (zone.read_task(taken.task_id).status, zone.read_task(taken.task_id).run_id) == ("running", "run-b")


def test_only_a_failed_task_is_retried_and_its_batch_is_landed_again_unchanged(nexus_home):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "hello"}])
    with pytest.raises(TaskNotRetryable):
        zone.retry_task(task.task_id)
    before = zone.files.read_bytes(*zone.batch_parts("main", task.task_id))
    zone.fail_task(task.task_id, "run-a", "boom")
    retried = zone.retry_task(task.task_id)
    assert (retried.status, retried.attempts, retried.error) == ("queued", 2, None)
    assert zone.files.read_bytes(*zone.batch_parts("main", task.task_id)) == before
    assert zone.batch_ids("main") == [task.task_id]


def test_tasks_are_listed_newest_first_by_state_in_pages(nexus_home):
    zone = landing_zone(ACME)
    ids = [zone.land_batch("main", [{"type": "text", "content": f"t{i}"}]).task_id for i in range(5)]
    zone.fail_task(ids[2], "run-a", "boom")
    page = zone.list_tasks("queued", limit=3)
    rest = zone.list_tasks("queued", offset=3, limit=3)
    assert len(page.tasks) == 3 and page.next_offset == 3 and len(rest.tasks) == 1 and rest.next_offset is None
    listed = page.tasks + rest.tasks
    assert sorted(t.task_id for t in listed) == sorted(ids[:2] + ids[3:])
    assert [t.created_at for t in listed] == sorted((t.created_at for t in listed), reverse=True)
    assert [t.task_id for t in zone.list_tasks("failed").tasks] == [ids[2]]
    assert zone.list_tasks().next_offset is None and len(zone.list_tasks().tasks) == 5
    assert landing_zone(GLOBEX).list_tasks().tasks == []


def test_a_page_of_tasks_reads_only_that_page_of_task_records(nexus_home, monkeypatch):
    zone = landing_zone(ACME)
    ids = [zone.land_batch("main", [{"type": "text", "content": f"t{i}"}]).task_id for i in range(30)]
    zone.fail_task(ids[0], "run-a", "boom")
    read: list[tuple[str, ...]] = []
    reader = zone.files.read_bytes
    monkeypatch.setattr(zone.files, "read_bytes", lambda *parts: read.append(parts) or reader(*parts))
    newest = sorted((zone.read_task(i) for i in ids), key=lambda t: (t.created_at, t.task_id), reverse=True)
    read.clear()
    page = zone.list_tasks(limit=5)
    assert page.tasks == newest[:5] and page.next_offset == 5
    assert len(read) == 5
    read.clear()
    assert [t.task_id for t in zone.list_tasks("failed").tasks] == [ids[0]] and len(read) == 1


def test_tasks_written_before_the_index_are_indexed_on_the_first_listing(nexus_home):
    zone = landing_zone(ACME)
    ids = [zone.land_batch("main", [{"type": "text", "content": f"t{i}"}]).task_id for i in range(3)]
    zone.files.fs.rm(zone.files.path("task-index"), recursive=True)
    assert sorted(t.task_id for t in zone.list_tasks().tasks) == sorted(ids)
    assert len(zone.files.list("task-index", "queued")) == 3
