"""A throwaway HTTP server on loopback for a bench to warm its own client against, so the first request it
times pays no first-use cost of the client library (imports, first connection: a few ms here): a
first-versus-warm figure is then the server's, not the bench's."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


class _Answer(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer  # noqa: N815 (the standard library's names)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Yields the base URL of a server that answers ``{}`` to anything; stopped on exit."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
