"""Asking a running ``nexus serve`` (``NEXUS_URL``) from the command line, with the standard library only: a
command that a warm server answers must not pay for the model, LanceDB or Dagster imports itself."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

URL_ENV_VAR = "NEXUS_URL"  # a running `nexus serve`: commands ask it instead of loading the model here


class ServerError(Exception):
    """The server answered with an error status; ``envelope`` is its ``ErrorEnvelope`` (None when the body
    was not one, e.g. a proxy's page)."""

    def __init__(self, status: int, reason: str, envelope: dict[str, Any] | None) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.envelope = status, reason, envelope


def call(url: str, method: str, path: str, key: str, body: bytes | None = None, timeout: float = 60) -> Any:
    """The JSON answer of ``method path`` at the server ``url`` as the holder of ``key``. ``ServerError``
    for an error status, ``OSError`` when nothing answers."""
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{url.rstrip('/')}{path}", data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            envelope = json.load(exc)
            envelope["error"]["code"]
        except (ValueError, KeyError, TypeError):
            envelope = None
        raise ServerError(exc.code, str(exc.reason), envelope) from None


def report(url: str, exc: OSError | ServerError, as_json: bool) -> int:
    """Say on stderr why the server at ``url`` did not do it; the command's exit status (2)."""
    if isinstance(exc, ServerError) and exc.envelope is not None:
        error = exc.envelope["error"]
        print(json.dumps(exc.envelope) if as_json else f"error {error['code']} ({exc.status}): {error['message']}",
              file=sys.stderr)
    elif isinstance(exc, ServerError):
        print(f"error: {URL_ENV_VAR} {url} answered {exc.status} {exc.reason}", file=sys.stderr)
    else:
        print(f"error: {URL_ENV_VAR}={url} does not answer ({exc}); start `nexus serve` or unset {URL_ENV_VAR}",
              file=sys.stderr)
    return 2
