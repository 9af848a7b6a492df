"""Nexus's own canonical JSON as input: validated strictly, since it is also what a stored source file
holds and what artifacts are assembled from (an error names the field, never guesses)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping  # not typing's: isinstance on those is slow
from typing import Any

from nexus_query.cognition.conversation_model import Block, Conversation, Message
from nexus_query.context import ID_PATTERN
from nexus_query.errors import InvalidRequest
from nexus_query.store.rows import canonical_json


def canonical_conversation(tree: Any, where: str = "conversation") -> Conversation:
    """Validate one canonical conversation (as loaded from a source file) strictly. A message without a
    ``parent_id`` key follows the message before it (a plain list is one thread); without
    ``current_message_id`` the last message is the current leaf."""
    if not isinstance(tree, Mapping) or not isinstance(tree.get("messages"), list):
        raise InvalidRequest(f"{where} must be an object with a 'messages' list", field=where)
    messages: list[Message] = []
    seen: set[str] = set()
    for m_pos, raw in enumerate(tree["messages"]):
        at = f"{where}.messages[{m_pos}]"
        if not isinstance(raw, Mapping):
            raise InvalidRequest(f"{at} must be an object", field=at)
        message_id, role = raw.get("message_id"), raw.get("role")
        if not isinstance(message_id, str) or not message_id:
            raise InvalidRequest(f"{at}.message_id must be a non-empty string", field=f"{at}.message_id")
        if message_id in seen:
            raise InvalidRequest(f"{at}.message_id {message_id!r} repeats", field=f"{at}.message_id")
        if not isinstance(role, str) or not role:
            raise InvalidRequest(f"{at}.role must be a non-empty string", field=f"{at}.role")
        if "parent_id" in raw:
            parent_id = raw["parent_id"]
            if parent_id is not None and (not isinstance(parent_id, str) or parent_id not in seen):
                raise InvalidRequest(f"{at}.parent_id must be null or the id of an earlier message",
                                     field=f"{at}.parent_id")
        else:
            parent_id = messages[-1].message_id if messages else None
        seen.add(message_id)
        blocks, indexes = [], set()
        raw_blocks = raw.get("blocks")
        if raw_blocks is not None and not isinstance(raw_blocks, list):
            raise InvalidRequest(f"{at}.blocks must be a list", field=f"{at}.blocks")
        for b_pos, block in enumerate(raw_blocks or []):
            b_at = f"{at}.blocks[{b_pos}]"
            index = block.get("index") if isinstance(block, Mapping) else None
            text = block.get("text") if isinstance(block, Mapping) else None
            if not isinstance(index, int) or isinstance(index, bool) or index < 0 or index in indexes:
                raise InvalidRequest(f"{b_at}.index must be a unique non-negative integer", field=f"{b_at}.index")
            if not isinstance(text, str):
                raise InvalidRequest(f"{b_at}.text must be a string", field=f"{b_at}.text")
            indexes.add(index)
            blocks.append(Block(index, text))
        messages.append(Message(message_id, role, _optional_str(raw.get("created_at"), f"{at}.created_at"),
                                tuple(blocks), parent_id, _optional_str(raw.get("name"), f"{at}.name") or None))
    conversation_id = tree.get("conversation_id")
    if conversation_id is None:
        conversation_id = "c-" + hashlib.sha256(canonical_json(tree).encode()).hexdigest()[:24]
    if not isinstance(conversation_id, str) or not conversation_id:
        raise InvalidRequest(f"{where}.conversation_id must be a non-empty string", field=f"{where}.conversation_id")
    source_format = tree.get("source_format") or "canonical"
    if not isinstance(source_format, str) or not ID_PATTERN.fullmatch(source_format):
        raise InvalidRequest(f"{where}.source_format must match {ID_PATTERN.pattern}",
                             field=f"{where}.source_format")
    if "current_message_id" in tree:
        current = tree["current_message_id"]
        if not (current is None and not messages) and current not in seen:
            raise InvalidRequest(f"{where}.current_message_id must name one of its messages",
                                 field=f"{where}.current_message_id")
    else:
        current = messages[-1].message_id if messages else None
    return Conversation(conversation_id, _optional_str(tree.get("title"), f"{where}.title"),
                        _optional_str(tree.get("created_at"), f"{where}.created_at"), source_format,
                        tuple(messages), current)


def _optional_str(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"{where} must be a string or null", field=where)
