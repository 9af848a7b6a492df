"""Cognition artifacts: content-addressed, stored write-once in the tenant's blob store, and read
back (by id, per space, or rendered with the agent consumption rules for a prompt).

Layout in the tenant's ``nexus_blob_store`` area::

    artifacts/{sha256 hex}.json                  the artifact (never rewritten)
    artifact-index/{space_id}/{sha256 hex}.json  a space's entry for it (id, query, status, created_at)

Artifacts are immutable, with one exception: an erasure (``nexus_query.erasure``) replaces an artifact
that quotes erased content with a tombstone, ``{"artifact_id", "coverage_status": "ERASED",
"erased_at", "reason"}``, so the id still resolves but the content is gone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from nexus_query.context import RequestContext, validate_id
from nexus_query.errors import InvalidId, NexusError, NotFound
from nexus_query.landing import landing_zone
from nexus_query.paths import TenantFiles
from nexus_query.store.rows import canonical_json

if TYPE_CHECKING:
    from nexus_query.routing import RoutingRegistry

ARTIFACT_TYPE = "TOPIC_COGNITION_V1"
ARTIFACTS_DIR = "artifacts"
INDEX_DIR = "artifact-index"
ERASED = "ERASED"
_ARTIFACT_ID = re.compile(r"sha256:([0-9a-f]{64})", re.ASCII)
ARTIFACT_ID_PATTERN = r"^[sS][hH][aA]256:[0-9a-fA-F]{64}$"  # what the API takes: either case (see artifact_hex)
ARTIFACT_ID_RULE = "artifact_id must be 'sha256:' followed by 64 hex digits"


class ArtifactCorrupt(NexusError):
    """A stored artifact no longer hashes to its id: it was altered after it was written."""

    code = "nexus.artifact_corrupt"
    status = 500


def artifact_id_for(payload: Mapping[str, Any]) -> str:
    """``sha256:`` + SHA-256 of the payload's canonical JSON (sorted keys, compact, UTF-8)."""
    return "sha256:" + hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def artifact_hex(artifact_id: object) -> str:
    """The artifact's 64 hex digits, lowercase. An id is read in either case (``SHA256:ABC…`` is the same
    digest as ``sha256:abc…``, and people copy ids through tools that change case); stored ids are lowercase."""
    match = _ARTIFACT_ID.fullmatch(artifact_id.lower()) if isinstance(artifact_id, str) else None
    if match is None:
        raise InvalidId(ARTIFACT_ID_RULE, field="artifact_id")
    return match.group(1)


@lru_cache(maxsize=1)
def agent_rules() -> str:
    """The seed's agent consumption rules, verbatim (shipped as package data)."""
    return resources.files("nexus_query.cognition").joinpath("agent_rules.md").read_text(encoding="utf-8")


def render_for_agent(artifact: Mapping[str, Any]) -> str:
    """A prompt section: the consumption rules, the artifact's header as JSON, then each excerpt's
    conversation as a transcript: the current thread in order, then the alternate branches (edited or
    regenerated messages), each marked as such; every block under its message id and block index, so
    citations stay exact. An erased artifact renders as its tombstone: the agent is told the content is
    gone, never given an empty artifact to reason from."""
    if is_tombstone(artifact):
        return "\n".join([agent_rules().rstrip(), "", f"NEXUS COGNITION ARTIFACT {artifact['artifact_id']}:",
                          json.dumps(dict(artifact), ensure_ascii=False, indent=2)]) + "\n"
    payload = artifact["payload"]
    header = {k: v for k, v in artifact.items() if k != "payload"}
    header["payload"] = {k: v for k, v in payload.items() if k != "raw_excerpts"}
    header["payload"]["raw_excerpts"] = [
        {"source_file": e["source_file"], "title": e.get("title"), "created_at": e.get("created_at"),
         "coverage": e["coverage"], "current_message_id": e.get("current_message_id"),
         "messages": len(e["conversation"])}
        for e in payload["raw_excerpts"]]
    sections = [agent_rules().rstrip(), "",
                f"NEXUS COGNITION ARTIFACT {artifact['artifact_id']}:",
                json.dumps(header, ensure_ascii=False, indent=2)]
    excerpts = payload["raw_excerpts"]
    for number, excerpt in enumerate(excerpts, 1):
        about = "".join(f" · {label} {excerpt[key]}" for key, label in (("title", "title"), ("created_at", "date"))
                        if excerpt.get(key))
        sections += ["", f"EXCERPT {number} of {len(excerpts)}: source_file {excerpt['source_file']}{about}",
                     *_transcript(excerpt)]
    return "\n".join(sections) + "\n"


def _transcript(excerpt: Mapping[str, Any]) -> list[str]:
    from nexus_query.cognition.canonical_export import canonical_conversation

    tree: dict[str, Any] = {"conversation_id": excerpt["source_file"], "messages": excerpt["conversation"]}
    if "current_message_id" in excerpt:  # artifacts assembled before branches were kept have one thread
        tree["current_message_id"] = excerpt["current_message_id"]
    conversation = canonical_conversation(tree, excerpt["source_file"])
    thread, alternates = conversation.current_thread(), conversation.alternates()
    recalled = {(s["message_id"], s["block_index"]) for s in excerpt["coverage"]["spans"]}
    spans = ", ".join(f"{s['message_id']}#{s['block_index']}" for s in excerpt["coverage"]["spans"])
    lines = [f"cited spans (message_id#block_index, marked RECALLED below): {spans or 'none'}", "",
             f"CURRENT THREAD ({len(thread)} messages, in order):"]
    for message in thread:
        lines += _message_lines(message, None, recalled)
    if alternates:
        lines += ["", f"ALTERNATE BRANCHES ({len(alternates)} messages: edited or regenerated, "
                      "not on the current thread):"]
        for message in alternates:
            lines += _message_lines(message, f"ALTERNATE, reply to {message.parent_id or 'nothing'}", recalled)
    return lines


def _message_lines(message: Any, mark: str | None, recalled: set[tuple[str, int]]) -> list[str]:
    about = " · ".join(x for x in (message.speaker, message.created_at, mark) if x)
    lines = ["", f"[message_id {message.message_id} · {about}]"]
    for block in message.blocks:
        span = " · RECALLED" if (message.message_id, block.index) in recalled else ""
        lines += [f"[block_index {block.index}{span}]", block.text]
    return lines


def verify(artifact: Mapping[str, Any]) -> str:
    """The artifact's hex digest, after checking that its id is the hash of its payload."""
    digest = artifact_hex(artifact.get("artifact_id"))
    payload = artifact.get("payload")
    if not isinstance(payload, Mapping) or artifact_id_for(payload) != artifact["artifact_id"]:
        raise ArtifactCorrupt("artifact payload does not hash to its artifact_id",
                              artifact_id=artifact.get("artifact_id"))
    return digest


def is_tombstone(artifact: Mapping[str, Any]) -> bool:
    return artifact.get("coverage_status") == ERASED and "payload" not in artifact


def unresolved_citations(artifact: Mapping[str, Any]) -> list[str]:
    """Coverage spans that name no block of their excerpt's conversation (a sound artifact has none)."""
    missing = []
    for excerpt in artifact["payload"]["raw_excerpts"]:
        blocks = {(m["message_id"], b["index"]) for m in excerpt["conversation"] for b in m["blocks"]}
        missing += [f"{excerpt['source_file']}: {s['message_id']}#{s['block_index']}"
                    for s in excerpt["coverage"]["spans"] if (s["message_id"], s["block_index"]) not in blocks]
    return missing


class ArtifactStore:
    """A tenant's artifacts. Built from a context (or its files), so it only ever sees that tenant."""

    def __init__(self, files: TenantFiles) -> None:
        self.files = files

    @classmethod
    def for_context(cls, ctx: RequestContext, registry: RoutingRegistry | None = None) -> ArtifactStore:
        return cls(landing_zone(ctx, registry).files)

    def put(self, artifact: Mapping[str, Any], space_id: str) -> tuple[dict[str, Any], bool]:
        """Store once. The same artifact again is a no-op that returns the stored copy (with its
        first ``created_at``) and False; nothing ever overwrites an artifact."""
        validate_id(space_id, "space_id")
        digest = verify(artifact)
        data = json.dumps(artifact, ensure_ascii=False, indent=1).encode("utf-8")
        created = self.files.write_bytes_once(data, ARTIFACTS_DIR, f"{digest}.json")
        stored = dict(artifact) if created else self.get(artifact["artifact_id"])
        if is_tombstone(stored):  # the erased content came back (ingested again): so does the artifact
            self.files.write_bytes_atomic(data, ARTIFACTS_DIR, f"{digest}.json")
            for space in self.spaces_of(artifact["artifact_id"]):
                self.files.fs.rm_file(self.files.path(INDEX_DIR, space, f"{digest}.json"))
            stored, created = dict(artifact), True
        entry = {"artifact_id": stored["artifact_id"], "query": stored["query"], "created_at": stored["created_at"],
                 "coverage_status": stored["payload"].get("coverage_status"), "space_id": space_id}
        self.files.write_bytes_once(json.dumps(entry).encode("utf-8"), INDEX_DIR, space_id, f"{digest}.json")
        return stored, created

    def get(self, artifact_id: str) -> dict[str, Any]:
        digest = artifact_hex(artifact_id)
        artifact_id = f"sha256:{digest}"
        try:
            artifact = json.loads(self.files.read_bytes(ARTIFACTS_DIR, f"{digest}.json"))
        except FileNotFoundError:
            raise NotFound("no such artifact", artifact_id=artifact_id) from None
        except json.JSONDecodeError:
            raise ArtifactCorrupt("stored artifact is not valid JSON", artifact_id=artifact_id) from None
        if is_tombstone(artifact) and artifact.get("artifact_id") == artifact_id:
            return artifact
        verify(artifact)
        return artifact

    def artifact_ids(self) -> list[str]:
        """Every artifact id stored for the tenant (tombstones included)."""
        return sorted(f"sha256:{p.rsplit('/', 1)[-1][:-5]}" for p in self.files.list(ARTIFACTS_DIR)
                      if p.endswith(".json") and _ARTIFACT_ID.fullmatch(f"sha256:{p.rsplit('/', 1)[-1][:-5]}"))

    def spaces_of(self, artifact_id: str) -> list[str]:
        """The spaces whose index lists this artifact."""
        name = f"{artifact_hex(artifact_id)}.json"
        return sorted({p.split("/")[1] for p in self.files.list(INDEX_DIR) if p.endswith(f"/{name}")})

    def tombstone(self, artifact_id: str, *, reason: str, erased_at: str) -> dict[str, Any]:
        """Replace the artifact (and its index entries) with a tombstone: the id resolves, to no content.
        The one write an artifact ever gets after it was stored (see the module docstring)."""
        digest = artifact_hex(artifact_id)
        stone = {"artifact_id": artifact_id, "coverage_status": ERASED, "erased_at": erased_at, "reason": reason}
        for space_id in self.spaces_of(artifact_id):
            old = json.loads(self.files.read_bytes(INDEX_DIR, space_id, f"{digest}.json") or b"{}")
            entry = {"artifact_id": artifact_id, "query": None, "coverage_status": ERASED, "erased_at": erased_at,
                     "created_at": old.get("created_at", erased_at), "space_id": space_id}
            self.files.write_bytes_atomic(json.dumps(entry).encode("utf-8"), INDEX_DIR, space_id, f"{digest}.json")
        self.files.write_bytes_atomic(json.dumps(stone).encode("utf-8"), ARTIFACTS_DIR, f"{digest}.json")
        return stone

    def list(self, space_id: str) -> list[dict[str, Any]]:
        """A space's artifacts, oldest first: id, query, coverage status and creation time."""
        validate_id(space_id, "space_id")
        entries = [json.loads(self.files.read_bytes(path)) for path in self.files.list(INDEX_DIR, space_id)
                   if path.endswith(".json")]
        return sorted(entries, key=lambda e: (e["created_at"], e["artifact_id"]))
