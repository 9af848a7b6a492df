"""What `nexus query` prints: hits and nothing else (no model-loading progress), sources whole or cut with
an ellipsis, one readable line per error, the help naming the default mode."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from nexus_query.cli import build_parser, format_hits
from nexus_query.context import RequestContext
from nexus_query.results import DEFAULT_MODE
from tests.helpers import load_texts

NEXUS = os.path.join(os.path.dirname(sys.executable), "nexus")
ACME = RequestContext("acme")
LONG_SOURCE = "conversations/chatgpt/3f2a9c1e-77d4-4c5e-9a51-0b8e2f6d4c10.json"


def run(args: list[str], cwd, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    return subprocess.run([NEXUS, *args], capture_output=True, text=True, cwd=cwd, env={**env, **extra_env})


def test_a_query_prints_hits_and_no_progress_bars_from_any_folder(store, provider, tmp_path):
    load_texts(store, provider, ACME, "main", {LONG_SOURCE: "Return a tent within 60 days.",
                                               "stoves": "The stove burns propane."})
    here = tmp_path / "anywhere"
    here.mkdir()
    # empty model caches: the query loads the model with torch and exports it, the noisiest case
    quiet = run(["query", "--key", "acme-demo-key", "how do I return a tent"], cwd=here,
                NEXUS_MODEL_CACHE=str(tmp_path / "models-quiet"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "Loading weights" not in quiet.stdout and "it/s]" not in quiet.stdout
    assert LONG_SOURCE in quiet.stdout  # the source is shown whole (not "conversations/chat")
    assert list(here.iterdir()) == []  # nothing created in the current folder
    verbose = run(["query", "--verbose", "--key", "acme-demo-key", "how do I return a tent"], cwd=here,
                  NEXUS_MODEL_CACHE=str(tmp_path / "models-verbose"))
    assert verbose.returncode == 0 and "Loading weights" in verbose.stderr  # --verbose lets the libraries speak


def test_an_error_is_one_readable_line_and_the_envelope_with_json(store, provider, tmp_path):
    load_texts(store, provider, ACME, "docs", {"tents": "Return a tent within 60 days."})
    plain = run(["query", "--key", "acme-demo-key", "--space", "main", "tent"], cwd=tmp_path)
    assert plain.returncode == 2 and plain.stdout == ""
    line, = plain.stderr.splitlines()
    assert line.startswith("error nexus.space_not_found (404): space 'main' does not exist; "
                           "the spaces that exist: docs (looked in ")
    enveloped = run(["query", "--json", "--key", "acme-demo-key", "--space", "main", "tent"], cwd=tmp_path)
    assert enveloped.returncode == 2 and enveloped.stderr.startswith('{"error": {"code": "nexus.space_not_found"')


def test_a_source_too_long_for_the_table_is_cut_at_the_end_with_an_ellipsis():
    hit = SimpleNamespace(score=0.5, space="tenant", source="s/" + "x" * 80, content="text")
    row = format_hits([hit], width=120).splitlines()[2]
    assert ("s/" + "x" * 61 + "…") in row


def test_the_help_names_the_default_mode():
    query_help = build_parser()._subparsers._group_actions[0].choices["query"].format_help()
    assert f"default: {DEFAULT_MODE}" in " ".join(query_help.split())
