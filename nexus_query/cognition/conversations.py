"""Conversation sources: ChatGPT and Claude exports and Nexus's canonical JSON, all read into one
canonical form (conversation → messages → blocks) that bricks, citations and artifacts share.

Canonical form of one conversation (what a source file in the blob store holds)::

    {"format": "nexus.conversation.v1", "conversation_id": "...", "title": "..." | null,
     "created_at": "..." | null, "source_format": "chatgpt" | "claude" | "canonical",
     "messages": [{"message_id": "...", "role": "user", "created_at": "..." | null,
                   "blocks": [{"index": 0, "text": "..."}]}]}

Text blocks are kept verbatim. Other content (code, thinking, tool calls, images...) becomes a block
whose text starts with a bracketed label such as ``[thinking]``, so an agent reading an artifact can
tell them apart while ``blocks`` keeps the seed's ``{index, text}`` shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from nexus_query.context import ID_PATTERN
from nexus_query.errors import InvalidRequest
from nexus_query.store.rows import canonical_json

CANONICAL_FORMAT = "nexus.conversation.v1"
_FILE_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class Block:
    index: int
    text: str


@dataclass(frozen=True)
class Message:
    message_id: str
    role: str
    created_at: str | None
    blocks: tuple[Block, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "role": self.role, "created_at": self.created_at,
                "blocks": [{"index": b.index, "text": b.text} for b in self.blocks]}


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    title: str | None
    created_at: str | None
    source_format: str
    messages: tuple[Message, ...]

    @property
    def block_count(self) -> int:
        return sum(len(m.blocks) for m in self.messages)

    @property
    def file_name(self) -> str:
        """The source file's name: the id itself when it is a safe file name, else its hash."""
        if _FILE_SAFE_ID.fullmatch(self.conversation_id):
            return f"{self.conversation_id}.json"
        return f"c-{hashlib.sha256(self.conversation_id.encode()).hexdigest()[:32]}.json"

    def to_dict(self) -> dict[str, Any]:
        return {"format": CANONICAL_FORMAT, "conversation_id": self.conversation_id, "title": self.title,
                "created_at": self.created_at, "source_format": self.source_format,
                "messages": [m.to_dict() for m in self.messages]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class ParsedExport:
    """Every conversation of one file, empty ones included (they are counted, never stored)."""

    source_format: str
    conversations: tuple[Conversation, ...]

    def summary(self) -> dict[str, Any]:
        filled = [c for c in self.conversations if c.messages]
        return {"format": self.source_format, "conversations": len(filled),
                "empty_conversations": len(self.conversations) - len(filled),
                "messages": sum(len(c.messages) for c in filled),
                "blocks": sum(c.block_count for c in filled)}


def parse_export(data: bytes | str | Any) -> ParsedExport:
    """Read a ChatGPT or Claude ``conversations.json`` or canonical JSON (bytes, text or parsed)."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
    conversations, formats = [], set()
    for i, item in enumerate(items):
        kind = detect_format(item, i)
        formats.add(kind)
        conversations.append(_READERS[kind](item, f"conversations[{i}]"))
    ids = [c.conversation_id for c in conversations]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidRequest(f"conversation ids must be unique within a file: {dupes[:5]}")
    return ParsedExport("+".join(sorted(formats)) or "empty", tuple(conversations))


def detect_format(item: Any, position: int = 0) -> str:
    if isinstance(item, Mapping):
        if "mapping" in item:
            return "chatgpt"
        if "chat_messages" in item:
            return "claude"
        if "messages" in item:
            return "canonical"
    raise InvalidRequest(f"conversations[{position}] is neither a ChatGPT, a Claude nor a canonical "
                         "conversation", field=f"conversations[{position}]")


def canonical_conversation(tree: Any, where: str = "conversation") -> Conversation:
    """Validate one canonical conversation (as loaded from a source file) strictly."""
    if not isinstance(tree, Mapping) or not isinstance(tree.get("messages"), list):
        raise InvalidRequest(f"{where} must be an object with a 'messages' list", field=where)
    messages, seen = [], set()
    for m_pos, raw in enumerate(tree["messages"]):
        at = f"{where}.messages[{m_pos}]"
        if not isinstance(raw, Mapping):
            raise InvalidRequest(f"{at} must be an object", field=at)
        message_id, role = raw.get("message_id"), raw.get("role")
        if not isinstance(message_id, str) or not message_id:
            raise InvalidRequest(f"{at}.message_id must be a non-empty string", field=f"{at}.message_id")
        if message_id in seen:
            raise InvalidRequest(f"{at}.message_id {message_id!r} repeats", field=f"{at}.message_id")
        seen.add(message_id)
        if not isinstance(role, str) or not role:
            raise InvalidRequest(f"{at}.role must be a non-empty string", field=f"{at}.role")
        blocks, indexes = [], set()
        for b_pos, block in enumerate(raw.get("blocks") or []):
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
                                tuple(blocks)))
    conversation_id = tree.get("conversation_id")
    if conversation_id is None:
        conversation_id = "c-" + hashlib.sha256(canonical_json(tree).encode()).hexdigest()[:24]
    if not isinstance(conversation_id, str) or not conversation_id:
        raise InvalidRequest(f"{where}.conversation_id must be a non-empty string", field=f"{where}.conversation_id")
    source_format = tree.get("source_format") or "canonical"
    if not isinstance(source_format, str) or not ID_PATTERN.fullmatch(source_format):
        raise InvalidRequest(f"{where}.source_format must match {ID_PATTERN.pattern}",
                             field=f"{where}.source_format")
    return Conversation(conversation_id, _optional_str(tree.get("title"), f"{where}.title"),
                        _optional_str(tree.get("created_at"), f"{where}.created_at"), source_format,
                        tuple(messages))


def _optional_str(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"{where} must be a string or null", field=where)


# --- ChatGPT -----------------------------------------------------------------------------------------

def _chatgpt(conv: Mapping[str, Any], where: str) -> Conversation:
    mapping = conv.get("mapping") or {}
    if not isinstance(mapping, Mapping):
        raise InvalidRequest(f"{where}.mapping must be an object", field=f"{where}.mapping")
    messages = []
    for node_id in active_thread(mapping, conv.get("current_node")):
        message = mapping[node_id].get("message") if isinstance(mapping[node_id], Mapping) else None
        if not isinstance(message, Mapping):
            continue  # the root node of every export carries no message
        blocks = _numbered(chatgpt_texts(message.get("content") or {}))
        if blocks:
            author = message.get("author") or {}
            messages.append(Message(str(message.get("id") or node_id), str(author.get("role") or "unknown"),
                                    _epoch_iso(message.get("create_time")), blocks))
    conversation_id = conv.get("conversation_id") or conv.get("id") or _derived_id(conv)
    return Conversation(str(conversation_id), _title(conv.get("title")), _epoch_iso(conv.get("create_time")),
                        "chatgpt", tuple(messages))


def active_thread(mapping: Mapping[str, Any], current_node: Any) -> list[str]:
    """Node ids from the root to ``current_node``: the thread the user last saw. Edited and
    regenerated branches hang off the same parents and are left out. Without a usable
    ``current_node`` the newest leaf stands in."""
    if current_node not in mapping:
        leaves = [n for n, node in mapping.items()
                  if isinstance(node, Mapping) and not [c for c in node.get("children") or [] if c in mapping]]
        if not leaves:
            return []
        current_node = max(leaves, key=lambda n: (_node_time(mapping[n]), n))
    path, seen, node_id = [], set(), current_node
    while node_id in mapping and node_id not in seen:  # `seen` stops a corrupt, cyclic mapping
        seen.add(node_id)
        path.append(node_id)
        node_id = (mapping[node_id] or {}).get("parent")
    return path[::-1]


def _node_time(node: Mapping[str, Any]) -> float:
    message = node.get("message") or {}
    value = message.get("create_time") if isinstance(message, Mapping) else None
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def chatgpt_texts(content: Mapping[str, Any]) -> list[str]:
    """The texts of one ChatGPT message content, one per block."""
    kind = content.get("content_type")
    if kind in ("text", "multimodal_text"):
        return [t for part in content.get("parts") or [] for t in _chatgpt_part(part)]
    if kind == "code":
        language = content.get("language")
        label = f"[code: {language}]" if language and language != "unknown" else "[code]"
        return [f"{label}\n{content.get('text') or ''}"] if content.get("text") else []
    if kind == "execution_output":
        return [f"[execution_output]\n{content['text']}"] if content.get("text") else []
    if kind == "thoughts":
        return [f"[thinking: {t.get('summary')}]\n{t.get('content') or ''}" if t.get("summary")
                else f"[thinking]\n{t.get('content') or ''}"
                for t in content.get("thoughts") or [] if isinstance(t, Mapping) and t.get("content")]
    if kind == "reasoning_recap":
        return [f"[reasoning_recap] {content['content']}"] if content.get("content") else []
    if kind == "tether_quote":
        return [f"[quote: {content.get('title') or ''} {content.get('url') or ''}]\n{content['text']}"] \
            if content.get("text") else []
    if kind == "tether_browsing_display":
        return [f"[browsing]\n{content['result']}"] if content.get("result") else []
    if kind == "system_error":
        return [f"[system_error: {content.get('name') or ''}]\n{content.get('text') or ''}"]
    if kind == "user_editable_context":
        return [f"[{key}]\n{content[key]}" for key in ("user_profile", "user_instructions") if content.get(key)]
    return _labelled_json(content, "content_type")


def _chatgpt_part(part: Any) -> list[str]:
    if isinstance(part, str):
        return [part] if part.strip() else []
    if not isinstance(part, Mapping):
        return []
    kind = part.get("content_type")
    if kind == "image_asset_pointer":
        size = f" {part['width']}x{part['height']}" if part.get("width") and part.get("height") else ""
        return [f"[image: {part.get('asset_pointer') or ''}{size}]"]
    if kind == "audio_transcription":
        return [f"[audio_transcription]\n{part['text']}"] if part.get("text") else []
    return _labelled_json(part, "content_type")


# --- Claude ------------------------------------------------------------------------------------------

_CLAUDE_ROLES = {"human": "user", "assistant": "assistant"}


def _claude(conv: Mapping[str, Any], where: str) -> Conversation:
    raw_messages = conv.get("chat_messages") or []
    if not isinstance(raw_messages, list):
        raise InvalidRequest(f"{where}.chat_messages must be a list", field=f"{where}.chat_messages")
    messages = []
    for pos, raw in enumerate(raw_messages):
        if not isinstance(raw, Mapping):
            raise InvalidRequest(f"{where}.chat_messages[{pos}] must be an object")
        blocks = _numbered(claude_texts(raw))
        if blocks:
            sender = str(raw.get("sender") or "unknown")
            messages.append(Message(str(raw.get("uuid") or f"{pos}"), _CLAUDE_ROLES.get(sender, sender),
                                    _optional_text(raw.get("created_at")), blocks))
    conversation_id = conv.get("uuid") or conv.get("id") or _derived_id(conv)
    return Conversation(str(conversation_id), _title(conv.get("name")), _optional_text(conv.get("created_at")),
                        "claude", tuple(messages))


def claude_texts(message: Mapping[str, Any]) -> list[str]:
    """The texts of one Claude message: its ``content`` blocks, or ``text`` in older exports that
    have no blocks, then attachments and files."""
    content = message.get("content")
    if isinstance(content, list) and content:
        texts = [t for item in content for t in _claude_block(item)]
    else:
        texts = [message["text"]] if isinstance(message.get("text"), str) and message["text"].strip() else []
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, Mapping) and attachment.get("extracted_content"):
            texts.append(f"[attachment: {attachment.get('file_name') or ''}]\n{attachment['extracted_content']}")
    for file in message.get("files") or []:
        if isinstance(file, Mapping) and file.get("file_name"):
            texts.append(f"[file: {file['file_name']}]")
    return texts


def _claude_block(item: Any) -> list[str]:
    if not isinstance(item, Mapping):
        return []
    kind = item.get("type")
    if kind == "text":
        return [item["text"]] if isinstance(item.get("text"), str) and item["text"].strip() else []
    if kind == "thinking":
        return [f"[thinking]\n{item['thinking']}"] if item.get("thinking") else []
    if kind == "tool_use":
        return [f"[tool_use: {item.get('name') or ''}] {canonical_json(item.get('input'))}"]
    if kind == "tool_result":
        inner = item.get("content")
        if isinstance(inner, list):
            inner = "\n".join(c.get("text", "") if isinstance(c, Mapping) else str(c) for c in inner)
        label = "tool_result error" if item.get("is_error") else "tool_result"
        return [f"[{label}: {item.get('name') or ''}]\n{inner or ''}"]
    return _labelled_json(item, "type")


# --- shared ------------------------------------------------------------------------------------------

def _labelled_json(value: Mapping[str, Any], kind_key: str) -> list[str]:
    """Content of a kind this reader does not know: kept whole, as JSON, under its kind's label."""
    rest = {k: v for k, v in value.items() if k != kind_key}
    return [f"[{value.get(kind_key) or 'unknown'}] {canonical_json(rest)}"] if rest else []


def _numbered(texts: Iterable[str]) -> tuple[Block, ...]:
    return tuple(Block(i, t) for i, t in enumerate(texts))


def _epoch_iso(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = datetime.fromtimestamp(float(value), tz=timezone.utc)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return _optional_text(value)


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _title(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _derived_id(conv: Mapping[str, Any]) -> str:
    return "c-" + hashlib.sha256(canonical_json(conv).encode()).hexdigest()[:24]


_READERS = {"chatgpt": _chatgpt, "claude": _claude, "canonical": canonical_conversation}
