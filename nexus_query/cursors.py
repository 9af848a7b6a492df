"""Query cursors: signed, bound to who asked what, and pinned to the table versions of page 1.

A cursor is ``nx1.<payload>.<signature>`` (base64url). The payload names the tenant, project,
environment and space, a digest of the query (text or vector, filters, mode, include_global), the table
versions page 1 read, the offset of the next page and when it was issued; the signature is an HMAC-SHA256
over it with the configured secret. Anything wrong with a cursor is ``CursorInvalid`` (410): the client
starts again from page 1. The message never says which binding failed, so cursors leak nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from nexus_query.config import NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import ConfigError, CursorInvalid

PREFIX = "nx1"
SECRET_FILE = "cursor.secret"
MAX_CURSOR_CHARS = 4096
CURSOR_INVALID = "cursor is invalid or expired; run the query again without a cursor"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CursorState:
    """What page 2 onwards needs: the versions to read and where to continue."""

    versions: dict[str, int | None]  # "tenant" / "global" -> table version; None: the table did not exist
    offset: int


class CursorSigner:
    """Signs and verifies cursors. ``secret`` may be a function that returns it: the generated local
    secret is then made on the first cursor signed or read, so a query that fails (or needs no second
    page) creates nothing in the data root."""

    def __init__(self, secret: bytes | Callable[[], bytes], ttl_seconds: int = 86_400) -> None:
        self._secret_source = secret
        self._secret_bytes: bytes | None = secret if isinstance(secret, bytes) else None
        self.ttl_seconds = ttl_seconds

    @property
    def _secret(self) -> bytes:
        if self._secret_bytes is None:
            source = self._secret_source
            secret = source() if callable(source) else source
            if len(secret) < 16:
                raise ConfigError("cursor.secret must be at least 16 characters")
            self._secret_bytes = secret
        return self._secret_bytes

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def seal(self, prefix: str, body: dict[str, Any]) -> str:
        """``<prefix>.<payload>.<signature>``: ``body`` as compact JSON, signed (cursors, capability links)."""
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return f"{prefix}.{_b64(payload)}.{_b64(self._signature(payload))}"

    def unseal(self, prefix: str, token: object, max_chars: int = MAX_CURSOR_CHARS) -> dict[str, Any] | None:
        """The body ``seal`` signed into ``token``, or None for anything forged, damaged or of another kind."""
        if not isinstance(token, str) or len(token) > max_chars or token.count(".") != 2:
            return None
        found_prefix, payload_part, signature_part = token.split(".")
        try:
            payload, signature = _unb64(payload_part), _unb64(signature_part)
        except (binascii.Error, ValueError):
            return None
        if found_prefix != prefix or not hmac.compare_digest(signature, self._signature(payload)):
            return None
        try:
            body = json.loads(payload)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _binding(ctx: RequestContext, space_id: str, query_digest: str) -> dict[str, str]:
        return {"t": ctx.tenant_id, "p": ctx.project_id, "e": ctx.environment, "s": space_id, "q": query_digest}

    def issue(self, ctx: RequestContext, space_id: str, query_digest: str, state: CursorState,
              *, now: float | None = None) -> str:
        return self.seal(PREFIX, {**self._binding(ctx, space_id, query_digest), "v": state.versions,
                                  "o": state.offset, "i": int(now if now is not None else time.time())})

    def open(self, cursor: str, ctx: RequestContext, space_id: str, query_digest: str,
             *, now: float | None = None) -> CursorState:
        """Verify ``cursor`` for this caller and query, or raise ``CursorInvalid``."""
        invalid = CursorInvalid(CURSOR_INVALID)
        body = self.unseal(PREFIX, cursor)
        if body is None:
            raise invalid
        try:
            binding = {k: body[k] for k in ("t", "p", "e", "s", "q")}
            versions, offset, issued = body["v"], body["o"], body["i"]
        except (ValueError, KeyError, TypeError):
            raise invalid from None
        if binding != self._binding(ctx, space_id, query_digest):
            raise invalid
        clock = now if now is not None else time.time()
        if not isinstance(issued, int) or not 0 <= clock - issued <= self.ttl_seconds:
            raise invalid
        if not isinstance(offset, int) or offset < 0 or not isinstance(versions, dict):
            raise invalid
        return CursorState(versions=versions, offset=offset)


def query_digest(parts: dict[str, Any]) -> str:
    """A digest of what makes two queries the same query (the text or vector, filters, mode, ...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _local_secret(data_root: Path) -> bytes:
    """A random secret kept in ``{data_root}/cursor.secret``, created once (the first writer wins, so
    every process on the host signs with the same one)."""
    path = data_root / SECRET_FILE
    if not path.exists():
        data_root.mkdir(parents=True, exist_ok=True)
        tmp = data_root / f".{SECRET_FILE}.{secrets.token_hex(8)}"
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # fails if another process got there first; theirs is kept
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


@lru_cache(maxsize=8)
def signer_for(config: NexusConfig) -> CursorSigner:
    if not config.cursor.secret:
        return CursorSigner(lambda: _local_secret(config.data_root), config.cursor.ttl_seconds)
    secret = config.cursor.secret.encode()
    if len(secret) < 16:
        raise ConfigError("cursor.secret must be at least 16 characters")
    return CursorSigner(secret, config.cursor.ttl_seconds)
