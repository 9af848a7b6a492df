"""`nexus cognition import | assemble | show | list`."""

import json
import re
from pathlib import Path

from nexus_query.cli import main
from nexus_query.cognition.recall import recall_bricks_readonly
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from tests.helpers import ingest_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
ACME = RequestContext("acme")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_parse_prints_one_canonical_conversation_per_line_with_every_branch_and_writes_nothing(
        nexus_home, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    assert main(["cognition", "parse", str(FIXTURES / "chatgpt_content_shapes.json")]) == 0
    captured = capsys.readouterr()
    assert files_under(tmp_path) == before  # neither the store nor the working folder gained a file
    [line] = captured.out.splitlines()
    conversation = json.loads(line)
    assert (conversation["conversation_id"], conversation["source_format"], conversation["current_message_id"]) == (
        "gpt-shapes", "chatgpt", "a8")
    messages = {m["message_id"]: m for m in conversation["messages"]}
    assert messages["a7b"]["parent_id"] == "u2b" and messages["a7c"]["parent_id"] == "u2b"  # both regenerations
    assert messages["a2"]["blocks"] == [
        {"index": 0, "text": "[thinking]\nThe photo shows peeling tape along the ridge line."}]
    assert "1 conversations, 20 messages (3 on alternate branches), 29 blocks" in captured.err


def test_parse_leaves_out_empty_conversations_as_import_does(nexus_home, capsys):
    assert main(["cognition", "parse", str(FIXTURES / "claude_conversations.json")]) == 0
    ids = [json.loads(line)["conversation_id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == ["claude-conv-valve", "claude-conv-old"]


def test_parse_of_a_file_that_is_not_an_export_prints_one_error_line(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text('{"notes": []}')
    assert main(["cognition", "parse", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error nexus.invalid_request (400): ") and err.count("\n") == 1


def test_import_prints_what_it_found_and_its_task_id_and_lands_the_export(nexus_home, capsys):
    assert main(["cognition", "import", str(FIXTURES / "claude_conversations.json"), "--key", "acme-demo-key",
                 "--space", "main"]) == 0
    out = capsys.readouterr().out
    assert "claude export: 2 conversations (1 empty, skipped), 4 messages, 9 blocks" in out
    task_id = re.search(r"^task: ([0-9a-f]{32})$", out, re.M).group(1)
    zone = landing_zone(ACME)
    task = zone.read_task(task_id)
    assert (task.status, task.kind, task.space_id) == ("queued", "cognition_import", "main")
    assert task.counts == {"conversations": 2, "messages": 4, "blocks": 9}
    landed = zone.files.list("landing", "main", "files")
    assert len(landed) == 1 and landed[0].startswith("landing/main/files/conversations/")
    assert f"-task-{task_id}-" in landed[0]


def test_import_wait_ingests_in_process_and_prints_the_bricks_the_space_gained(nexus_home, capsys):
    args = ["cognition", "import", str(FIXTURES / "chatgpt_content_shapes.json"), "--key", "acme-demo-key", "--wait"]
    assert main(args) == 0
    out = capsys.readouterr().out
    task_id = re.search(r"^task: ([0-9a-f]{32})$", out, re.M).group(1)
    assert re.search(rf"the space gained 29 bricks .*; task {task_id} succeeded$", out, re.M), out
    bricks = recall_bricks_readonly(ACME, "main", "seam warranty for a leaking tent", k=50)
    assert {b.message_id for b in bricks} >= {"a7a", "a7b"}  # alternate branches are bricks too
    assert landing_zone(ACME).read_task(task_id).status == "succeeded"

    assert main(args[:-1] + ["--wait", "--json"]) == 0  # the same export again: nothing new
    again = json.loads(capsys.readouterr().out)
    assert again["ingest"]["bricks_gained"] == 0 and again["task"]["status"] == "succeeded"


def test_import_of_a_file_that_is_not_an_export_prints_the_error_envelope(nexus_home, tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text('{"notes": []}')
    assert main(["cognition", "import", str(bad), "--key", "acme-demo-key", "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "nexus.invalid_request"
    assert main(["cognition", "import", str(bad), "--key", "acme-demo-key"]) == 2
    assert capsys.readouterr().err.startswith("error nexus.invalid_request (400): ")


def test_assemble_then_show_and_list_the_artifact(store, provider, capsys):
    ingest_fixture(store, provider, ACME, "claude_conversations.json")
    assert main(["cognition", "assemble", "--key", "acme-demo-key", "--space", "main", "--json",
                 "what to do with an Embercore stove from batch EC-2312"]) == 0
    artifact = json.loads(capsys.readouterr().out)
    assert artifact["payload"]["coverage_status"] == "ASSEMBLED"

    assert main(["cognition", "assemble", "--key", "acme-demo-key",
                 "what to do with an Embercore stove from batch EC-2312"]) == 0
    summary = capsys.readouterr().out
    assert artifact["artifact_id"] in summary and "conversations/claude/claude-conv-valve.json" in summary

    assert main(["cognition", "show", artifact["artifact_id"], "--key", "acme-demo-key", "--for-agent"]) == 0
    prompt = capsys.readouterr().out
    assert prompt.startswith("**SYSTEM RULES (NEXUS COGNITION):**") and artifact["artifact_id"] in prompt

    assert main(["cognition", "list", "--key", "acme-demo-key", "--space", "main"]) == 0
    assert artifact["artifact_id"] in capsys.readouterr().out


def test_another_tenant_cannot_show_the_artifact(store, provider, capsys):
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    assert main(["cognition", "assemble", "--key", "acme-demo-key", "--json", "shipping to Alaska"]) == 0
    artifact_id = json.loads(capsys.readouterr().out)["artifact_id"]
    assert main(["cognition", "show", artifact_id, "--key", "globex-demo-key"]) == 2
    assert capsys.readouterr().err.startswith("error nexus.not_found (404): ")
