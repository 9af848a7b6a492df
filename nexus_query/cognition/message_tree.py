"""The message tree of an export: ChatGPT's ``mapping`` and Claude's ``parent_message_uuid`` both give each
message a parent; editing or regenerating a message adds a sibling branch. ``build_tree`` lays every
branch out parents first, so the canonical form keeps them all and can walk the current thread back
from its leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from nexus_query.cognition.conversation_model import Message
from nexus_query.cognition.export_text import numbered


@dataclass(frozen=True)
class ExportNode:
    """One message of an export before it is placed in the tree: ``texts`` empty means nothing to keep."""

    key: str                # the export's id for it (unique within the conversation)
    parent: Any             # the key of its parent, or anything else for a root
    order: tuple[int, ...]  # how it sorts among its siblings
    message_id: str
    role: str
    created_at: str | None
    texts: tuple[str, ...]
    name: str | None = None  # the speaker's name, where the export gives one


class MessageTree(NamedTuple):
    """An export's messages laid out parents first, and the leaf of the thread the user last saw."""

    messages: tuple[Message, ...]
    current_message_id: str | None


def build_tree(nodes: Sequence[ExportNode], current_key: Any) -> MessageTree:
    """The messages of ``nodes`` parents first (depth first, siblings by ``order``) with their parent ids,
    and the current leaf's message id. Empty nodes are left out and their children re-parented to the
    nearest kept ancestor; a cycle in a corrupt export is broken at its first node in order."""
    by_key = {n.key: n for n in nodes}
    children: dict[str | None, list[ExportNode]] = {}
    for node in nodes:
        parent = (node.parent if isinstance(node.parent, str) and node.parent in by_key and node.parent != node.key
                  else None)
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
        stack: list[tuple[ExportNode, str | None]] = [(n, None) for n in reversed(starts)]
        while stack:
            node, kept_ancestor = stack.pop()
            if node.key in visited:
                continue
            visited.add(node.key)
            here = kept_ancestor
            if node.texts:
                message_id = _unique_id(node, used_ids)
                messages.append(Message(message_id, node.role, node.created_at, numbered(node.texts), kept_ancestor,
                                        node.name))
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
    return MessageTree(tuple(messages), current)


def newest_leaf(messages: Sequence[Message]) -> str | None:
    """The leaf created last (ties: the later in canonical order): the current leaf when an export names none."""
    parents = {m.parent_id for m in messages}
    leaves = [(m.created_at or "", position, m.message_id) for position, m in enumerate(messages)
              if m.message_id not in parents]
    return max(leaves)[2] if leaves else None


def _unique_id(node: ExportNode, used: set[str]) -> str:
    chosen = node.message_id if node.message_id and node.message_id not in used else node.key
    suffix = 2
    while chosen in used:
        chosen, suffix = f"{node.key}~{suffix}", suffix + 1
    used.add(chosen)
    return chosen
