"""`nexus cognition import` through a running `nexus serve` (NEXUS_URL), black box on a fresh data root: the
server's warm worker imports the export (the same parse, bricks, chunking, embedding and write as an import in
process), records it in Dagster as a materialization of the space, and `--wait` returns once the bricks are
queryable; a bad export is refused with a clear error and stores nothing; a key only ever imports into its own
tenant's spaces."""

from __future__ import annotations

import json
import shutil
import subprocess

import dagster as dg
import httpx
import pytest

import nexus_query.api.cognition as cognition_api
from nexus_pipelines.ingest.fast import ServerFastLane
from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.partitions import SpaceKey
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry
from tests.helpers import (
    ACME,
    ACME_KEY,
    BIN,
    CONVERSATIONS,
    REPO,
    auth,
    new_tenant,
    run_nexus,
    start_nexus_serve,
    stop,
    user_env,
)

TOPIC = "what to do with an Embercore stove from batch EC-2312"
EXPORT_NAME = "Claude export (März) – 'support'.json"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A fresh data root with two tenants by command, a Dagster home and `nexus serve` on loopback; yields
    each tenant's environment (NEXUS_URL set), the Dagster home and the root."""
    root = tmp_path_factory.mktemp("served-import")
    dagster_home = root / "dagster-home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**user_env(root / "data"), "DAGSTER_HOME": str(dagster_home)}
    kiosk, bakery = new_tenant(env, "kiosk"), new_tenant(env, "bakery")
    proc, port = start_nexus_serve(env)
    url = f"http://127.0.0.1:{port}"
    try:
        yield {"kiosk": {**kiosk, "NEXUS_URL": url}, "bakery": {**bakery, "NEXUS_URL": url}}, dagster_home, root
    finally:
        stop(proc)


def nexus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "nexus"), *args], env=env, capture_output=True, text=True)


def stored_files(root) -> set[str]:
    """Every file under the data root (stores, landing zones, tasks, exports)."""
    return {str(p.relative_to(root / "data")) for p in (root / "data").rglob("*") if p.is_file()}


def materialized_tasks(dagster_home, key: SpaceKey) -> list[str]:
    """The task ids of the space's ``space_table`` materializations in the Dagster instance."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("space_table"), asset_partitions=[key.partition_key]),
            limit=50).records
    return [r.asset_materialization.metadata["task_id"].value for r in records]


@pytest.mark.slow  # `nexus serve` loads the model before it listens
def test_an_export_imported_through_the_server_is_queryable_when_wait_returns_and_recorded_in_dagster(served):
    envs, dagster_home, root = served
    env = envs["kiosk"]
    export = root / "Downloads – Zoë" / "2024" / EXPORT_NAME
    export.parent.mkdir(parents=True)
    shutil.copy(CONVERSATIONS / "claude_conversations.json", export)

    done = run_nexus(env, "cognition", "import", str(export), "--space", "support", "--wait", "--json")
    imported = json.loads(done.stdout)
    assert imported["task"]["status"] == "succeeded" and imported["task"]["kind"] == "cognition_import"
    assert imported["ingest"]["bricks_gained"] > 0 and imported["ingest"]["run_id"].startswith("fast-")
    assert imported["archived"].endswith("-Claude-export-M-rz-support.json")
    assert "path" not in imported  # the same receipt as an import in process

    # queryable the moment --wait returned: assembled here, in a process of its own, without the server
    local = {k: v for k, v in env.items() if k != "NEXUS_URL"}
    artifact = json.loads(run_nexus(local, "cognition", "assemble", TOPIC, "--space", "support", "--json").stdout)
    assert artifact["payload"]["coverage_status"] == "ASSEMBLED"
    assert "EC-2312" in json.dumps(artifact["payload"]["raw_excerpts"])
    assert imported["task_id"] in materialized_tasks(dagster_home, SpaceKey("kiosk", "default", "support"))

    # the same export again changes nothing; the text receipt says so
    again = run_nexus(env, "cognition", "import", str(export), "--space", "support", "--wait").stdout
    assert "the space gained 0 bricks" in again and "succeeded" in again


@pytest.mark.slow
def test_a_bad_export_sent_to_the_server_is_refused_clearly_and_stores_nothing(served):
    envs, _, root = served
    env = envs["kiosk"]
    bad = root / "Notes – 'draft'" / "not an export.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"title": "a note", "text": "not a conversation"}), encoding="utf-8")
    before = stored_files(root)

    done = nexus(env, "cognition", "import", str(bad), "--space", "drafts", "--wait")
    assert done.returncode == 2
    assert "nexus.invalid_request" in done.stderr and "not a conversation export" in done.stderr
    refused = nexus(env, "cognition", "import", str(bad), "--space", "drafts", "--json")
    assert json.loads(refused.stderr)["error"]["code"] == "nexus.invalid_request"
    assert stored_files(root) == before

    url, key = env["NEXUS_URL"], env["NEXUS_API_KEY"]
    truncated = httpx.post(f"{url}/nexus/spaces/drafts/cognition/imports", content=b'{"conversations": [',
                           headers={**auth(key), "Content-Type": "application/json"}, timeout=60)
    assert truncated.status_code == 400 and "not valid JSON" in truncated.json()["error"]["message"]
    as_text = httpx.post(f"{url}/nexus/spaces/drafts/cognition/imports", timeout=60,
                         headers={**auth(key), "Content-Type": "text/plain"}, content=b"[]")
    assert as_text.status_code == 422 and as_text.json()["error"]["code"] == "nexus.validation_failed"
    assert stored_files(root) == before


@pytest.mark.slow
def test_a_key_imports_only_into_its_own_tenants_space(served):
    envs, _, root = served
    kiosk, bakery = envs["kiosk"], envs["bakery"]
    export = root / "Kiosk exports" / EXPORT_NAME
    export.parent.mkdir()
    shutil.copy(CONVERSATIONS / "claude_conversations.json", export)

    imported = json.loads(run_nexus(kiosk, "cognition", "import", str(export), "--space", "shared", "--wait",
                                    "--json").stdout)
    assert imported["task"]["status"] == "succeeded"
    # the bakery's space of the same name holds nothing of it, and the bakery cannot read the kiosk's task
    refused = nexus(bakery, "cognition", "assemble", TOPIC, "--space", "shared", "--json")
    assert json.loads(refused.stderr)["error"]["code"] == "nexus.space_not_found"
    url = kiosk["NEXUS_URL"]
    task = httpx.get(f"{url}/nexus/tasks/{imported['task_id']}", headers=auth(bakery["NEXUS_API_KEY"]), timeout=60)
    assert task.status_code == 404


@pytest.mark.slow  # a worker process parses the bulk export, then a pipeline run in process
def test_an_export_over_the_fast_paths_bound_is_left_to_the_pipelines_run(dagster_home, provider, monkeypatch):
    monkeypatch.setattr(cognition_api, "FAST_MAX_EXPORT_BYTES", 100)  # every export is "bulk" here
    lane = ServerFastLane(dg.DagsterInstance.get())
    data = (CONVERSATIONS / "claude_conversations.json").read_bytes()
    try:
        with background_server(create_app(RoutingRegistry.default(), fast_lane=lane)) as url:
            answer = httpx.post(f"{url}/nexus/spaces/support/cognition/imports?file_name=Claude%20(M%C3%A4rz).json",
                                content=data, headers={**auth(ACME_KEY), "Content-Type": "application/json"},
                                timeout=300)
    finally:
        lane.close()
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["path"] == "run" and receipt["archived"].endswith("-Claude-M-rz.json")
    zone = landing_zone(ACME)
    assert zone.read_task(receipt["task_id"]).status == "queued"  # the server's writer left it alone
    with dg.DagsterInstance.get() as instance:  # what the landing sensor's run does
        run = ingest_space_in_process(SpaceKey("acme", "default", "support"), instance=instance, progress=False)
    assert run.success and zone.read_task(receipt["task_id"]).status == "succeeded"
