"""The second round of adversarial findings, over real HTTP on loopback: the seed's 410 for any cursor that
cannot be used, small bodies on every route but ingest (counted while read, an over-limit declaration
refused before a byte of it is read), artifact ids in either case."""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from nexus_query.api.ingest_body import WORKER_NICENESS, warm_up
from tests.helpers import ACME_KEY, GLOBEX_KEY, assert_envelope, auth

MIB = 2**20
# Only a bound against hanging for ever on a server that waits for the rest of a body; never a speed target.
SOCKET_BOUND_SECONDS = 60


@pytest.mark.parametrize("cursor", ["not-a-cursor", "nx1.bad.cursor", "x" * 4096, "nx1..", "∂", "nx1.AAAA.AAAA"])
def test_any_cursor_that_cannot_be_used_is_410_cursor_invalid(api, cursor):
    client, _, _ = api
    response = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json={"q": "tent", "cursor": cursor})
    assert_envelope(response, 410, "nexus.cursor_invalid")


def test_the_openapi_document_declares_the_cursor_a_bounded_string_and_the_410(api):
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    cursor = spec["components"]["schemas"]["QueryRequest"]["properties"]["cursor"]["anyOf"][0]
    assert cursor == {"type": "string", "minLength": 1, "maxLength": 4096}
    assert "410" in spec["paths"]["/nexus/spaces/{space_id}/query"]["post"]["responses"]


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_BOUND_SECONDS)


def _head(path: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME_KEY}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("path", ["/nexus/spaces/main/ingest", "/nexus/spaces/main/query"])
def test_a_declared_300_mib_body_is_413_before_any_of_it_is_sent_and_the_connection_closes(api, path):
    _, _, base_url = api
    with _connect(base_url) as sock:
        sock.sendall(_head(path, 300 * MIB))
        answer = _read_all(sock)  # nothing of the body was sent: the server answers and closes
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "nexus.payload_too_large"


@pytest.mark.parametrize("path", ["/nexus/spaces/main/query", "/nexus/spaces/main/cognition/assemble",
                                  "/nexus/spaces/main/erase", "/nexus/tasks/abc/retry",
                                  "/nexus/spaces/main/haze/snapshot"])
def test_a_body_over_1_mib_to_a_json_route_is_413_after_1_mib_of_it(api, path):
    """Streamed without a length: the answer comes while the client still has most of 28 MiB to send."""
    _, _, base_url = api
    piece = b" " * MIB
    with _connect(base_url) as sock:
        sock.sendall(_head(path, None))
        for _ in range(2):  # 2 MiB of a 28 MiB body
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        first = sock.recv(64)
    assert first.startswith(b"HTTP/1.1 413"), first


def test_another_tenant_is_served_while_28_mib_bodies_hit_the_query_route(api):
    client, _, base_url = api
    body = json.dumps({"q": "tent", "junk": "x" * (28 * MIB)}).encode()
    answers: list[int] = []

    def flood() -> None:
        with httpx.Client(base_url=base_url, timeout=SOCKET_BOUND_SECONDS) as own:
            for _ in range(3):
                try:
                    answers.append(own.post("/nexus/spaces/main/query", content=body,
                                             headers={**auth(ACME_KEY), "content-type": "application/json"}
                                             ).status_code)
                except httpx.TransportError:  # the server may close under the rest of the body
                    answers.append(413)

    flooder = threading.Thread(target=flood)
    flooder.start()
    served = [client.post("/nexus/spaces/main/query", headers=auth(GLOBEX_KEY), json={"q": "customs"}).status_code
              for _ in range(10)]
    flooder.join()
    assert served == [200] * 10 and answers == [413] * 3


def test_a_body_within_1_mib_still_reaches_the_query(api):
    client, _, _ = api
    response = client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY),
                           json={"q": "tent " * 1000, "top_k": 2})
    assert response.status_code == 200, response.text


def test_an_artifact_id_is_read_in_either_case(api):
    client, _, _ = api
    made = client.post("/nexus/spaces/main/cognition/assemble", headers=auth(ACME_KEY), json={"topic": "tents"})
    assert made.status_code == 200, made.text
    artifact_id = made.json()["artifact_id"]
    upper = client.get(f"/nexus/artifacts/{artifact_id.upper()}", headers=auth(ACME_KEY))
    assert upper.status_code == 200, upper.text
    assert upper.json()["artifact_id"] == artifact_id


@pytest.mark.parametrize("artifact_id", ["sha256:" + "g" * 64, "sha256:abc", "md5:" + "a" * 64])
def test_an_artifact_id_that_breaks_the_artifact_rule_is_refused_with_that_rule(api, artifact_id):
    client, _, _ = api
    response = client.get(f"/nexus/artifacts/{artifact_id}", headers=auth(ACME_KEY))
    assert_envelope(response, 400, "nexus.invalid_id")
    assert "sha256:" in response.json()["error"]["message"]


def _niceness_after_warm_up() -> int:
    warm_up()
    return os.nice(0)


def test_the_ingest_worker_yields_the_cpu_to_the_serving_process():
    """A large body is parsed in a worker at a lower priority: on a busy machine queries are served first."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_niceness_after_warm_up).result() == min(19, os.nice(0) + WORKER_NICENESS)


@pytest.mark.parametrize("timestamp", [0, 1.5, True, "0", "1e9", " -3 "])
def test_a_kpi_timestamp_that_is_not_date_time_text_is_422(api, timestamp):
    """The document says a string of format date-time; a number (or one in a string) is not read as epoch."""
    client, _, _ = api
    response = client.post("/nexus/spaces/main/kpi/measurements", headers=auth(ACME_KEY),
                           json={"readings": [{"metric": "p95_latency", "timestamp": timestamp, "value": 1.0}]})
    error = assert_envelope(response, 422, "nexus.validation_failed")
    assert error["errors"][0]["loc"] == ["body", "readings", "0", "timestamp"]


def test_conflicting_kpi_readings_are_a_documented_409(api):
    client, _, _ = api
    reading = {"metric": "p95_latency", "timestamp": "2000-01-01T00:00:00Z", "value": 1.0}
    response = client.post("/nexus/spaces/main/kpi/measurements", headers=auth(ACME_KEY),
                           json={"readings": [reading, {**reading, "value": 2.0}]})
    assert_envelope(response, 409, "nexus.conflicting_readings")
    spec = client.get("/openapi.json").json()
    assert "409" in spec["paths"]["/nexus/spaces/{space_id}/kpi/measurements"]["post"]["responses"]


def test_a_client_that_leaves_mid_upload_leaves_no_spooled_file_and_no_error(api, caplog):
    _, _, base_url = api
    spooled = os.path.join(tempfile.gettempdir(), "nexus-body-*")
    before = set(glob.glob(spooled))
    with _connect(base_url) as sock:
        sock.sendall(_head("/nexus/spaces/main/ingest", 3 * MIB))
        sock.sendall(b" " * (2 * MIB))  # past the 1 MiB held in memory: a file was started
    with httpx.Client(base_url=base_url, timeout=SOCKET_BOUND_SECONDS) as client:  # the server has moved on
        assert client.post("/nexus/spaces/main/query", headers=auth(ACME_KEY), json={"q": "tent"}).status_code == 200
    deadline = time.monotonic() + SOCKET_BOUND_SECONDS
    while set(glob.glob(spooled)) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(glob.glob(spooled)) - before == set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
