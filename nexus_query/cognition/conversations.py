"""Conversation sources: ChatGPT and Claude exports and Nexus's canonical JSON, all read into one
canonical form (``conversation_model``: conversation → messages → blocks) that bricks, citations and
artifacts share. This module tells the formats apart and hands each conversation to its reader
(``chatgpt_export``, ``claude_export``, ``canonical_export``).

Lossless: every message of every branch is kept. An export is a tree (a ChatGPT ``mapping``, Claude
messages with ``parent_message_uuid``): editing or regenerating a message adds a sibling branch. Each
message records its ``parent_id`` (messages come parents first, siblings in the export's order) and the
conversation records ``current_message_id``, the leaf of the thread the user last saw, so the current
thread can be walked back from it and every alternate branch is still there. A message whose content is
empty in the source is the only thing left out (its children hang off its nearest kept ancestor).

Text blocks are kept verbatim. Other content (code, thinking, tool calls, images...) becomes a block
whose text starts with a bracketed label such as ``[thinking]``, so an agent reading an artifact can
tell them apart while ``blocks`` keeps the seed's ``{index, text}`` shape. Fields of a known shape that
this reader does not render are kept in a ``[<kind> fields] {json}`` block; content of an unknown
shape is kept whole as ``[<kind>] {json}``. Identifiers and timestamps inside content are not text:
they stay in the archived original export only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping  # not typing's: isinstance on those is slow
from typing import Any, Literal

from nexus_query.cognition.canonical_export import canonical_conversation
from nexus_query.cognition.chatgpt_export import chatgpt_conversation
from nexus_query.cognition.claude_export import claude_conversation
from nexus_query.cognition.conversation_model import Conversation, ParsedExport
from nexus_query.errors import InvalidRequest

ExportFormat = Literal["chatgpt", "claude", "canonical"]


def parse_export(data: bytes | str | Any) -> ParsedExport:
    """Read a ChatGPT or Claude ``conversations.json`` or canonical JSON (bytes, text or parsed)."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidRequest(f"conversation export is not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and "messages" in data:
        items: list[Any] = [data]
    elif isinstance(data, Mapping) and isinstance(data.get("conversations"), list):
        items = data["conversations"]
    elif isinstance(data, list):
        items = data
    else:
        raise InvalidRequest("not a conversation export: expected a list of conversations, "
                             "{'conversations': [...]} or one canonical conversation")
    conversations: list[Conversation] = []
    formats: set[str] = set()
    for i, item in enumerate(items):
        kind = detect_format(item, i)
        formats.add(kind)
        conversations.append(_READERS[kind](item, f"conversations[{i}]"))
    ids = [c.conversation_id for c in conversations]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidRequest(f"conversation ids must be unique within a file: {dupes[:5]}")
    return ParsedExport("+".join(sorted(formats)) or "empty", tuple(conversations))


def detect_format(item: Any, position: int = 0) -> ExportFormat:
    if isinstance(item, Mapping):
        if "mapping" in item:
            return "chatgpt"
        if "chat_messages" in item:
            return "claude"
        if "messages" in item:
            return "canonical"
    raise InvalidRequest(f"conversations[{position}] is neither a ChatGPT, a Claude nor a canonical "
                         "conversation", field=f"conversations[{position}]")


_READERS: dict[ExportFormat, Callable[[Any, str], Conversation]] = {
    "chatgpt": chatgpt_conversation, "claude": claude_conversation, "canonical": canonical_conversation}
