"""ChatGPT's ``conversations.json``: each conversation a ``mapping`` of nodes (a tree: editing or
regenerating a message adds a sibling), each message's ``content`` one of many ``content_type`` shapes.
Text is kept verbatim; other content (code, thinking, browsing, images...) becomes a block whose text
starts with a bracketed label such as ``[thinking]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping  # not typing's: isinstance on those is slow
from typing import Any, NamedTuple

from nexus_query.cognition.conversation_model import Conversation
from nexus_query.cognition.export_text import (
    as_text,
    derived_id,
    epoch_iso,
    labelled_json,
    listed,
    loose,
    title_text,
    unread_fields,
)
from nexus_query.cognition.message_tree import ExportNode, build_tree
from nexus_query.errors import InvalidRequest


class ContentRead(NamedTuple):
    """What a content reader made of one content object: its texts, and the fields it read (the rest is
    kept as unread fields)."""

    texts: list[str]
    read: set[str]


ContentReader = Callable[[Mapping[str, Any]], ContentRead]


def chatgpt_conversation(conv: Mapping[str, Any], where: str) -> Conversation:
    mapping = conv.get("mapping") or {}
    if not isinstance(mapping, Mapping):
        raise InvalidRequest(f"{where}.mapping must be an object", field=f"{where}.mapping")
    nodes: list[ExportNode] = []
    for position, (node_id, node) in enumerate(mapping.items()):
        if not isinstance(node, Mapping):
            continue
        parent = node.get("parent")
        parent_node = mapping.get(parent) if isinstance(parent, str) else None
        siblings = parent_node.get("children") if isinstance(parent_node, Mapping) else None
        rank = siblings.index(node_id) if isinstance(siblings, list) and node_id in siblings else len(mapping)
        message = node.get("message")
        if isinstance(message, Mapping):
            author_field, id_field = message.get("author"), message.get("id")
            author: Mapping[str, Any] = author_field if isinstance(author_field, Mapping) else {}
            texts = tuple(chatgpt_message_texts(message))
            message_id = id_field if isinstance(id_field, str) else str(node_id)
            role, created = str(author.get("role") or "unknown"), epoch_iso(message.get("create_time"))
            name = author.get("name") if isinstance(author.get("name"), str) and author["name"].strip() else None
        else:  # the root node of every export carries no message
            texts, message_id, role, created, name = (), str(node_id), "unknown", None, None
        nodes.append(ExportNode(str(node_id), parent, (rank, position), message_id, role, created, texts, name))
    tree = build_tree(nodes, conv.get("current_node"))
    conversation_id = conv.get("conversation_id") or conv.get("id") or derived_id(conv)
    return Conversation(str(conversation_id), title_text(conv.get("title")), epoch_iso(conv.get("create_time")),
                        "chatgpt", tree.messages, tree.current_message_id)


def chatgpt_message_texts(message: Mapping[str, Any]) -> list[str]:
    """One ChatGPT message's texts: its content, then the files attached to it."""
    texts = chatgpt_texts(message.get("content"))
    metadata_field = message.get("metadata")
    metadata: Mapping[str, Any] = metadata_field if isinstance(metadata_field, Mapping) else {}
    for attachment in listed(metadata.get("attachments")):
        if isinstance(attachment, Mapping) and isinstance(attachment.get("name"), str) and attachment["name"].strip():
            texts.append(f"[attachment: {attachment['name']}]")
    return texts


def chatgpt_texts(content: Any) -> list[str]:
    """The texts of one ChatGPT message content, one per block."""
    if content is None:
        return []
    if not isinstance(content, Mapping):
        return loose(content)
    kind = content.get("content_type")
    reader = _CHATGPT_CONTENT.get(kind) if isinstance(kind, str) else None
    if reader is None:
        return labelled_json(content, "content_type")
    found = reader(content)
    return found.texts + unread_fields(content, found.read | {"content_type"}, kind)


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
        return loose(part)
    kind = part.get("content_type") or part.get("type")
    if kind in ("image_asset_pointer", "image", "image_url"):
        key = next((k for k in ("asset_pointer", "url", "image_url", "file_name") if as_text(part.get(k))), None)
        read = {"content_type", "type", *([key] if key else [])}
        size = ""
        if isinstance(part.get("width"), (int, float)) and isinstance(part.get("height"), (int, float)):
            size, read = f" {part['width']}x{part['height']}", read | {"width", "height"}
        pointer = as_text(part[key]) if key else ""
        return [f"[image: {pointer}{size}]"] + unread_fields(part, read, kind)
    if kind == "audio_transcription":
        direction = f": {as_text(part.get('direction'))}" if as_text(part.get("direction")) else ""
        body = as_text(part.get("text"))
        text = ([f"[audio_transcription{direction}]\n{body}"] if body
                else ([f"[audio_transcription{direction}]"] if direction else []))
        return text + unread_fields(part, {"text", "direction", "content_type", "type"}, kind)
    if kind == "audio_asset_pointer":
        return ([f"[audio: {as_text(part.get('asset_pointer'))}]"]
                + unread_fields(part, {"asset_pointer", "content_type", "type"}, kind))
    if kind == "text" and isinstance(part.get("text"), str):
        return _chatgpt_part(part["text"], label) + unread_fields(part, {"text", "content_type", "type"}, kind)
    return labelled_json(part, "content_type" if "content_type" in part else "type")


def _text_and_parts(label: str | Callable[[Mapping[str, Any]], str] | None, *text_keys: str,
                    label_keys: tuple[str, ...] = ()) -> ContentReader:
    """A reader for content whose text is in ``text_keys`` or in ``parts`` (both seen in real exports);
    ``label_keys`` are the fields its label shows."""
    def read(content: Mapping[str, Any]) -> ContentRead:
        head = label(content) if callable(label) else label
        texts = [t for key in text_keys for t in _chatgpt_part(content.get(key), head)]
        texts += _chatgpt_parts(content, head)
        if not texts and head and any(as_text(content.get(k)) for k in label_keys):
            texts = [head]  # no body, but the label (a language, a title, a url) is itself text
        return ContentRead(texts, {*text_keys, *label_keys, "parts"})
    return read


def _code_label(content: Mapping[str, Any]) -> str:
    language = as_text(content.get("language"))
    return f"[code: {language}]" if language else "[code]"


def _quote_label(content: Mapping[str, Any]) -> str:
    where = " ".join(as_text(content.get(k)).strip() for k in ("title", "url", "domain") if as_text(content.get(k)))
    return f"[quote: {where}]" if where else "[quote]"


def _webpage_label(content: Mapping[str, Any]) -> str:
    where = " ".join(as_text(content.get(k)).strip() for k in ("title", "url", "domain") if as_text(content.get(k)))
    return f"[webpage: {where}]" if where else "[webpage]"


def _thoughts(content: Mapping[str, Any]) -> ContentRead:
    thoughts = content.get("thoughts")
    texts: list[str] = []
    for thought in thoughts if isinstance(thoughts, list) else [thoughts]:
        if isinstance(thought, str):
            texts += [f"[thinking]\n{thought}"] if thought.strip() else []
        elif isinstance(thought, Mapping):
            summary = _summary_text(thought.get("summary"))
            label = f"[thinking: {summary}]" if summary else "[thinking]"
            body = as_text(thought.get("content"))
            chunks_field = thought.get("chunks")
            raw_chunks = chunks_field if isinstance(chunks_field, list) else [chunks_field]
            chunks = [c for c in map(as_text, raw_chunks) if c and c.strip() not in body]
            if body or summary or chunks:
                texts.append("\n".join([label, *([body] if body else []), *chunks]))
            texts += unread_fields(thought, {"summary", "content", "chunks"}, "thought")
        elif thought is not None:
            texts += loose(thought)
    return ContentRead(texts, {"thoughts"})


def _summary_text(value: Any) -> str:
    """A thought's summary: a string, or (in newer exports) a list of ``{type: summary, text}`` items."""
    if isinstance(value, list):
        texts = [as_text(v["text"]) if isinstance(v, Mapping) and "text" in v else as_text(v) for v in value]
        return "; ".join(t for t in texts if t)
    return as_text(value)


def _named_texts(*keys: str) -> ContentReader:
    def read(content: Mapping[str, Any]) -> ContentRead:
        return ContentRead([f"[{key}]\n{as_text(content.get(key))}" for key in keys if as_text(content.get(key))],
                           set(keys))
    return read


def _system_error(content: Mapping[str, Any]) -> ContentRead:
    name, text = as_text(content.get("name")), as_text(content.get("text"))
    texts = [f"[system_error: {name}]\n{text}" if name else f"[system_error]\n{text}"] if name or text else []
    return ContentRead(texts + _chatgpt_parts(content, "[system_error]"), {"name", "text", "parts"})


def _reasoning_recap(content: Mapping[str, Any]) -> ContentRead:
    value = as_text(content.get("content"))
    texts = [f"[reasoning_recap] {value}"] if value else []
    return ContentRead(texts + _chatgpt_parts(content, "[reasoning_recap]"), {"content", "parts"})


_CHATGPT_CONTENT: dict[str, ContentReader] = {
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
