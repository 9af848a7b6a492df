"""A user's own chat export, black box through the CLI on a fresh data root: a tenant and key by command,
import the export (named as people name downloads) with only NEXUS_API_KEY set, assemble an artifact for a
topic and show it the way an agent reads it."""

import json
import shutil

import pytest

from tests.helpers import CONVERSATIONS, new_tenant, run_nexus, user_env

TOPIC = "what to do with an Embercore stove from batch EC-2312"


def nexus(env: dict[str, str], *args: str) -> str:
    return run_nexus(env, *args).stdout


@pytest.mark.slow  # three model-loading processes and an in-process Dagster run
def test_a_chat_export_imported_by_a_new_tenant_is_assembled_and_shown_for_an_agent(tmp_path):
    env = new_tenant(user_env(tmp_path / "data"), "kiosk")
    export = tmp_path / "Downloads" / "Claude export (März) – 'support'.json"
    export.parent.mkdir()
    shutil.copy(CONVERSATIONS / "claude_conversations.json", export)

    imported = json.loads(nexus(env, "cognition", "import", str(export), "--space", "support", "--wait", "--json"))
    assert imported["task"]["status"] == "succeeded" and imported["ingest"]["bricks_gained"] > 0

    artifact = json.loads(nexus(env, "cognition", "assemble", TOPIC, "--space", "support", "--json"))
    assert artifact["payload"]["coverage_status"] == "ASSEMBLED"
    prompt = nexus(env, "cognition", "show", artifact["artifact_id"], "--for-agent")
    assert prompt.startswith("**SYSTEM RULES (NEXUS COGNITION):**") and artifact["artifact_id"] in prompt
    assert "EC-2312" in prompt
