"""Nexus cognition: conversations become cited bricks; ``assemble_topic`` turns a read-only recall
into an immutable, content-addressed artifact that LLM agents consume instead of the index.

    from nexus_query.cognition import assemble_topic, render_for_agent
    artifact = assemble_topic(ctx, "main", "tent returns policy")
    prompt = render_for_agent(artifact)   # the agent consumption rules + the artifact

Its names load on first use (PEP 562): ``nexus cognition import`` through a running server reaches
``nexus_query.cognition.cli`` without paying for LanceDB and Arrow, which recall and artifacts import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus_query.cognition.artifacts import (
        ArtifactCorrupt,
        ArtifactStore,
        agent_rules,
        artifact_id_for,
        render_for_agent,
    )
    from nexus_query.cognition.assembly import (
        ASSEMBLED,
        NO_RECALL_MATCHES,
        SOURCES_UNAVAILABLE,
        Assembly,
        assemble,
        assemble_topic,
    )
    from nexus_query.cognition.bricks import (
        ImportReceipt,
        block_documents,
        import_export,
        land_export,
        landed_conversations,
    )
    from nexus_query.cognition.conversation_model import Block, Conversation, ExportCounts, Message, ParsedExport
    from nexus_query.cognition.conversations import parse_export
    from nexus_query.cognition.recall import Brick, recall_bricks_readonly

_SOURCES = {name: module for module, names in {
    "artifacts": ("ArtifactCorrupt", "ArtifactStore", "agent_rules", "artifact_id_for", "render_for_agent"),
    "assembly": ("ASSEMBLED", "NO_RECALL_MATCHES", "SOURCES_UNAVAILABLE", "Assembly", "assemble", "assemble_topic"),
    "bricks": ("ImportReceipt", "block_documents", "import_export", "land_export", "landed_conversations"),
    "conversation_model": ("Block", "Conversation", "ExportCounts", "Message", "ParsedExport"),
    "conversations": ("parse_export",),
    "recall": ("Brick", "recall_bricks_readonly"),
}.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)


__all__ = [
    "ASSEMBLED", "NO_RECALL_MATCHES", "SOURCES_UNAVAILABLE", "ArtifactCorrupt", "ArtifactStore", "Assembly",
    "Block", "Brick", "Conversation", "ExportCounts", "ImportReceipt", "Message", "ParsedExport", "agent_rules",
    "artifact_id_for", "assemble", "assemble_topic", "block_documents", "import_export", "land_export",
    "landed_conversations", "parse_export",
    "recall_bricks_readonly", "render_for_agent",
]
