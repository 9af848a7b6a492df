"""Typed errors. Each knows its contract code and HTTP status and renders the ``ErrorEnvelope``."""

from __future__ import annotations

from typing import Any, ClassVar


class NexusError(Exception):
    code: ClassVar[str] = "nexus.internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidRequest(NexusError):
    code = "nexus.invalid_request"
    status = 400


class ConflictingReadings(InvalidRequest):
    """KPI readings that are each valid but contradict each other (the same reading twice, one metric in two
    units): no schema can say so, so it is a conflict, not a malformed request."""

    code = "nexus.conflicting_readings"
    status = 409


class InvalidId(InvalidRequest):
    code = "nexus.invalid_id"


class InvalidFilter(InvalidRequest):
    code = "nexus.invalid_filter"


class InvalidJson(InvalidRequest):
    """The body is not JSON we read: not UTF-8, not JSON, NaN/Infinity, or nested too deeply."""

    code = "nexus.invalid_json"


class ValidationFailed(InvalidRequest):
    """The request is well-formed JSON but its fields are wrong (FastAPI's 422 maps here)."""

    code = "nexus.validation_failed"
    status = 422


class Unauthorized(NexusError):
    code = "nexus.unauthorized"
    status = 401


class Forbidden(NexusError):
    code = "nexus.forbidden"
    status = 403


class GlobalSpaceReadOnly(Forbidden):
    code = "nexus.global_space_read_only"


class NotFound(NexusError):
    code = "nexus.not_found"
    status = 404


class SpaceNotFound(NotFound):
    """``looked_in`` (the database folder) is for the operator: ``str()`` names it, the HTTP envelope
    does not (a tenant needs its spaces, not the server's storage layout)."""

    code = "nexus.space_not_found"

    def __init__(self, message: str, *, looked_in: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.looked_in = looked_in

    def __str__(self) -> str:
        return f"{self.message} (looked in {self.looked_in})" if self.looked_in else self.message


class BlobNotFound(NotFound):
    """An ingest item names a blob the tenant's store does not hold."""

    code = "nexus.blob_not_found"


class PayloadTooLarge(NexusError):
    """The request body is larger than the server accepts (counted while it is read)."""

    code = "nexus.payload_too_large"
    status = 413


class RateLimited(NexusError):
    """Too many requests for this API key, or a space's row quota is used up; ``retry_after`` seconds."""

    code = "nexus.rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    code = "nexus.quota_exceeded"


class MethodNotAllowed(NexusError):
    """The HTTP method is not served on this path (the framework's 405, enveloped)."""

    code = "nexus.method_not_allowed"
    status = 405


class EmbedderMismatch(NexusError):
    code = "nexus.embedder_mismatch"
    status = 409


class WriteConflict(NexusError):
    """Concurrent writers kept conflicting with a write after every bounded retry; nothing was written."""

    code = "nexus.write_conflict"
    status = 409


class ImportInProgress(NexusError):
    """Another conversation import of the space kept its files claimed; nothing was stored: try again."""

    code = "nexus.import_in_progress"
    status = 409

    def __init__(self, space_id: str) -> None:
        super().__init__(f"another conversation import into space {space_id!r} is still running; "
                         "try again when it has finished", space_id=space_id)


class TaskNotRetryable(NexusError):
    """Only a failed ingest task can be landed again."""

    code = "nexus.task_not_retryable"
    status = 409


class NothingToErase(NotFound):
    """An erasure request named nothing the space has (``looked_for``: how many names; ``closest``:
    the nearest names the space does have). Unless the request allows none, nothing is queued."""

    code = "nexus.nothing_to_erase"


class SpaceErasing(NexusError):
    """The space is being erased: writes to it wait until that erasure ends."""

    code = "nexus.space_erasing"
    status = 409


class TaskGone(NexusError):
    """The task's batch was erased (the task ended ``cancelled``): there is nothing left to retry."""

    code = "nexus.task_gone"
    status = 410


class CursorInvalid(NexusError):
    code = "nexus.cursor_invalid"
    status = 410


class BudgetExceeded(NexusError):
    code = "nexus.budget_exceeded"
    status = 402


class ProviderUnavailable(NexusError):
    """A remote embedding provider kept failing (429/5xx) after every retry."""

    code = "nexus.provider_unavailable"
    status = 503


class MissingRoute(NexusError):
    """The routing registry has no route of ``resource_kind`` for the caller's tenant."""

    status = 503

    def __init__(self, resource_kind: str, message: str | None = None, **details: Any) -> None:
        super().__init__(
            message or f"no {resource_kind} route is configured for this tenant",
            resource_kind=resource_kind,
            **details,
        )
        self.resource_kind = resource_kind

    @property
    def code(self) -> str:  # type: ignore[override]
        return f"{self.resource_kind}.missing_route"


class ConfigError(NexusError):
    code = "nexus.config_invalid"
    status = 500


class MissingExtra(ConfigError):
    """A configured feature needs an optional dependency group (a pip extra) that is not installed: the
    message names the extra to install, e.g. ``pip install 'nexus[local-model]'``."""

    code = "nexus.missing_extra"

    def __init__(self, extra: str, message: str, **details: Any) -> None:
        super().__init__(message, extra=extra, **details)
        self.extra = extra
