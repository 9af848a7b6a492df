"""Bounded requests and fair tenants, as pure ASGI middleware (no per-request task, nothing buffered
beyond the configured limit):

- ``BodyGuardMiddleware`` counts a body while it is read and answers 413 past the route's limit:
  ``api.max_json_body_bytes`` (1 MiB) on every route but those that take large bodies (``large_bodies``:
  ingest, which reads, counts against ``api.max_body_bytes``, spools and checks its body itself, off the
  serving process's event loop and interpreter lock), so a 30 MiB body to a query costs the server 1 MiB of
  reading and no parsing. A body is answered 413 as soon as it is known to be over: a declared
  ``Content-Length`` before any of it is read (and the connection closed when it declares more than
  ``DRAIN_FACTOR`` times the limit). It answers 400 ``nexus.invalid_json`` for a JSON body that is not
  UTF-8, not JSON, uses NaN/Infinity or nests deeper than ``MAX_JSON_DEPTH``; the framework
  then reads the same bytes again, from memory.
- ``RateLimitMiddleware`` gives every API key a token bucket of ``requests_per_minute`` (the key's own,
  else ``api.requests_per_minute``) and answers 429 with ``Retry-After`` when it is empty.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus_query.api.errors import envelope_response
from nexus_query.errors import InvalidJson, NexusError, PayloadTooLarge, RateLimited
from nexus_query.routing import RoutingRegistry

MAX_JSON_DEPTH = 64
# A body over the limit is answered 413 at once. The server (uvicorn) then reads on and drops the rest, so
# a client still sending can read the answer, unless it declared more than this multiple of the limit: that
# connection is closed under it.
DRAIN_FACTOR = 4
# Bodies below this are checked on the event loop; larger ones in a worker thread.
INLINE_CHECK_BYTES = 256 * 1024


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(body: bytes) -> Any:
    """The JSON value of ``body``; ``InvalidJson`` when it is not UTF-8, not JSON, uses NaN or Infinity, or
    nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidJson(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidJson(f"the body is not valid JSON: {str(exc)[:200]}") from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not JSON this API reads, or None when it is."""
    try:
        read_json(body)
    except InvalidJson as exc:
        return exc.message
    return None


async def _send_error(scope: Scope, receive: Receive, send: Send, error: NexusError, *,
                      close: bool = False, headers: dict[str, str] | None = None) -> None:
    extra = {**(headers or {}), **({"Connection": "close"} if close else {})}
    await envelope_response(error, headers=extra or None)(scope, receive, send)


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, registry: Callable[[], RoutingRegistry],
                 large_bodies: Sequence[re.Pattern[str]] = ()) -> None:
        self.app = app
        self.registry = registry
        self.large_bodies = list(large_bodies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        large = any(p.match(scope["path"]) for p in self.large_bodies)
        api = self.registry().config.api
        limit = api.max_body_bytes if large else api.max_json_body_bytes
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes", max_body_bytes=limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(scope, receive, send, too_large, close=declared > limit * DRAIN_FACTOR)
            return
        if large:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                chunks.clear()
                await _send_error(scope, receive, send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        chunks.clear()
        if body and _is_json(scope):
            problem = (json_problem(body) if len(body) < INLINE_CHECK_BYTES
                       else await anyio.to_thread.run_sync(json_problem, body))
            if problem:
                await _send_error(scope, receive, send, InvalidJson(problem))
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per API key (in this process): ``per_minute`` requests a minute, bursts up to it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}
        self.lock = threading.Lock()

    def take(self, key: str, per_minute: int) -> float:
        """0 when the request may go ahead, else the seconds until one token is back."""
        rate = per_minute / 60.0
        now = self.clock()
        with self.lock:
            bucket = self.buckets.setdefault(key, _Bucket(float(per_minute), now))
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


class RateLimitMiddleware:
    """After ``AuthMiddleware``: it reads the key's identity from the scope."""

    def __init__(self, app: ASGIApp, registry: Callable[[], RoutingRegistry]) -> None:
        self.app = app
        self.registry = registry
        self.limiter = RateLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key_id = scope.get("state", {}).get("api_key_id") if scope["type"] == "http" else None
        if key_id:
            per_minute = self.registry().requests_per_minute(key_id)
            if per_minute is not None:
                wait = self.limiter.take(key_id, per_minute)
                if wait > 0:
                    retry_after = max(1, math.ceil(wait))
                    await _send_error(scope, receive, send, RateLimited(
                        f"more than {per_minute} requests a minute for this API key", retry_after=retry_after),
                        headers={"Retry-After": str(retry_after)})
                    return
        await self.app(scope, receive, send)
