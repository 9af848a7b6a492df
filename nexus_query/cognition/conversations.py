"""Conversation sources: ChatGPT and Claude exports and Nexus's canonical JSON, all read into one
canonical form (conversation → messages → blocks) that bricks, citations and artifacts share.

Canonical form of one conversation (what a source file in the blob store holds)::

    {"format": "nexus.conversation.v1", "conversation_id": "...", "title": "..." | null,
     "created_at": "..." | null, "source_format": "chatgpt" | "claude" | "canonical",
     "current_message_id": "..." | null,
     "messages": [{"message_id": "...", "parent_id": "..." | null, "role": "user",
                   "created_at": "..." | null, "blocks": [{"index": 0, "text": "..."}]}]}

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

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence  # not typing's: isinstance on those is slow
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nexus_query.context import ID_PATTERN
from nexus_query.errors import InvalidRequest
from nexus_query.store.rows import canonical_json

CANONICAL_FORMAT = "nexus.conversation.v1"
_FILE_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
# Keys inside content that hold identifiers, timestamps, signatures or serialization labels, not text anyone wrote.
NOT_TEXT_KEY = re.compile(r"^(id|uuid|ids|signature|serialization_title)$|_(id|ids|uuid)$|timestamp|"
                          r"^(create|update)_time$|^(created|updated)_at$")


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
    parent_id: str | None = None  # the message this one answers or follows; None for a thread's first

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "parent_id": self.parent_id, "role": self.role,
                "created_at": self.created_at,
                "blocks": [{"index": b.index, "text": b.text} for b in self.blocks]}


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    title: str | None
    created_at: str | None
    source_format: str
    messages: tuple[Message, ...]
    current_message_id: str | None = None  # the leaf of the thread the user last saw

    @property
    def block_count(self) -> int:
        return sum(len(m.blocks) for m in self.messages)

    @property
    def file_name(self) -> str:
        """The source file's name: the id itself when it is a safe file name, else its hash."""
        if _FILE_SAFE_ID.fullmatch(self.conversation_id):
            return f"{self.conversation_id}.json"
        return f"c-{hashlib.sha256(self.conversation_id.encode()).hexdigest()[:32]}.json"

    def current_thread(self) -> tuple[Message, ...]:
        """The messages from the first to ``current_message_id``, in order."""
        return current_thread(self.messages, self.current_message_id)

    def alternates(self) -> tuple[Message, ...]:
        """Every message not on the current thread (edited or regenerated branches), in canonical order."""
        on_thread = {m.message_id for m in self.current_thread()}
        return tuple(m for m in self.messages if m.message_id not in on_thread)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CANONICAL_FORMAT, "conversation_id": self.conversation_id, "title": self.title,
                "created_at": self.created_at, "source_format": self.source_format,
                "current_message_id": self.current_message_id,
                "messages": [m.to_dict() for m in self.messages]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


def current_thread(messages: Sequence[Message], current_message_id: str | None) -> tuple[Message, ...]:
    by_id = {m.message_id: m for m in messages}
    thread, seen, message_id = [], set(), current_message_id
    while message_id in by_id and message_id not in seen:
        seen.add(message_id)
        thread.append(by_id[message_id])
        message_id = by_id[message_id].parent_id
    return tuple(thread[::-1])


@dataclass(frozen=True)
class ParsedExport:
    """Every conversation of one file, empty ones included (they are counted, never stored)."""

    source_format: str
    conversations: tuple[Conversation, ...]

    @property
    def stored(self) -> tuple[Conversation, ...]:
        """The conversations an import stores: those with at least one message."""
        return tuple(c for c in self.conversations if c.messages)

    def summary(self) -> dict[str, Any]:
        filled = self.stored
        return {"format": self.source_format, "conversations": len(filled),
                "empty_conversations": len(self.conversations) - len(filled),
                "messages": sum(len(c.messages) for c in filled),
                "alternate_messages": sum(len(c.alternates()) for c in filled),
                "blocks": sum(c.block_count for c in filled)}


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
                                tuple(blocks), parent_id))
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


# --- the message tree ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    """One message of an export before it is placed in the tree: ``texts`` empty means nothing to keep."""

    key: str               # the export's id for it (unique within the conversation)
    parent: Any            # the key of its parent, or anything else for a root
    order: tuple           # how it sorts among its siblings
    message_id: str
    role: str
    created_at: str | None
    texts: tuple[str, ...]


def build_tree(nodes: Sequence[_Node], current_key: Any) -> tuple[tuple[Message, ...], str | None]:
    """The messages of ``nodes`` parents first (depth first, siblings by ``order``) with their parent ids,
    and the current leaf's message id. Empty nodes are left out and their children re-parented to the
    nearest kept ancestor; a cycle in a corrupt export is broken at its first node in order."""
    by_key = {n.key: n for n in nodes}
    children: dict[str | None, list[_Node]] = {}
    for node in nodes:
        parent = node.parent if isinstance(node.parent, str) and node.parent in by_key and node.parent != node.key else None
        children.setdefault(parent, []).append(node)
    for siblings in children.values():
        siblings.sort(key=lambda n: n.order)
    messages: list[Message] = []
    used_ids: set[str] = set()
    stands_for: dict[str, str | None] = {}  # node key → the message id its descendants hang from
    visited: set[str] = set()
    pending = sorted(nodes, key=lambda n: n.order)
    starts = list(children.get(None, []))
    while True:
        stack = [(n, None) for n in reversed(starts)]
        while stack:
            node, kept_ancestor = stack.pop()
            if node.key in visited:
                continue
            visited.add(node.key)
            here = kept_ancestor
            if node.texts:
                message_id = _unique_id(node, used_ids)
                messages.append(Message(message_id, node.role, node.created_at, _numbered(node.texts), kept_ancestor))
                here = message_id
            stands_for[node.key] = here
            stack.extend((child, here) for child in reversed(children.get(node.key, [])))
        rest = [n for n in pending if n.key not in visited]
        if not rest:
            break
        starts = rest[:1]  # only nodes on a cycle are left: break it here
    current = stands_for.get(current_key) if isinstance(current_key, str) else None
    if current is None:
        current = newest_leaf(messages)
    return tuple(messages), current


def newest_leaf(messages: Sequence[Message]) -> str | None:
    """The leaf created last (ties: the later in canonical order): the current leaf when an export names none."""
    parents = {m.parent_id for m in messages}
    leaves = [(m.created_at or "", position, m.message_id) for position, m in enumerate(messages)
              if m.message_id not in parents]
    return max(leaves)[2] if leaves else None


def _unique_id(node: _Node, used: set[str]) -> str:
    chosen = node.message_id if node.message_id and node.message_id not in used else node.key
    suffix = 2
    while chosen in used:
        chosen, suffix = f"{node.key}~{suffix}", suffix + 1
    used.add(chosen)
    return chosen


# --- ChatGPT -------------------------------------------------------------------------------------------

def _chatgpt(conv: Mapping[str, Any], where: str) -> Conversation:
    mapping = conv.get("mapping") or {}
    if not isinstance(mapping, Mapping):
        raise InvalidRequest(f"{where}.mapping must be an object", field=f"{where}.mapping")
    nodes = []
    for position, (node_id, node) in enumerate(mapping.items()):
        if not isinstance(node, Mapping):
            continue
        parent = node.get("parent")
        parent_node = mapping.get(parent) if isinstance(parent, str) else None
        siblings = parent_node.get("children") if isinstance(parent_node, Mapping) else None
        rank = siblings.index(node_id) if isinstance(siblings, list) and node_id in siblings else len(mapping)
        message = node.get("message")
        if isinstance(message, Mapping):
            author = message.get("author") if isinstance(message.get("author"), Mapping) else {}
            texts = tuple(chatgpt_message_texts(message))
            message_id = message.get("id") if isinstance(message.get("id"), str) else str(node_id)
            role, created = str(author.get("role") or "unknown"), _epoch_iso(message.get("create_time"))
        else:  # the root node of every export carries no message
            texts, message_id, role, created = (), str(node_id), "unknown", None
        nodes.append(_Node(str(node_id), parent, (rank, position), message_id, role, created, texts))
    messages, current = build_tree(nodes, conv.get("current_node"))
    conversation_id = conv.get("conversation_id") or conv.get("id") or _derived_id(conv)
    return Conversation(str(conversation_id), _title(conv.get("title")), _epoch_iso(conv.get("create_time")),
                        "chatgpt", messages, current)


def chatgpt_message_texts(message: Mapping[str, Any]) -> list[str]:
    """One ChatGPT message's texts: its content, then the files attached to it."""
    texts = chatgpt_texts(message.get("content"))
    metadata = message.get("metadata") if isinstance(message.get("metadata"), Mapping) else {}
    for attachment in metadata.get("attachments") or []:
        if isinstance(attachment, Mapping) and isinstance(attachment.get("name"), str) and attachment["name"].strip():
            texts.append(f"[attachment: {attachment['name']}]")
    return texts


def chatgpt_texts(content: Any) -> list[str]:
    """The texts of one ChatGPT message content, one per block."""
    if content is None:
        return []
    if not isinstance(content, Mapping):
        return _loose(content)
    kind = content.get("content_type")
    reader = _CHATGPT_CONTENT.get(kind) if isinstance(kind, str) else None
    if reader is None:
        return _labelled_json(content, "content_type")
    texts, read = reader(content)
    return texts + _unread_fields(content, read | {"content_type"}, kind)


def _chatgpt_parts(content: Mapping[str, Any], label: str | None = None) -> list[str]:
    parts = content.get("parts")
    if parts is None:
        return []
    if not isinstance(parts, list):
        parts = [parts]
    return [t for part in parts for t in _chatgpt_part(part, label)]


def _chatgpt_part(part: Any, label: str | None = None) -> list[str]:
    if isinstance(part, str):
        if not part.strip():
            return []
        return [f"{label}\n{part}" if label else part]
    if not isinstance(part, Mapping):
        return _loose(part)
    kind = part.get("content_type") or part.get("type")
    if kind in ("image_asset_pointer", "image", "image_url"):
        key = next((k for k in ("asset_pointer", "url", "image_url", "file_name") if _as_text(part.get(k))), None)
        read = {"content_type", "type", *([key] if key else [])}
        size = ""
        if isinstance(part.get("width"), (int, float)) and isinstance(part.get("height"), (int, float)):
            size, read = f" {part['width']}x{part['height']}", read | {"width", "height"}
        pointer = _as_text(part[key]) if key else ""
        return [f"[image: {pointer}{size}]"] + _unread_fields(part, read, kind)
    if kind == "audio_transcription":
        direction = f": {_as_text(part.get('direction'))}" if _as_text(part.get("direction")) else ""
        body = _as_text(part.get("text"))
        text = [f"[audio_transcription{direction}]\n{body}"] if body else ([f"[audio_transcription{direction}]"] if direction else [])
        return text + _unread_fields(part, {"text", "direction", "content_type", "type"}, kind)
    if kind == "audio_asset_pointer":
        return [f"[audio: {_as_text(part.get('asset_pointer'))}]"] + _unread_fields(part, {"asset_pointer", "content_type", "type"}, kind)
    if kind == "text" and isinstance(part.get("text"), str):
        return _chatgpt_part(part["text"], label) + _unread_fields(part, {"text", "content_type", "type"}, kind)
    return _labelled_json(part, "content_type" if "content_type" in part else "type")


def _text_and_parts(label: str | Callable[[Mapping[str, Any]], str] | None, *text_keys: str,
                    label_keys: tuple[str, ...] = ()) -> Callable[[Mapping[str, Any]], tuple[list[str], set[str]]]:
    """A reader for content whose text is in ``text_keys`` or in ``parts`` (both seen in real exports);
    ``label_keys`` are the fields its label shows."""
    def read(content: Mapping[str, Any]) -> tuple[list[str], set[str]]:
        head = label(content) if callable(label) else label
        texts = [t for key in text_keys for t in _chatgpt_part(content.get(key), head)]
        texts += _chatgpt_parts(content, head)
        if not texts and head and any(_as_text(content.get(k)) for k in label_keys):
            texts = [head]  # no body, but the label (a language, a title, a url) is itself text
        return texts, {*text_keys, *label_keys, "parts"}
    return read


def _code_label(content: Mapping[str, Any]) -> str:
    language = _as_text(content.get("language"))
    return f"[code: {language}]" if language else "[code]"


def _quote_label(content: Mapping[str, Any]) -> str:
    where = " ".join(_as_text(content.get(k)).strip() for k in ("title", "url", "domain") if _as_text(content.get(k)))
    return f"[quote: {where}]" if where else "[quote]"


def _webpage_label(content: Mapping[str, Any]) -> str:
    where = " ".join(_as_text(content.get(k)).strip() for k in ("title", "url", "domain") if _as_text(content.get(k)))
    return f"[webpage: {where}]" if where else "[webpage]"


def _thoughts(content: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    thoughts = content.get("thoughts")
    texts: list[str] = []
    for thought in thoughts if isinstance(thoughts, list) else [thoughts]:
        if isinstance(thought, str):
            texts += [f"[thinking]\n{thought}"] if thought.strip() else []
        elif isinstance(thought, Mapping):
            summary = _summary_text(thought.get("summary"))
            label = f"[thinking: {summary}]" if summary else "[thinking]"
            body = _as_text(thought.get("content"))
            raw_chunks = thought.get("chunks") if isinstance(thought.get("chunks"), list) else [thought.get("chunks")]
            chunks = [c for c in map(_as_text, raw_chunks) if c and c.strip() not in body]
            if body or summary or chunks:
                texts.append("\n".join([label, *([body] if body else []), *chunks]))
            texts += _unread_fields(thought, {"summary", "content", "chunks"}, "thought")
        elif thought is not None:
            texts += _loose(thought)
    return texts, {"thoughts"}


def _summary_text(value: Any) -> str:
    """A thought's summary: a string, or (in newer exports) a list of ``{type: summary, text}`` items."""
    if isinstance(value, list):
        texts = [_as_text(v["text"]) if isinstance(v, Mapping) and "text" in v else _as_text(v) for v in value]
        return "; ".join(t for t in texts if t)
    return _as_text(value)


def _named_texts(*keys: str) -> Callable[[Mapping[str, Any]], tuple[list[str], set[str]]]:
    def read(content: Mapping[str, Any]) -> tuple[list[str], set[str]]:
        return [f"[{key}]\n{_as_text(content.get(key))}" for key in keys if _as_text(content.get(key))], set(keys)
    return read


def _system_error(content: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    name, text = _as_text(content.get("name")), _as_text(content.get("text"))
    texts = [f"[system_error: {name}]\n{text}" if name else f"[system_error]\n{text}"] if name or text else []
    return texts + _chatgpt_parts(content, "[system_error]"), {"name", "text", "parts"}


def _reasoning_recap(content: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    value = _as_text(content.get("content"))
    texts = [f"[reasoning_recap] {value}"] if value else []
    return texts + _chatgpt_parts(content, "[reasoning_recap]"), {"content", "parts"}


_CHATGPT_CONTENT: dict[str, Callable[[Mapping[str, Any]], tuple[list[str], set[str]]]] = {
    "text": _text_and_parts(None),
    "multimodal_text": _text_and_parts(None),
    "code": _text_and_parts(_code_label, "text", label_keys=("language",)),
    "execution_output": _text_and_parts("[execution_output]", "text"),
    "tether_quote": _text_and_parts(_quote_label, "text", label_keys=("title", "url", "domain")),
    "tether_browsing_display": _text_and_parts("[browsing]", "result", "summary"),
    "sonic_webpage": _text_and_parts(_webpage_label, "text", "snippet", label_keys=("title", "url", "domain")),
    "thoughts": _thoughts,
    "reasoning_recap": _reasoning_recap,
    "system_error": _system_error,
    "user_editable_context": _named_texts("user_profile", "user_instructions"),
    "model_editable_context": _named_texts("model_set_context", "repository", "repo_summary", "structured_context"),
}


# --- Claude --------------------------------------------------------------------------------------------

_CLAUDE_ROLES = {"human": "user", "assistant": "assistant"}


def _claude(conv: Mapping[str, Any], where: str) -> Conversation:
    raw_messages = conv.get("chat_messages") or []
    if not isinstance(raw_messages, list):
        raise InvalidRequest(f"{where}.chat_messages must be a list", field=f"{where}.chat_messages")
    # Newer exports are a tree (`parent_message_uuid`, the root's parent a sentinel uuid); older ones a list.
    branched = any(isinstance(m, Mapping) and "parent_message_uuid" in m for m in raw_messages)
    nodes, previous, keys = [], None, set()
    for pos, raw in enumerate(raw_messages):
        if not isinstance(raw, Mapping):
            raise InvalidRequest(f"{where}.chat_messages[{pos}] must be an object")
        key = raw.get("uuid") if isinstance(raw.get("uuid"), str) and raw.get("uuid") else f"{pos}"
        key = key if key not in keys else f"{key}~{pos}"  # a repeated uuid must not hide a message
        keys.add(key)
        sender = str(raw.get("sender") or "unknown")
        parent = raw.get("parent_message_uuid") if branched else previous
        nodes.append(_Node(key, parent, (pos,), key, _CLAUDE_ROLES.get(sender, sender),
                           _optional_text(raw.get("created_at")), tuple(claude_texts(raw))))
        previous = key
    messages, current = build_tree(nodes, conv.get("current_leaf_message_uuid"))
    conversation_id = conv.get("uuid") or conv.get("id") or _derived_id(conv)
    return Conversation(str(conversation_id), _title(conv.get("name")), _optional_text(conv.get("created_at")),
                        "claude", messages, current)


def claude_texts(message: Mapping[str, Any]) -> list[str]:
    """The texts of one Claude message: its ``content`` blocks (and ``text`` when it says more than
    their text blocks, or in older exports that have no blocks), then attachments and files."""
    content = message.get("content")
    blocks = content if isinstance(content, list) else ([] if content is None else [content])
    texts = [t for item in blocks for t in _claude_block(item)]
    text = message.get("text")
    if _has_text(text):
        said = "".join(i["text"] for i in blocks if isinstance(i, Mapping) and isinstance(i.get("text"), str))
        if not blocks:
            texts.insert(0, text)
        elif _squeezed(text) != _squeezed(said) and not any(text.strip() in t for t in texts):
            texts.insert(0, f"[text]\n{text}")
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, Mapping):
            texts += _claude_attachment(attachment)
        else:
            texts += _loose(attachment)
    for file in [*(message.get("files") or []), *(message.get("files_v2") or [])]:
        if not isinstance(file, Mapping):
            texts += _loose(file)
            continue
        name = _as_text(file.get("file_name"))
        said = ([f"[file: {name}]"] if name else []) + _unread_fields(file, {"file_name"}, "file")
        texts += [t for t in said if t not in texts]  # `files_v2` repeats entries of `files`
    return texts


def _claude_attachment(attachment: Mapping[str, Any]) -> list[str]:
    name, kind = _as_text(attachment.get("file_name")), _as_text(attachment.get("file_type"))
    said_by_name = name.lower().endswith(f".{kind.lower()}")  # receipt.txt is a txt: no need to say it
    shown = " ".join(([name] if name else []) + ([f"({kind})"] if kind and not said_by_name else []))
    label = f"[attachment: {shown}]" if shown else "[attachment]"
    body = _as_text(attachment.get("extracted_content"))
    texts = [f"{label}\n{body}"] if body else ([label] if name or kind else [])
    return texts + _unread_fields(attachment, {"file_name", "file_type", "extracted_content"}, "attachment")


def _claude_block(item: Any) -> list[str]:
    if not isinstance(item, Mapping):
        return _loose(item)
    kind = item.get("type")
    if kind == "text":
        return _loose(item.get("text")) + _unread_fields(item, {"text", "type"}, kind)
    if kind == "thinking":
        raw = item.get("summaries") if isinstance(item.get("summaries"), list) else [item.get("summaries")]
        summaries = [_as_text(s.get("summary") if isinstance(s, Mapping) else s) for s in raw]
        summaries = [s for s in summaries if s]
        label = f"[thinking: {'; '.join(summaries)}]" if summaries else "[thinking]"
        body = _as_text(item.get("thinking"))
        text = ["\n".join([label, body]) if body else label] if body or summaries else []
        rest = [_unread_fields(s, {"summary"}, "summary") for s in raw if isinstance(s, Mapping)]
        return text + [t for r in rest for t in r] + _unread_fields(item, {"thinking", "summaries", "type"}, kind)
    if kind == "tool_use":
        return ([f"[tool_use: {_as_text(item.get('name'))}] {canonical_json(item.get('input'))}"]
                + _unread_fields(item, {"name", "input", "type"}, kind))
    if kind == "tool_result":
        inner = item.get("content")
        pieces = inner if isinstance(inner, list) else [inner]
        said = "\n".join(p for p in (_tool_result_piece(x) for x in pieces) if p)
        name = _as_text(item.get("name"))
        label = "tool_result error" if item.get("is_error") else "tool_result"
        return [f"[{label}: {name}]\n{said}"] + _unread_fields(item, {"name", "content", "is_error", "type"}, kind)
    return _labelled_json(item, "type")


def _tool_result_piece(piece: Any) -> str:
    if isinstance(piece, str):
        return piece
    if isinstance(piece, Mapping) and piece.get("type") == "text" and isinstance(piece.get("text"), str):
        rest = _string_leaves({k: v for k, v in piece.items() if k not in ("type", "text")})
        return piece["text"] + (f"\n[text fields] {canonical_json(rest)}" if rest else "")
    if piece is None:
        return ""
    return f"[{piece.get('type') or 'unknown'}] {canonical_json(_pruned(piece))}" if isinstance(piece, Mapping) \
        else canonical_json(piece)


# --- shared --------------------------------------------------------------------------------------------

def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _as_text(value: Any) -> str:
    """A field that should hold text: the string itself (blank: ""), anything else kept as its JSON."""
    if isinstance(value, str):
        return value if value.strip() else ""
    pruned = _pruned(value)
    return "" if pruned is None else canonical_json(pruned)


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _loose(value: Any) -> list[str]:
    """A value where a content object was expected: a string is text, anything else kept as JSON."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    pruned = _pruned(value)
    return [f"[unknown] {canonical_json(pruned)}"] if pruned not in (None, [], {}) else []


def _pruned(value: Any) -> Any:
    """``value`` without nulls, blank strings and containers left empty by removing them."""
    if isinstance(value, Mapping):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None} or None
    if isinstance(value, list):
        kept = [_pruned(v) for v in value]
        return [v for v in kept if v is not None] or None
    if isinstance(value, str):
        return value if value.strip() else None
    return value


def _string_leaves(value: Any) -> Any:
    """Only the non-blank strings of ``value`` (and the containers holding them), skipping keys that
    name identifiers and timestamps: what of a known shape's unread fields is text."""
    if isinstance(value, Mapping):
        kept = {k: _string_leaves(v) for k, v in value.items() if not NOT_TEXT_KEY.search(str(k))}
        return {k: v for k, v in kept.items() if v is not None} or None
    if isinstance(value, list):
        kept = [_string_leaves(v) for v in value]
        return [v for v in kept if v is not None] or None
    return value if isinstance(value, str) and value.strip() else None


def _unread_fields(value: Mapping[str, Any], read: set[str], kind: Any) -> list[str]:
    """The text in the fields of a known shape that its reader did not render, as one labelled block."""
    rest = _string_leaves({k: v for k, v in value.items() if k not in read})
    return [f"[{kind or 'unknown'} fields] {canonical_json(rest)}"] if rest else []


def _labelled_json(value: Mapping[str, Any], kind_key: str) -> list[str]:
    """Content of a kind this reader does not know: kept whole, as JSON, under its kind's label."""
    rest = _pruned({k: v for k, v in value.items() if k != kind_key})
    kind = value.get(kind_key)
    label = kind if isinstance(kind, str) and kind.strip() else "unknown"
    return [f"[{label}] {canonical_json(rest)}"] if rest else []


def _numbered(texts: Iterable[str]) -> tuple[Block, ...]:
    return tuple(Block(i, t) for i, t in enumerate(texts))


def _epoch_iso(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            stamp = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return _optional_text(value)


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _title(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _derived_id(conv: Mapping[str, Any]) -> str:
    return "c-" + hashlib.sha256(canonical_json(conv).encode()).hexdigest()[:24]


_READERS = {"chatgpt": _chatgpt, "claude": _claude, "canonical": canonical_conversation}
