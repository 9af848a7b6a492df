"""Own tenants by command: `nexus tenants add/list`, `nexus keys create`, NEXUS_API_KEY, the config file
reloaded when it changes, and the small truths around them (space_not_found, missing_route, tasks list)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys

import pytest

from nexus_query.cli import build_parser, main
from nexus_query.config import DEFAULT_CONFIG_PATH, default_config
from nexus_query.context import RequestContext
from nexus_query.errors import MissingRoute
from nexus_query.landing import landing_zone
from nexus_query.routing import RoutingRegistry, hash_api_key
from tests.helpers import free_port, load_texts


def add_tenant(*args: str) -> None:
    assert main(["tenants", "add", *args]) == 0


def new_key(capsys, tenant: str) -> str:
    capsys.readouterr()
    assert main(["keys", "create", "--tenant", tenant]) == 0
    return capsys.readouterr().out.strip()


def test_tenants_add_with_no_config_starts_one_in_the_data_root_from_the_shipped_default(nexus_home, capsys):
    add_tenant("umbrella")
    written = (nexus_home / "config.yaml").read_text()
    shipped = DEFAULT_CONFIG_PATH.read_text()
    # the shipped file whole (comments, order, demo tenants), plus one line for the new tenant
    assert written.replace("      umbrella: {}\n", "") == shipped
    assert default_config().source == str(nexus_home / "config.yaml")
    assert "umbrella" in RoutingRegistry.default().tenants("dev")
    assert "started from the shipped default" in capsys.readouterr().out


def test_tenants_add_edits_the_config_in_use_in_place_keeping_comments_and_order(tmp_path, nexus_home, monkeypatch):
    mine = tmp_path / "mine.yaml"
    mine.write_text("# my own notes, kept\n" + DEFAULT_CONFIG_PATH.read_text().replace(
        "      globex: {}\n", "      globex: {}   # a partner\n"))
    monkeypatch.setenv("NEXUS_CONFIG", str(mine))
    add_tenant("umbrella", "--store", str(tmp_path / "elsewhere"))
    text = mine.read_text()
    assert text.startswith("# my own notes, kept\n") and "globex: {}   # a partner" in text
    assert not (nexus_home / "config.yaml").exists()
    routes = RoutingRegistry.default().routes(RequestContext("umbrella"))
    assert routes.nexus_store.uri == str(tmp_path / "elsewhere")
    assert routes.nexus_blob_store is not None  # the environment's defaults for what --store did not name
    assert text.index("globex") < text.index("initech") < text.index("umbrella")


def test_tenants_add_in_a_new_environment_gives_it_its_own_folders(nexus_home):
    add_tenant("umbrella", "--environment", "prod")
    route = RoutingRegistry.default().store_route(RequestContext("umbrella", environment="prod"))
    assert route.uri == str(nexus_home.absolute() / "prod" / "lance")


def test_adding_a_tenant_twice_or_a_bad_name_changes_nothing(nexus_home, capsys):
    add_tenant("umbrella")
    before = (nexus_home / "config.yaml").read_text()
    assert main(["tenants", "add", "umbrella"]) == 2
    assert main(["tenants", "add", "../evil"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "nexus.invalid_id" in err
    assert (nexus_home / "config.yaml").read_text() == before


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(nexus_home, capsys):
    add_tenant("umbrella")
    key = new_key(capsys, "umbrella")
    text = (nexus_home / "config.yaml").read_text()
    assert key.startswith("nx_") and len(key) > 40 and key not in text and hash_api_key(key) in text
    assert RoutingRegistry.default().authenticate(key) == RequestContext("umbrella")
    assert main(["tenants", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if " umbrella " in line)
    assert row.split()[2] == "1"  # one key


def test_keys_create_for_an_unknown_tenant_says_how_to_add_it(nexus_home, capsys):
    assert main(["keys", "create", "--tenant", "umbrella"]) == 2
    assert "nexus tenants add umbrella" in capsys.readouterr().err
    assert not (nexus_home / "config.yaml").exists()


def test_every_command_with_a_key_reads_nexus_api_key(monkeypatch):
    monkeypatch.setenv("NEXUS_API_KEY", "from-the-environment")

    def key_options(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from key_options(child, f"{path} {name}")
            elif action.dest == "key" and action.option_strings:
                yield path, action

    found = dict(key_options(build_parser(["--help"]), "nexus"))
    assert {"nexus query", "nexus ingest", "nexus tasks list", "nexus erase"} <= set(found)
    assert all(not a.required and a.default == "from-the-environment" for a in found.values())


def test_a_query_with_only_nexus_api_key_set_finds_its_rows(store, provider, monkeypatch, capsys):
    load_texts(store, provider, RequestContext("acme"), "main", {"tents": "Return a tent within 60 days."})
    monkeypatch.setenv("NEXUS_API_KEY", "acme-demo-key")
    assert main(["query", "--json", "return a tent"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["source"] == "tents"
    monkeypatch.delenv("NEXUS_API_KEY")
    assert main(["query", "return a tent"]) == 2
    assert "pass --key or set NEXUS_API_KEY" in capsys.readouterr().err


def test_a_changed_config_file_is_served_without_a_restart(nexus_home, capsys):
    add_tenant("umbrella")
    first = RoutingRegistry.default()
    assert RoutingRegistry.default() is first  # unchanged file: the same registry, nothing re-read
    key = new_key(capsys, "umbrella")  # a second process edits the file
    assert RoutingRegistry.default() is not first
    assert RoutingRegistry.default().authenticate(key).tenant_id == "umbrella"


def test_a_broken_config_change_keeps_the_last_good_config_and_logs_why(nexus_home, capsys, caplog):
    add_tenant("umbrella")
    key = new_key(capsys, "umbrella")
    good = default_config()
    path = nexus_home / "config.yaml"
    path.write_text(path.read_text() + "\nenvironments: [not, a, mapping\n")
    with caplog.at_level(logging.ERROR, logger="nexus"):
        assert default_config() is good
        assert default_config() is good
    assert [r.message for r in caplog.records if "does not load" in r.message][:1]
    assert len([r for r in caplog.records if "does not load" in r.message]) == 1  # once per change, not per call
    assert RoutingRegistry.default().authenticate(key).tenant_id == "umbrella"


def test_missing_route_names_the_tenant_and_the_config_file(nexus_home):
    with pytest.raises(MissingRoute) as info:
        RoutingRegistry.default().store_route(RequestContext("initech"))
    details = info.value.envelope()["error"]
    assert details["tenant"] == "initech" and details["config"] == str(DEFAULT_CONFIG_PATH)
    assert "'initech'" in details["message"] and str(DEFAULT_CONFIG_PATH) in details["message"]


def test_erasing_in_a_space_that_does_not_exist_is_space_not_found_and_creates_nothing(nexus_home, capsys):
    assert main(["erase", "--key", "acme-demo-key", "--space", "nosuch", "--source", "a.md"]) == 2
    assert capsys.readouterr().err.startswith("error nexus.space_not_found (404): space 'nosuch' does not exist")
    files = [p for p in nexus_home.rglob("*") if p.is_file()] if nexus_home.exists() else []
    assert [p.name for p in files if p.name != "cursor.secret"] == []


def test_tasks_list_prints_a_header_and_each_task_kind(nexus_home, capsys):
    zone = landing_zone(RequestContext("acme"))
    zone.land_batch("main", [{"type": "text", "content": "hello"}])
    assert main(["tasks", "list", "--key", "acme-demo-key"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:4] == ["task", "kind", "state", "space"]
    assert row.split()[1:4] == ["ingest", "queued", "main"]



def test_a_semicolon_csv_is_one_error_line_naming_the_line_and_the_separator(tmp_path, capsys):
    day = tmp_path / "p95 latency; März.csv"
    day.write_text("timestamp;value\n2026-11-16T13:00:00Z;180,5\n2026-11-16T13:01:00Z;181,0\n")
    assert main(["kpi", "facts", str(day), "--metric", "p95_latency"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2 has 2 field(s) where the header has 1" in err and "uses ';'" in err


def in_fresh_interpreter(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)


def test_a_query_with_nexus_url_asks_the_running_server_and_loads_no_store_or_model(api):
    _, _, base_url = api
    done = in_fresh_interpreter(
        "import sys; from nexus_query.cli import main; rc = main(['query', '--json', 'return a tent']); "
        "heavy = sorted({'lancedb', 'pyarrow', 'torch', 'sentence_transformers', 'polars'} & set(sys.modules)); "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)",
        {"NEXUS_URL": base_url, "NEXUS_API_KEY": "acme-demo-key"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["source"].startswith("acme-")
    assert "HEAVY []" in done.stderr


def test_with_nexus_url_a_refused_query_is_the_servers_error_line_and_a_dead_url_says_what_to_do(api, capsys,
                                                                                                monkeypatch):
    _, _, base_url = api
    monkeypatch.setenv("NEXUS_URL", base_url)
    assert main(["query", "--key", "acme-demo-key", "--space", "nosuch", "tent"]) == 2
    assert capsys.readouterr().err.startswith("error nexus.space_not_found (404): ")
    monkeypatch.setenv("NEXUS_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["query", "--key", "acme-demo-key", "tent"]) == 2
    assert "does not answer" in capsys.readouterr().err


def test_commands_that_need_no_store_start_without_lancedb_or_dagster(nexus_home):
    done = in_fresh_interpreter(
        "import sys; from nexus_query.cli import main; main(['tenants', 'list']); main(['keys', 'hash', 'k']); "
        "print('HEAVY', sorted({'lancedb', 'pyarrow', 'torch', 'dagster', 'polars'} & set(sys.modules)))",
        {"NEXUS_HOME": str(nexus_home)})
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout and " acme " in done.stdout
