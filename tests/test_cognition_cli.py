"""`nexus cognition import | assemble | show | list`."""

import json
from pathlib import Path

from nexus_query.cli import main
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from tests.test_cognition_bricks import ingest_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
ACME = RequestContext("acme")


def test_import_prints_what_it_found_and_lands_the_export(nexus_home, capsys):
    assert main(["cognition", "import", str(FIXTURES / "claude_conversations.json"), "--key", "acme-demo-key",
                 "--space", "main"]) == 0
    out = capsys.readouterr().out
    assert "claude export: 2 conversations (1 empty, skipped), 4 messages, 9 blocks" in out
    landed = landing_zone(ACME).files.list("landing", "main", "files")
    assert len(landed) == 1 and landed[0].startswith("landing/main/files/conversations/")


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
