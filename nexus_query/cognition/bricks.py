"""Bricks: the indexed pieces of conversations, each able to cite its source.

Every content block of every message, on every branch of the conversation, becomes one document with
the citation metadata (``source_file``, ``message_id``, ``block_index``, ``role``, ``conversation_id``)
and, where known, the speaker's ``name``, the conversation's ``title`` and the message's ``created_at``
(or the conversation's); its text opens with a line saying the same (``brick_text``), which the full-text
index reads but the model does not (``vector_text``). The ingest pipeline chunks it like any document, so a
long block becomes several bricks that carry the same ``block_index``.

A conversation's identity is its ``conversation_id`` within its source format: its source file is
``conversations/{source_format}/{file name of the id}`` in the tenant's blob store. Exports land under
``landing/{space}/files/conversations/`` in import order, and the latest version of a conversation wins, so a newer
export of the same conversation replaces its source file and its bricks instead of adding a copy.

An import is a task (``tasks/{task_id}.json``, kind ``cognition_import``): its landed export's name carries
the task id, so the ingest run that reads the export moves the task to running and then succeeded, whether
the landing sensor started it or ``nexus cognition import --wait`` ran it in process.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from nexus_query.cognition.conversation_model import Conversation, ExportCounts, Message
from nexus_query.cognition.conversations import parse_export
from nexus_query.context import validate_id
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest, NexusError
from nexus_query.fence import refuse_if_erasing
from nexus_query.landing import GLOBAL_SPACE_ID, LandingZone, Task, now_iso
from nexus_query.paths import TenantFiles

SOURCES_DIR = "conversations"
CHAT_EXPORTS_DIR = "conversations"  # below landing/{space}/files/: what ingestion reads as chat exports
EXPORTS_DIR = "conversation-exports"
BRICK_KIND = "conversation_brick"
IMPORT_TASK_KIND = "cognition_import"
_LANDED_TASK = re.compile(r"-task-([0-9a-f]{32})-")


def source_path(conversation: Conversation) -> str:
    return f"{SOURCES_DIR}/{conversation.source_format}/{conversation.file_name}"


@dataclass(frozen=True)
class BlockDocument:
    """One content block as a document for the ingest pipeline."""

    doc_id: str  # "{source_file}#{message_id}#{block_index}": unique, and the rows' `source`
    text: str
    metadata: dict[str, Any]


def spoken_date(stamp: str | None) -> str | None:
    """An ISO time as words the full-text index can match ("Saturday 2 March 2024"), or None."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return f"{when:%A} {when.day} {when:%B %Y}"


def brick_text(conversation: Conversation, message: Message, text: str) -> str:
    """A block's text under a line naming who said it, when and in which conversation, so a brick can
    match "what did Priya say about the lease in March?" on words that are not in the block itself."""
    return f"{said_line(message.speaker, message.created_at or conversation.created_at, conversation.title)}\n{text}"


def said_line(speaker: str, stamp: str | None, title: str | None) -> str:
    """The line ``brick_text`` puts above a block: "[Priya (user) · Saturday 2 March 2024 · Flat hunting]"."""
    return "[" + " · ".join(x for x in (speaker, spoken_date(stamp), title) if x) + "]"


def own_text(text: str, metadata: Mapping[str, Any]) -> str:
    """A brick row's block without the who/when line above it, the line rebuilt from the row's metadata
    (a later chunk of a long block, and any other row, come back as they are)."""
    if metadata.get("kind") != BRICK_KIND or "role" not in metadata:
        return text
    speaker = f"{metadata['name']} ({metadata['role']})" if metadata.get("name") else str(metadata["role"])
    line = said_line(speaker, metadata.get("created_at"), metadata.get("title")) + "\n"
    return text[len(line):] if text.startswith(line) else text


def vector_text(text: str, metadata: Mapping[str, Any], char_start: int) -> str:
    """What the model embeds for a row: a brick's block without the who/when line ``brick_text`` put
    above it (the first chunk of a brick holds that line), any other row's text as it is. The line is for
    the full-text index: embedded, it pulls every turn of a speaker, day or conversation together and the
    vector scan ranks by who spoke rather than what was said (on the recall development set, one vector
    per turn found 0.885 of the evidence turns in its top 15 from the words alone, 0.538 from
    ``speaker: words``)."""
    if metadata.get("kind") != BRICK_KIND or char_start != 0 or not text.startswith("["):
        return text
    _, newline, block = text.partition("\n")
    return block if newline and block.strip() else text


def block_documents(conversation: Conversation, source_file: str) -> list[BlockDocument]:
    docs = []
    for message in conversation.messages:
        for block in message.blocks:
            if not block.text.strip():
                continue
            metadata: dict[str, Any] = {
                "kind": BRICK_KIND, "source_file": source_file, "conversation_id": conversation.conversation_id,
                "message_id": message.message_id, "block_index": block.index, "role": message.role,
            }
            optional = {"name": message.name, "title": conversation.title,
                        "created_at": message.created_at or conversation.created_at}
            metadata.update({key: value for key, value in optional.items() if value})
            docs.append(BlockDocument(f"{source_file}#{message.message_id}#{block.index}",
                                      brick_text(conversation, message, block.text), metadata))
    return docs


def store_sources(files: TenantFiles, conversations: Iterable[Conversation]) -> dict[str, Conversation]:
    """Write each non-empty conversation's canonical source file, only when its content changed;
    returns them by source path."""
    stored = {}
    for conversation in conversations:
        if not conversation.messages:
            continue
        path, data = source_path(conversation), conversation.to_bytes()
        if not files.exists(path) or files.read_bytes(path) != data:
            files.write_bytes_atomic(data, path)
        stored[path] = conversation
    return stored


@dataclass
class LandedConversations:
    documents: list[BlockDocument]
    sources: dict[str, Conversation]
    problems: list[str] = field(default_factory=list)


def landed_conversations(files: TenantFiles, export_paths: Sequence[str]) -> LandedConversations:
    """What ingestion does with the chat exports in a space's landing zone (``export_paths`` in import
    order): the latest version of every conversation is stored as its source file and comes back as
    block documents. A file that is not an export is reported and skipped."""
    latest: dict[str, Conversation] = {}
    problems = []
    for path in export_paths:
        try:
            parsed = parse_export(files.read_bytes(path))
        except InvalidRequest as exc:
            problems.append(f"{path}: {exc.message}; skipped")
            continue
        for conversation in parsed.conversations:
            if conversation.messages:
                latest[source_path(conversation)] = conversation
    sources = store_sources(files, latest.values())
    documents = [d for path in sorted(sources) for d in block_documents(sources[path], path)]
    return LandedConversations(documents, sources, problems)


def export_name(file_name: str) -> str:
    """A safe file name for an export, from the name it had on the user's machine."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(file_name.replace("\\", "/")).stem).strip("-.")
    return (stem or "export")[:80]


def landed_task_id(path: str) -> str | None:
    """The import task a landed export belongs to (its name carries the id), or None."""
    match = _LANDED_TASK.search(PurePosixPath(path).name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class ImportReceipt:
    """What an import of one export did: its counts, its task and where the export was kept and landed."""

    counts: ExportCounts
    space_id: str
    task_id: str
    archived: str  # the original export, write-once, named by its content hash
    landed: str  # the copy in the landing zone that the ingest run reads

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts.to_dict(), "space_id": self.space_id, "task_id": self.task_id,
                "archived": self.archived, "landed": self.landed}


def import_export(files: TenantFiles, space_id: str, file_name: str, data: bytes) -> dict[str, Any]:
    """``land_export``'s receipt as JSON (what ``nexus cognition import --json`` prints)."""
    return land_export(files, space_id, file_name, data).to_dict()


def check_export(files: TenantFiles, space_id: str, data: bytes) -> ExportCounts:
    """What ``land_export`` checks before it writes anything: the space can be written and ``data`` is a
    conversation export; its counts."""
    validate_id(space_id, "space_id")
    if space_id == GLOBAL_SPACE_ID:
        raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")
    refuse_if_erasing(files, space_id)
    return parse_export(data).counts()


def land_export(files: TenantFiles, space_id: str, file_name: str, data: bytes,
                counts: ExportCounts | None = None) -> ImportReceipt:
    """``nexus cognition import``: check that ``data`` is a conversation export, keep the original
    (write-once, named by its content hash), record a ``queued`` import task and land the export for the
    ingest pipeline, which stores the conversations' source files, makes the bricks and moves the task on.
    Nothing is written for a file that is not an export. ``counts``: ``check_export``'s answer for these
    bytes, when the caller checked them already (the server does, before it claims the space's files)."""
    counts = counts or check_export(files, space_id, data)
    name = f"{hashlib.sha256(data).hexdigest()[:12]}-{export_name(file_name)}.json"
    archived = f"{EXPORTS_DIR}/{name}"
    files.write_bytes_once(data, archived)
    stamp = now_iso()
    task = Task(task_id=uuid.uuid4().hex, space_id=space_id, status="queued", created_at=stamp, updated_at=stamp,
                kind=IMPORT_TASK_KIND,
                counts={"conversations": counts.conversations, "messages": counts.messages, "blocks": counts.blocks})
    zone = LandingZone(files)
    zone.write_task(task)  # first, so a landed export always has its task to report to
    # Landed names sort in import order, so a later import of a conversation wins.
    order = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    landed = f"landing/{space_id}/files/{CHAT_EXPORTS_DIR}/{order}-task-{task.task_id}-{name}"
    files.write_bytes_atomic(data, landed)
    try:
        refuse_if_erasing(files, space_id)  # the fence went up meanwhile: the import is taken back
    except NexusError:
        for path in (landed, f"tasks/{task.task_id}.json"):
            files.fs.rm_file(files.path(path))
        raise
    return ImportReceipt(counts, space_id, task.task_id, archived, landed)
