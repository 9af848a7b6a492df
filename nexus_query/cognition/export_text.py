"""How export content becomes block text, shared by the ChatGPT and Claude readers.

Text is kept verbatim; content of a known shape that a reader does not render is kept in a
``[<kind> fields] {json}`` block, and content of an unknown shape whole as ``[<kind>] {json}``, so nothing
anyone wrote is lost. Identifiers and timestamps are not text (``NOT_TEXT_KEY``): they stay in the
archived original export only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping  # not typing's: isinstance on those is slow
from datetime import UTC, datetime
from typing import Any, TypeGuard

from nexus_query.cognition.conversation_model import Block
from nexus_query.store.rows import canonical_json

# Keys inside content that hold identifiers, timestamps, signatures or serialization labels, not text anyone wrote.
NOT_TEXT_KEY = re.compile(r"^(id|uuid|ids|signature|serialization_title)$|_(id|ids|uuid)$|timestamp|"
                          r"^(create|update)_time$|^(created|updated)_at$")


def has_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def as_text(value: Any) -> str:
    """A field that should hold text: the string itself (blank: ""), anything else kept as its JSON."""
    if isinstance(value, str):
        return value if value.strip() else ""
    kept = pruned(value)
    return "" if kept is None else canonical_json(kept)


def listed(value: Any) -> list[Any]:
    """A field that should hold a list: a lone value is one item, so a malformed export loses nothing."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def loose(value: Any) -> list[str]:
    """A value where a content object was expected: a string is text, anything else kept as JSON."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    kept = pruned(value)
    return [f"[unknown] {canonical_json(kept)}"] if kept not in (None, [], {}) else []


def pruned(value: Any) -> Any:
    """``value`` without nulls, blank strings and containers left empty by removing them."""
    if isinstance(value, Mapping):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None} or None
    if isinstance(value, list):
        items = [pruned(v) for v in value]
        return [v for v in items if v is not None] or None
    if isinstance(value, str):
        return value if value.strip() else None
    return value


def string_leaves(value: Any) -> Any:
    """Only the non-blank strings of ``value`` (and the containers holding them), skipping keys that
    name identifiers and timestamps: what of a known shape's unread fields is text."""
    if isinstance(value, Mapping):
        kept = {k: string_leaves(v) for k, v in value.items() if not NOT_TEXT_KEY.search(str(k))}
        return {k: v for k, v in kept.items() if v is not None} or None
    if isinstance(value, list):
        items = [string_leaves(v) for v in value]
        return [v for v in items if v is not None] or None
    return value if isinstance(value, str) and value.strip() else None


def unread_fields(value: Mapping[str, Any], read: set[str], kind: Any) -> list[str]:
    """The text in the fields of a known shape that its reader did not render, as one labelled block."""
    rest = string_leaves({k: v for k, v in value.items() if k not in read})
    return [f"[{kind or 'unknown'} fields] {canonical_json(rest)}"] if rest else []


def labelled_json(value: Mapping[str, Any], kind_key: str) -> list[str]:
    """Content of a kind this reader does not know: kept whole, as JSON, under its kind's label."""
    rest = pruned({k: v for k, v in value.items() if k != kind_key})
    kind = value.get(kind_key)
    label = kind if isinstance(kind, str) and kind.strip() else "unknown"
    return [f"[{label}] {canonical_json(rest)}"] if rest else []


def numbered(texts: Iterable[str]) -> tuple[Block, ...]:
    return tuple(Block(i, t) for i, t in enumerate(texts))


def epoch_iso(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            stamp = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return optional_text(value)


def optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def title_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def derived_id(conv: Mapping[str, Any]) -> str:
    """The id of a conversation whose export names none: a hash of its content, stable across imports."""
    return "c-" + hashlib.sha256(canonical_json(conv).encode()).hexdigest()[:24]
