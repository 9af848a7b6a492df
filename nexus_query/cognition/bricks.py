"""Bricks: one indexed row per content block of a conversation, each able to cite its source.

A conversation's identity is its ``conversation_id`` within its source format: its source file is
``conversations/{source_format}/{conversation_id}.json`` in the tenant's blob store, so importing a
newer export of the same conversation updates that file (and its bricks) instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tqdm import tqdm

from nexus_query.cognition.conversations import Conversation, ParsedExport, parse_export
from nexus_query.context import validate_id
from nexus_query.errors import GlobalSpaceReadOnly
from nexus_query.landing import GLOBAL_SPACE_ID
from nexus_query.paths import TenantFiles
from nexus_query.store import Record

SOURCES_DIR = "conversations"
EXPORTS_DIR = "conversation-exports"
BRICK_KIND = "conversation_brick"
# all-MiniLM-L6-v2 reads 256 word pieces, about 1,000-1,200 characters of English: longer blocks are
# split so that no part of them goes unembedded.
MAX_BRICK_CHARS = 1000
_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


def source_path(conversation: Conversation) -> str:
    return f"{SOURCES_DIR}/{conversation.source_format}/{conversation.file_name}"


def split_block(text: str, limit: int = MAX_BRICK_CHARS) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` spans covering ``text``, each at most ``limit`` characters, cut
    at the strongest break (paragraph, line, sentence, clause, word) in the second half of a window."""
    spans, start = [], 0
    while start < len(text):
        end = min(start + limit, len(text))
        if end < len(text):
            window = text[start:end]
            for brk in _BREAKS:
                cut = window.rfind(brk, limit // 2)
                if cut > 0:
                    end = start + cut + len(brk)
                    break
        spans.append((start, end))
        start = end
    return [(s, e) for s, e in spans if text[s:e].strip()]


def conversation_bricks(conversation: Conversation, source_file: str) -> list[Record]:
    """The bricks of one conversation; parts of a long block share its ``block_index``."""
    records = []
    for message in conversation.messages:
        for block in message.blocks:
            spans = split_block(block.text)
            for part, (start, end) in enumerate(spans):
                metadata: dict[str, Any] = {
                    "kind": BRICK_KIND, "source_file": source_file, "conversation_id": conversation.conversation_id,
                    "message_id": message.message_id, "block_index": block.index, "role": message.role,
                    "part": part, "parts": len(spans),
                }
                if conversation.title:
                    metadata["title"] = conversation.title
                records.append(Record(text=block.text[start:end], source=source_file, metadata=metadata,
                                      chunk_index=len(records), char_start=start, char_end=end))
    return records


def store_sources(files: TenantFiles, parsed: ParsedExport, *, progress: bool = False) -> dict[str, Conversation]:
    """Write each non-empty conversation's canonical source file (only when its content changed);
    returns them by source path."""
    stored = {}
    for conversation in tqdm(parsed.conversations, desc="storing conversations", unit="conv", disable=not progress):
        if not conversation.messages:
            continue
        path, data = source_path(conversation), conversation.to_bytes()
        if not files.exists(path) or files.read_bytes(path) != data:
            files.write_bytes_atomic(data, path)
        stored[path] = conversation
    return stored


@dataclass(frozen=True)
class ExportBricks:
    parsed: ParsedExport
    sources: dict[str, Conversation]
    records: list[Record]


def bricks_for_export(files: TenantFiles, data: bytes | str) -> ExportBricks:
    """What the ingest pipeline does with a landed conversation export: store its conversations as
    canonical source files, and return their bricks for the space."""
    parsed = parse_export(data)
    sources = store_sources(files, parsed)
    records = [r for path, conversation in sources.items() for r in conversation_bricks(conversation, path)]
    return ExportBricks(parsed, sources, records)


def export_name(file_name: str) -> str:
    """A safe file name for an export, from the name it had on the user's machine."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(file_name.replace("\\", "/")).stem).strip("-.")
    return (stem or "export")[:80]


def import_export(files: TenantFiles, space_id: str, file_name: str, data: bytes, *,
                  progress: bool = False) -> dict[str, Any]:
    """``nexus cognition import``: validate an export, keep the original (write-once, by content
    hash), store its conversations as source files and land it for the pipeline, which makes the
    bricks. Nothing is written when the file is not a conversation export."""
    validate_id(space_id, "space_id")
    if space_id == GLOBAL_SPACE_ID:
        raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")
    parsed = parse_export(data)
    name = f"{hashlib.sha256(data).hexdigest()[:12]}-{export_name(file_name)}.json"
    archived = f"{EXPORTS_DIR}/{name}"
    files.write_bytes_once(data, archived)
    sources = store_sources(files, parsed, progress=progress)
    landed = landed_export_path(space_id, name)
    files.write_bytes_atomic(data, landed)
    return {**parsed.summary(), "space_id": space_id, "archived": archived, "landed": landed,
            "source_files": sorted(sources)}


def landed_export_path(space_id: str, name: str) -> str:
    """Where an import lands for the pipeline (``landing/{space}/files/...``, see nexus_query.landing)."""
    return f"landing/{validate_id(space_id, 'space_id')}/files/{SOURCES_DIR}/{name}"

