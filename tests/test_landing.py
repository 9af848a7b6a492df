import json

import pytest

from nexus_query.context import RequestContext
from nexus_query.errors import Forbidden, GlobalSpaceReadOnly, InvalidRequest, NotFound
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
    with pytest.raises(InvalidRequest, match="does not exist"):
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
