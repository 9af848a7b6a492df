"""Every failure leaves the API as the contract's ErrorEnvelope: Nexus errors, the framework's own
404/405/422, and anything unexpected (a 500 that names no internals; the log has the traceback)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus_query.cognition.artifacts import ARTIFACT_ID_RULE
from nexus_query.context import ID_PATTERN
from nexus_query.errors import (
    InvalidFilter,
    InvalidId,
    InvalidJson,
    MethodNotAllowed,
    NexusError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger("nexus_query.api")


def envelope_response(exc: NexusError, headers: dict[str, str] | None = None) -> JSONResponse:
    if isinstance(exc, RateLimited):
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after)}
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=headers)


def refusal_response(status: int, envelope: dict[str, Any] | None, retry_after: int | None) -> JSONResponse:
    """An error a worker returned as data (an exception does not cross the process boundary intact)."""
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(envelope, status_code=status, headers=headers)


def _validation_error(exc: RequestValidationError) -> NexusError:
    problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                 "type": str(e.get("type", ""))} for e in exc.errors()][:20]
    if any(p["type"] == "json_invalid" for p in problems):
        return InvalidJson("request body is not valid JSON", errors=problems)
    ids = [p["loc"][1] for p in problems if p["loc"][:1] == ["path"] and len(p["loc"]) > 1]
    if ids == ["artifact_id"]:  # the one path id with a rule of its own
        return InvalidId(ARTIFACT_ID_RULE, field="artifact_id")
    if ids and len(ids) == len(problems):  # a path id that breaks the id rule: the same answer as everywhere
        return InvalidId(f"{ids[0]} must match {ID_PATTERN.pattern} (lowercase ASCII letters, digits, '_' or '-')",
                         field=ids[0])
    if problems and all(p["loc"][:2] == ["body", "filters"] for p in problems):
        return InvalidFilter("filters do not follow the filter grammar", errors=problems)
    return ValidationFailed("request does not match the API schema", errors=problems)


def _http_error(exc: StarletteHTTPException) -> NexusError:
    if exc.status_code == 404:
        return NotFound("no such endpoint")
    if exc.status_code == 405:
        return MethodNotAllowed("method not allowed on this endpoint")
    if exc.status_code == 401:
        return Unauthorized("missing or invalid API key")
    if exc.status_code == 413:
        return PayloadTooLarge("the request body is too large")
    if exc.status_code == 400:  # the framework could not read the body (e.g. bytes that are not UTF-8)
        return InvalidJson("the request body could not be read as JSON")
    error = NexusError(str(exc.detail) if isinstance(exc.detail, str) else "request failed")
    error.status = exc.status_code  # type: ignore[misc]
    return error


def install_error_handlers(app: FastAPI) -> None:
    async def nexus_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NexusError)
        if exc.status >= 500:
            log.warning("%s %s -> %s %s", request.method, request.url.path, exc.status, exc.code)
        return envelope_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return envelope_response(_validation_error(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        return envelope_response(_http_error(exc), headers=headers)

    app.add_exception_handler(NexusError, nexus_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


class CatchAllMiddleware:
    """Turns any unexpected exception into the 500 envelope and does not re-raise it (Starlette's own
    500 handler re-raises, and the server then drops the kept-alive connection under the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await envelope_response(NexusError("internal error; the server log has the details"))(
                scope, receive, send)
