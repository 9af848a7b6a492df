"""A user's own chat export, black box through the CLI on a fresh data root: a tenant and key by command,
import the export (named as people name downloads) with only NEXUS_API_KEY set, assemble an artifact for a
topic and show it the way an agent reads it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CONVERSATIONS

BIN = Path(sys.executable).parent
TOPIC = "what to do with an Embercore stove from batch EC-2312"


def nexus(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "nexus"), *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"nexus {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow  # three model-loading processes and an in-process Dagster run
def test_a_chat_export_imported_by_a_new_tenant_is_assembled_and_shown_for_an_agent(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CONFIG", "NEXUS_API_KEY", "NEXUS_URL",
                                                            "DAGSTER_HOME")}
    env["NEXUS_HOME"] = str(tmp_path / "data")
    nexus(env, "tenants", "add", "kiosk")
    env["NEXUS_API_KEY"] = nexus(env, "keys", "create", "--tenant", "kiosk").strip()
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
