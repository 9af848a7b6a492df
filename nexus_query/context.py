"""Identity: the only place a tenant id comes from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nexus_query.errors import InvalidId

# ASCII only, so look-alike letters from other scripts never pass; no dots or slashes, so an id can
# never climb out of its folder.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)


def validate_id(value: object, kind: str) -> str:
    """Return ``value`` when it is a safe id, else raise ``InvalidId`` naming the field."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidId(
            f"{kind} must match {ID_PATTERN.pattern} (lowercase ASCII letters, digits, '_' or '-')",
            field=kind,
        )
    return value


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking. Built from credentials (API key) or by system jobs, never from request bodies."""

    tenant_id: str
    project_id: str = "default"
    environment: str = "dev"

    def __post_init__(self) -> None:
        validate_id(self.tenant_id, "tenant_id")
        validate_id(self.project_id, "project_id")
        validate_id(self.environment, "environment")
