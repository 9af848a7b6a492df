"""The canonical form of a conversation (conversation → messages → blocks) that every export is read
into and that bricks, citations and artifacts share. One conversation, as its source file in the blob
store holds it::

    {"format": "nexus.conversation.v1", "conversation_id": "...", "title": "..." | null,
     "created_at": "..." | null, "source_format": "chatgpt" | "claude" | "canonical",
     "current_message_id": "..." | null,
     "messages": [{"message_id": "...", "parent_id": "..." | null, "role": "user",
                   "created_at": "..." | null, "blocks": [{"index": 0, "text": "..."}]}]}

A message may also carry ``"name"``: its speaker's name where the export gives one (a role says only
"user"); the key is absent otherwise, so sources written before it existed keep their bytes.

Every message of every branch is kept, parents first; ``current_message_id`` is the leaf of the thread
the user last saw, so the current thread can be walked back from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    parent_id: str | None = None  # the message this one answers or follows; None for a thread's first
    name: str | None = None  # the speaker's name, where the export gives one

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "parent_id": self.parent_id, "role": self.role,
                **({"name": self.name} if self.name else {}), "created_at": self.created_at,
                "blocks": [{"index": b.index, "text": b.text} for b in self.blocks]}

    @property
    def speaker(self) -> str:
        """Who spoke, as a reader would say it: "Priya (user)", or the role alone."""
        return f"{self.name} ({self.role})" if self.name else self.role


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
class ExportCounts:
    """What an export holds, as an import reports it (the empty conversations are counted, never stored)."""

    format: str
    conversations: int
    empty_conversations: int
    messages: int
    alternate_messages: int  # messages off the current thread: edited or regenerated branches
    blocks: int

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "conversations": self.conversations,
                "empty_conversations": self.empty_conversations, "messages": self.messages,
                "alternate_messages": self.alternate_messages, "blocks": self.blocks}


@dataclass(frozen=True)
class ParsedExport:
    """Every conversation of one file, empty ones included (they are counted, never stored)."""

    source_format: str
    conversations: tuple[Conversation, ...]

    @property
    def stored(self) -> tuple[Conversation, ...]:
        """The conversations an import stores: those with at least one message."""
        return tuple(c for c in self.conversations if c.messages)

    def counts(self) -> ExportCounts:
        filled = self.stored
        return ExportCounts(format=self.source_format, conversations=len(filled),
                            empty_conversations=len(self.conversations) - len(filled),
                            messages=sum(len(c.messages) for c in filled),
                            alternate_messages=sum(len(c.alternates()) for c in filled),
                            blocks=sum(c.block_count for c in filled))

    def summary(self) -> dict[str, Any]:
        """``counts()`` as JSON (what ``nexus cognition import --json`` prints)."""
        return self.counts().to_dict()
