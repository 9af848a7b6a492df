"""``assemble_topic``: recall bricks read-only, load each distinct source once and whole, and emit
the seed's content-addressed artifact (stored write-once).

Each excerpt holds its conversation whole, every branch of it: messages carry ``parent_id`` and the
excerpt names ``current_message_id``, the leaf of the thread the user last saw, and the conversation's
``title`` and ``created_at`` (when it took place: temporal questions need it). The seed's schema,
extended by these fields so that an edited or regenerated branch is neither lost nor mistaken for the
current thread, and an excerpt says what and when it was. They are the source's content, so the
artifact id still depends on content only.

Determinism: brick ids and source files are listed sorted, excerpts in source-file order, spans in
conversation order; of sources whose loaded content is identical the first path in that order is
kept. The payload carries no generation time, so the same recall gives the same ``artifact_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from nexus_query.cognition.artifacts import ARTIFACT_TYPE, ArtifactStore, artifact_id_for
from nexus_query.cognition.canonical_export import canonical_conversation
from nexus_query.cognition.conversation_model import Conversation
from nexus_query.cognition.recall import DEFAULT_K, MIN_SCORE, TOPIC_MIN_SCORE, Brick, recall_bricks_readonly
from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbeddingProvider
from nexus_query.errors import InvalidRequest, NexusError
from nexus_query.landing import now_iso
from nexus_query.paths import TenantFiles
from nexus_query.store import SpaceStore
from nexus_query.store.rows import canonical_json

log = logging.getLogger("nexus_query.cognition")

ASSEMBLED = "ASSEMBLED"
NO_RECALL_MATCHES = "NO_RECALL_MATCHES"
# Bricks matched, but none of their sources could be loaded (all missing, corrupt or changed).
SOURCES_UNAVAILABLE = "SOURCES_UNAVAILABLE"


class SourceUnavailable(Exception):
    """A source file that is missing, not valid JSON, not a conversation, or outside the store."""


class BuiltPayload(NamedTuple):
    """An artifact payload and what went into it: the sources loaded and the ones skipped (and why)."""

    payload: dict[str, Any]
    loaded_sources: list[str]
    skipped_sources: dict[str, str]  # source file → why


@dataclass(frozen=True)
class Assembly:
    """What ``assemble`` did, for a pipeline to report: the artifact as stored and the sources behind it."""

    artifact: dict[str, Any]
    created: bool  # False when this artifact was already stored (the stored copy is returned)
    loaded_sources: list[str] = field(default_factory=list)
    skipped_sources: dict[str, str] = field(default_factory=dict)  # source file → why


class LoadedSource(NamedTuple):
    """A source file as read: its JSON tree (what the excerpt's content hash is taken of) and its conversation."""

    tree: Any
    conversation: Conversation


def load_source(files: TenantFiles, source_file: str) -> LoadedSource:
    """Read one source whole from the tenant's store: its JSON tree and its conversation. A path
    that leaves the tenant's store is refused before anything is read."""
    try:
        relative = files.relative(source_file)
    except NexusError as exc:
        raise SourceUnavailable(f"refused: {exc.message}") from None
    try:
        tree = json.loads(files.read_bytes(relative))
    except FileNotFoundError:
        raise SourceUnavailable("file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceUnavailable(f"not valid JSON ({exc})") from None
    try:
        return LoadedSource(tree, canonical_conversation(tree, source_file))
    except NexusError as exc:
        raise SourceUnavailable(f"not a canonical conversation ({exc.message})") from None


def conversation_date(conversation: Conversation) -> str | None:
    """When a conversation took place: its own ``created_at``, else its earliest message's."""
    return conversation.created_at or min((m.created_at for m in conversation.messages if m.created_at), default=None)


def build_payload(topic: str, bricks: list[Brick], files: TenantFiles) -> BuiltPayload:
    """The artifact payload for recalled ``bricks``, the sources loaded and the ones skipped."""
    by_source: dict[str, list[Brick]] = {}
    for brick in bricks:
        by_source.setdefault(brick.source_file, []).append(brick)
    loaded: list[str] = []
    skipped: dict[str, str] = {}
    excerpts: dict[str, dict[str, Any]] = {}  # content hash → excerpt
    # content hash → span → position in conversation (message, then block)
    order: dict[str, dict[tuple[str, int], tuple[int, int]]] = {}
    brick_ids: list[str] = []
    source_files: list[str] = []
    for source_file in sorted(by_source):
        try:
            tree, conversation = load_source(files, source_file)  # once per distinct source
        except SourceUnavailable as exc:
            skipped[source_file] = str(exc)
            log.error("ERROR: Failed to load source %s: %s; skipped", source_file, exc)
            continue
        loaded.append(source_file)
        positions = {(m.message_id, b.index): (i, b.index)
                     for i, m in enumerate(conversation.messages) for b in m.blocks}
        present = [b for b in by_source[source_file] if (b.message_id, b.block_index) in positions]
        if not present:
            skipped[source_file] = "none of the recalled blocks is in it (changed since it was indexed)"
            log.error("ERROR: Failed to load source %s: %s; skipped", source_file, skipped[source_file])
            continue
        digest = hashlib.sha256(canonical_json(tree).encode("utf-8")).hexdigest()
        excerpt = excerpts.get(digest)
        if excerpt is None:  # identical content under another path is included once
            # The whole conversation, every branch: `parent_id` per message, the current leaf beside it.
            excerpt = excerpts[digest] = {"source_file": source_file, "coverage": {"spans": []},
                                          "current_message_id": conversation.current_message_id,
                                          "title": conversation.title, "created_at": conversation_date(conversation),
                                          "conversation": [m.to_dict() for m in conversation.messages]}
            order[digest] = {}
        for b in present:
            order[digest][(b.message_id, b.block_index)] = positions[(b.message_id, b.block_index)]
        brick_ids.extend(b.brick_id for b in present)
        source_files.append(source_file)
    for digest, excerpt in excerpts.items():
        spans = sorted(order[digest], key=order[digest].__getitem__)
        excerpt["coverage"]["spans"] = [{"message_id": m, "block_index": i} for m, i in spans]
    status = ASSEMBLED if excerpts else (SOURCES_UNAVAILABLE if bricks else NO_RECALL_MATCHES)
    payload = {
        "topic": topic,
        "artifact_type": ARTIFACT_TYPE,
        "coverage_status": status,
        "provenance": {"brick_ids": sorted(set(brick_ids)), "source_files": sorted(source_files)},
        "raw_excerpts": sorted(excerpts.values(), key=lambda e: e["source_file"]),
        "extracted_facts": [],
        "decisions": [],
        "constraints": [],
        "edge_cases": [],
    }
    return BuiltPayload(payload, loaded, skipped)


def make_artifact(topic: str, payload: dict[str, Any], created_at: str | None = None) -> dict[str, Any]:
    return {"artifact_id": artifact_id_for(payload), "created_at": created_at or now_iso(), "query": topic,
            "derived_from": list(payload["provenance"]["brick_ids"]), "payload": payload}


def assemble(ctx: RequestContext, space_id: str, topic: str, k: int = DEFAULT_K, *,
             store: SpaceStore | None = None, provider: EmbeddingProvider | None = None) -> Assembly:
    """Everything ``assemble_topic`` does, with what a pipeline wants to report about it."""
    if not isinstance(topic, str) or not topic.strip():
        raise InvalidRequest("topic must be a non-empty string", field="topic")
    topic = topic.strip()
    store = store or SpaceStore()
    bricks = recall_bricks_readonly(ctx, space_id, topic, k, store=store, provider=provider, min_score=MIN_SCORE,
                                    topic_min_score=TOPIC_MIN_SCORE)
    artifacts = ArtifactStore.for_context(ctx, store.registry)
    built = build_payload(topic, bricks, artifacts.files)
    stored, created = artifacts.put(make_artifact(topic, built.payload), space_id)
    return Assembly(stored, created, built.loaded_sources, built.skipped_sources)


def assemble_topic(ctx: RequestContext, space_id: str, topic: str, k: int = DEFAULT_K, *,
                   store: SpaceStore | None = None, provider: EmbeddingProvider | None = None) -> dict[str, Any]:
    """The seed's ``TOPIC_COGNITION_V1`` artifact for ``topic`` in a tenant space (stored write-once)."""
    return assemble(ctx, space_id, topic, k, store=store, provider=provider).artifact
