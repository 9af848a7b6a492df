"""A user bringing their own data, black box: `dagster dev` and `nexus serve` already running on a fresh data
root, then a tenant and a key added by command, a folder of files named as people name them ingested with
only NEXUS_API_KEY set, a query over HTTP, the map drawn by the sensors, and a file erased by the name it was
ingested under."""

import json
import os
import shutil
import subprocess

import httpx
import pytest

from tests.helpers import BIN, REPO, free_port, new_tenant, poll, run_nexus, stop, user_env, wait_for_port

FILES = {  # folder-relative name -> text: spaces, accents, quotes, nested folders
    "Q3 plan – ‘final’ (v2).md": "# Q3 plan\n\nThe harbour kiosk opens on the first of July; Zoë runs the till.",
    "Kaffee & Kuchen/café menu.txt": "Cardamom buns and filter coffee are sold at the harbour kiosk until noon.",
    "Kaffee & Kuchen/old/it's \"the\" recipe.md": "Knead the cardamom dough twice and let it rest overnight.",
}
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A fresh data root (no config file yet) served by `dagster dev` (webserver, daemon, sensors) and
    `nexus serve`, both started before the tenant exists."""
    root = tmp_path_factory.mktemp("journey")
    dagster_home = root / "dagster-home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = user_env(root / "data")
    env.update(DAGSTER_HOME=str(dagster_home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    log = (root / "dagster-dev.log").open("wb")
    port = free_port()
    dagster = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                                "-p", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    serve = None
    try:
        wait_for_port(port, dagster, attempts=1800)
        api_port = free_port()
        serve = subprocess.Popen([str(BIN / "nexus"), "serve", "--host", "127.0.0.1", "--port", str(api_port),
                                  "--log-level", "warning"], env=env)
        wait_for_port(api_port, serve, attempts=1800)  # loaded cores: a minute or more to import and listen
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=120) as http:
            yield env, http, root
    finally:
        if serve is not None:
            stop(serve)
        stop(dagster)
        log.close()


def task_status(http: httpx.Client, key: str, task_id: str) -> str | None:
    status = http.get(f"/nexus/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}).json()["status"]
    return status if status in TERMINAL else None


def names(http: httpx.Client, key: str, text: str, space: str = "notes") -> list[str]:
    """The file names (folder-relative, as ingested) of the hits, best first."""
    answer = http.post(f"/nexus/spaces/{space}/query", json={"q": text, "top_k": 5},
                       headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return [h["metadata"]["source"] for h in answer.json()["hits"]]


@pytest.mark.slow
def test_a_tenant_added_by_command_is_served_ingested_and_mapped_by_the_running_services(running):
    env, http, root = running
    assert not (root / "data" / "config.yaml").exists()
    env = new_tenant(env, "harbour")  # from here on NEXUS_API_KEY, no --key
    key = env["NEXUS_API_KEY"]
    auth = {"Authorization": f"Bearer {key}"}

    # the running server knows the new key at once: the space does not exist yet, the key is not refused
    before = http.post("/nexus/spaces/notes/query", json={"q": "kiosk"}, headers=auth)
    assert before.json()["error"]["code"] == "nexus.space_not_found"

    folder = root / "Notes from Zoë"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    task_id = run_nexus(env, "ingest", str(folder), "--space", "notes").stdout.strip()
    # the running code location's landing sensor runs it (up to a few sensor intervals on loaded cores)
    assert poll(lambda: task_status(http, key, task_id), attempts=900) == "succeeded"

    assert names(http, key, "when does the harbour kiosk open?")[0] == "Q3 plan – ‘final’ (v2).md"
    assert set(names(http, key, "cardamom")) >= {"Kaffee & Kuchen/café menu.txt",
                                                  "Kaffee & Kuchen/old/it's \"the\" recipe.md"}

    # haze_refresh_sensor maps the new space after its ingest run, as for any other space
    drawn = poll(lambda: (r := http.get("/nexus/spaces/notes/haze/map", headers=auth)).status_code == 200 and r,
                 attempts=900)
    assert "<html" in drawn.text.lower()


@pytest.mark.slow
def test_a_file_ingested_from_a_folder_is_erased_by_the_name_it_was_ingested_under(running):
    env, http, root = running
    env = new_tenant(env, "archive")
    key = env["NEXUS_API_KEY"]
    folder = root / "Archiv von Zoë"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    task_id = run_nexus(env, "ingest", str(folder), "--space", "notes").stdout.strip()
    assert poll(lambda: task_status(http, key, task_id), attempts=900) == "succeeded"
    erased = json.loads(run_nexus(env, "erase", "--space", "notes", "--source", "Kaffee & Kuchen/café menu.txt").stdout)
    assert poll(lambda: task_status(http, key, erased["task_id"]), attempts=900) == "succeeded"
    assert "Kaffee & Kuchen/café menu.txt" not in names(http, key, "cardamom")
    assert "Q3 plan – ‘final’ (v2).md" in names(http, key, "harbour kiosk")
