"""Claude's ``conversations.json``: each conversation's ``chat_messages`` (newer exports a tree through
``parent_message_uuid``, older ones a list), each message's ``content`` a list of typed blocks (text,
thinking, tool use and results) plus attachments and files."""

from __future__ import annotations

from collections.abc import Mapping  # not typing's: isinstance on those is slow
from typing import Any

from nexus_query.cognition.conversation_model import Conversation
from nexus_query.cognition.export_text import (
    as_text,
    derived_id,
    has_text,
    labelled_json,
    listed,
    loose,
    optional_text,
    pruned,
    squeezed,
    string_leaves,
    title_text,
    unread_fields,
)
from nexus_query.cognition.message_tree import ExportNode, build_tree
from nexus_query.errors import InvalidRequest
from nexus_query.store.rows import canonical_json

_CLAUDE_ROLES = {"human": "user", "assistant": "assistant"}


def claude_conversation(conv: Mapping[str, Any], where: str) -> Conversation:
    raw_messages = conv.get("chat_messages") or []
    if not isinstance(raw_messages, list):
        raise InvalidRequest(f"{where}.chat_messages must be a list", field=f"{where}.chat_messages")
    # Newer exports are a tree (`parent_message_uuid`, the root's parent a sentinel uuid); older ones a list.
    branched = any(isinstance(m, Mapping) and "parent_message_uuid" in m for m in raw_messages)
    nodes: list[ExportNode] = []
    previous: str | None = None
    keys: set[str] = set()
    for pos, raw in enumerate(raw_messages):
        if not isinstance(raw, Mapping):
            raise InvalidRequest(f"{where}.chat_messages[{pos}] must be an object")
        uuid = raw.get("uuid")
        key = uuid if isinstance(uuid, str) and uuid else f"{pos}"
        key = key if key not in keys else f"{key}~{pos}"  # a repeated uuid must not hide a message
        keys.add(key)
        sender = str(raw.get("sender") or "unknown")
        parent = raw.get("parent_message_uuid") if branched else previous
        nodes.append(ExportNode(key, parent, (pos,), key, _CLAUDE_ROLES.get(sender, sender),
                                optional_text(raw.get("created_at")), tuple(claude_texts(raw))))
        previous = key
    tree = build_tree(nodes, conv.get("current_leaf_message_uuid"))
    conversation_id = conv.get("uuid") or conv.get("id") or derived_id(conv)
    return Conversation(str(conversation_id), title_text(conv.get("name")), optional_text(conv.get("created_at")),
                        "claude", tree.messages, tree.current_message_id)


def claude_texts(message: Mapping[str, Any]) -> list[str]:
    """The texts of one Claude message: its ``content`` blocks (and ``text`` when it says more than
    their text blocks, or in older exports that have no blocks), then attachments and files."""
    blocks = listed(message.get("content"))
    texts = [t for item in blocks for t in _claude_block(item)]
    text = message.get("text")
    if has_text(text):
        said = "".join(i["text"] for i in blocks if isinstance(i, Mapping) and isinstance(i.get("text"), str))
        if not blocks:
            texts.insert(0, text)
        elif squeezed(text) != squeezed(said) and not any(text.strip() in t for t in texts):
            texts.insert(0, f"[text]\n{text}")
    for attachment in listed(message.get("attachments")):
        if isinstance(attachment, Mapping):
            texts += _claude_attachment(attachment)
        else:
            texts += loose(attachment)
    for file in [*listed(message.get("files")), *listed(message.get("files_v2"))]:
        if not isinstance(file, Mapping):
            texts += loose(file)
            continue
        name = as_text(file.get("file_name"))
        file_texts = ([f"[file: {name}]"] if name else []) + unread_fields(file, {"file_name"}, "file")
        texts += [t for t in file_texts if t not in texts]  # `files_v2` repeats entries of `files`
    return texts


def _claude_attachment(attachment: Mapping[str, Any]) -> list[str]:
    name, kind = as_text(attachment.get("file_name")), as_text(attachment.get("file_type"))
    said_by_name = name.lower().endswith(f".{kind.lower()}")  # receipt.txt is a txt: no need to say it
    shown = " ".join(([name] if name else []) + ([f"({kind})"] if kind and not said_by_name else []))
    label = f"[attachment: {shown}]" if shown else "[attachment]"
    body = as_text(attachment.get("extracted_content"))
    texts = [f"{label}\n{body}"] if body else ([label] if name or kind else [])
    return texts + unread_fields(attachment, {"file_name", "file_type", "extracted_content"}, "attachment")


def _claude_block(item: Any) -> list[str]:
    if not isinstance(item, Mapping):
        return loose(item)
    kind = item.get("type")
    if kind == "text":
        return loose(item.get("text")) + unread_fields(item, {"text", "type"}, kind)
    if kind == "thinking":
        summaries_field = item.get("summaries")
        raw = summaries_field if isinstance(summaries_field, list) else [summaries_field]
        summaries = [as_text(s.get("summary") if isinstance(s, Mapping) else s) for s in raw]
        summaries = [s for s in summaries if s]
        label = f"[thinking: {'; '.join(summaries)}]" if summaries else "[thinking]"
        body = as_text(item.get("thinking"))
        text = ["\n".join([label, body]) if body else label] if body or summaries else []
        rest = [unread_fields(s, {"summary"}, "summary") for s in raw if isinstance(s, Mapping)]
        return text + [t for r in rest for t in r] + unread_fields(item, {"thinking", "summaries", "type"}, kind)
    if kind == "tool_use":
        return ([f"[tool_use: {as_text(item.get('name'))}] {canonical_json(item.get('input'))}"]
                + unread_fields(item, {"name", "input", "type"}, kind))
    if kind == "tool_result":
        inner = item.get("content")
        pieces = inner if isinstance(inner, list) else [inner]
        said = "\n".join(p for p in (_tool_result_piece(x) for x in pieces) if p)
        name = as_text(item.get("name"))
        label = "tool_result error" if item.get("is_error") else "tool_result"
        return [f"[{label}: {name}]\n{said}"] + unread_fields(item, {"name", "content", "is_error", "type"}, kind)
    return labelled_json(item, "type")


def _tool_result_piece(piece: Any) -> str:
    if isinstance(piece, str):
        return piece
    if isinstance(piece, Mapping) and piece.get("type") == "text" and isinstance(piece.get("text"), str):
        rest = string_leaves({k: v for k, v in piece.items() if k not in ("type", "text")})
        return piece["text"] + (f"\n[text fields] {canonical_json(rest)}" if rest else "")
    if piece is None:
        return ""
    return f"[{piece.get('type') or 'unknown'}] {canonical_json(pruned(piece))}" if isinstance(piece, Mapping) \
        else canonical_json(piece)
