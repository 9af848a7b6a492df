import json
import os
import subprocess
import sys

from nexus_query.cli import main
from nexus_query.context import RequestContext
from tests.helpers import load_texts


def test_nexus_query_prints_a_table_of_hits(store, provider, capsys):
    load_texts(store, provider, RequestContext("acme"), "main",
               {"tents": "Return a tent within 60 days.", "stoves": "The stove burns propane."})
    assert main(["query", "--key", "acme-demo-key", "--space", "main", "how do I return a tent", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "score" in out[0] and "content" in out[0]
    assert "tents" in out[2] and "Return a tent" in out[2]


def test_nexus_query_for_a_tenant_without_store_route_prints_the_503_envelope(nexus_home):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nexus"), "query", "--json", "--key",
                             "initech-demo-key", "anything"], capture_output=True, text=True)
    assert result.returncode == 2
    envelope = json.loads(result.stderr.strip().splitlines()[-1])
    assert envelope["error"]["code"] == "nexus_store.missing_route"
    assert envelope["error"]["resource_kind"] == "nexus_store"


def test_nexus_query_with_a_bad_key_is_unauthorized(nexus_home, capsys):
    assert main(["query", "--key", "nope", "anything"]) == 2
    assert capsys.readouterr().err == "error nexus.unauthorized (401): invalid API key\n"
    assert main(["query", "--json", "--key", "nope", "anything"]) == 2
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "nexus.unauthorized"
