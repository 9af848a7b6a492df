"""RemoteProvider against a real HTTP server on loopback that serves the local model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from nexus_query.context import RequestContext
from nexus_query.embeddings import BillingGate, RemoteProvider
from nexus_query.errors import BudgetExceeded, ProviderUnavailable

ACME = RequestContext("acme")


class EmbeddingServer:
    """An OpenAI-compatible /v1/embeddings endpoint; ``fail_next`` queues error statuses to answer first."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.fail_next: list[int] = []
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                server.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.fail_next:
                    status = server.fail_next.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                vectors = server.provider.embed(body["input"])
                payload = {"object": "list", "model": body["model"],
                           "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                    for i, v in reversed(list(enumerate(vectors)))]}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(provider):
    with EmbeddingServer(provider) as s:
        yield s


def remote(server, tmp_path, budgets=None, **kwargs):
    gate = BillingGate(tmp_path / "billing.sqlite", budgets or {"default": 1_000_000})
    return RemoteProvider(server.url, "all-MiniLM-L6-v2", 384, gate=gate, backoff_seconds=0.01, **kwargs)


def test_remote_vectors_match_the_local_model_in_order(server, provider, tmp_path):
    texts = ["return a tent", "propane stove", "shipping times"]
    got = remote(server, tmp_path).embed(texts, ACME)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, provider.embed(texts), atol=1e-5)
    assert remote(server, tmp_path).info.id == provider.info.id


def test_remote_retries_429_and_5xx_then_succeeds(server, tmp_path):
    server.fail_next = [429, 503, 500]
    vectors = remote(server, tmp_path).embed(["hello"], ACME)
    assert vectors.shape == (1, 384)
    assert server.requests == 4


def test_remote_gives_up_after_max_retries_and_refunds_the_charge(server, tmp_path):
    server.fail_next = [429] * 10
    provider = remote(server, tmp_path, max_retries=2)
    with pytest.raises(ProviderUnavailable) as info:
        provider.embed(["hello"], ACME)
    assert info.value.status == 503 and server.requests == 3
    assert provider.gate.spent("acme") == 0


def test_budget_gate_refuses_work_once_spent_and_sends_nothing(server, tmp_path):
    provider = remote(server, tmp_path, budgets={"acme": 40, "default": 0})
    provider.embed(["a short text of about forty chars......"], ACME)  # 11 tokens
    spent = provider.gate.spent("acme")
    assert 0 < spent <= 40
    requests_before = server.requests
    with pytest.raises(BudgetExceeded) as info:
        provider.embed(["x" * 200], ACME)
    assert info.value.status == 402 and info.value.envelope()["error"]["budget"] == 40
    assert server.requests == requests_before
    assert provider.gate.spent("acme") == spent
    with pytest.raises(BudgetExceeded):
        provider.embed(["anything"], RequestContext("globex"))  # default budget 0


def test_client_errors_are_not_retried(server, tmp_path):
    server.fail_next = [400]
    with pytest.raises(ProviderUnavailable):
        remote(server, tmp_path).embed(["hello"], ACME)
    assert server.requests == 1
