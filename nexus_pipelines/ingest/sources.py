"""Reading a space's landing zone into normalized, hashed documents (the logic of ``raw_docs``).

What counts as a document (layout: ``nexus_query.landing``):

- every item of every API batch, ``landing/{space}/batches/*.json``;
- dropped files under ``landing/{space}/files/``: ``.txt`` and ``.md`` (one document each, id = the
  path below ``files/``), ``.jsonl`` (one item per line, the fields of an API item), and images
  (``.png .jpg .jpeg .gif .webp``) with an optional sidecar ``<image file name>.json`` holding
  ``{"caption": ..., "alt_text": ..., "metadata": {...}}``.

A document id seen twice keeps its last version: files first (by path), then batches (by arrival), so
a re-sent item replaces the earlier one. ``.json`` files under ``files/conversations/`` are chat exports
(ChatGPT, Claude or canonical conversations, ``nexus_query.cognition``): one document per content block
of each conversation's latest version, after everything else. Other files are left alone. Documents
stream out in Arrow batches, so a space never has to fit in memory.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from nexus_query.cognition.bricks import CHAT_EXPORTS_DIR, landed_conversations, landed_task_id
from nexus_query.errors import InvalidRequest
from nexus_query.landing import LandingZone, validate_items
from nexus_query.store import canonical_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text"}
# Free text of unknown shape (API items, JSON-lines items) may carry markdown headings.
ITEM_FORMAT = "markdown"

DOC_SCHEMA = pa.schema([
    pa.field("doc_id", pa.utf8(), nullable=False),    # becomes the rows' `source`
    pa.field("type", pa.utf8(), nullable=False),      # text | image
    pa.field("format", pa.utf8(), nullable=False),    # markdown | text | image
    pa.field("text", pa.utf8(), nullable=False),      # what is chunked and embedded
    pa.field("metadata", pa.utf8(), nullable=False),  # canonical JSON object
    pa.field("blob_path", pa.utf8(), nullable=True),  # images: the blob in the tenant's store
    pa.field("origin", pa.utf8(), nullable=False),    # batch:<id> or file:<path>, for tracing
    pa.field("doc_hash", pa.utf8(), nullable=False),  # sha256 of everything above that makes the rows
])


def normalize_text(text: str) -> str:
    """One spelling of the same text: no BOM, Unix newlines, NFC. Chunk offsets refer to this form."""
    return unicodedata.normalize("NFC", text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))


def describe_image(caption: str | None, alt_text: str | None, metadata: Mapping[str, Any],
                   blob_path: str) -> tuple[str, list[str]]:
    """The text an image is embedded from (the text model sees no pixels) and what it was made of."""
    parts, used = [], []
    if caption and caption.strip():
        parts.append(caption.strip())
        used.append("caption")
    if alt_text and alt_text.strip() and alt_text.strip() != (caption or "").strip():
        parts.append(alt_text.strip())
        used.append("alt_text")
    described = [f"{k}: {v}" for k, v in sorted(metadata.items())
                 if k not in ("alt_text", "caption") and isinstance(v, (str, int, float)) and str(v).strip()]
    if described:
        parts.append("\n".join(described))
        used.append("metadata")
    if not parts:
        parts.append(blob_path.rsplit("/", 1)[-1])
        used.append("file_name")
    return "\n".join(normalize_text(p) for p in parts), used


def _doc(doc_id: str, kind: str, fmt: str, text: str, metadata: Mapping[str, Any], blob_path: str | None,
         origin: str) -> dict[str, Any]:
    meta = canonical_json(dict(metadata))
    digest = hashlib.sha256(canonical_json([kind, text, meta, blob_path]).encode("utf-8")).hexdigest()
    return {"doc_id": doc_id, "type": kind, "format": fmt, "text": text, "metadata": meta,
            "blob_path": blob_path, "origin": origin, "doc_hash": digest}


def item_doc(item: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """A validated ingest item (``nexus_query.landing.validate_items``) as a document."""
    metadata = dict(item.get("metadata") or {})
    if item["type"] == "image":
        text, used = describe_image(item.get("content"), metadata.get("alt_text"), metadata, item["blob_path"])
        metadata.update(embedded_from=used, embedding_modality="text")
        return _doc(item["id"], "image", "image", text, metadata, item["blob_path"], origin)
    return _doc(item["id"], "text", ITEM_FORMAT, normalize_text(item["content"]), metadata, None, origin)


@dataclass(frozen=True)
class _Origin:
    kind: str  # "file" or "batch"
    name: str  # path below the tenant root, or batch id


@dataclass
class LandingReader:
    """One pass over a space's landing zone: documents out, counts and problems recorded on the way."""

    zone: LandingZone
    space_id: str
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    chat_exports: list[str] = field(default_factory=list)

    @property
    def files_prefix(self) -> str:
        return f"landing/{self.space_id}/files/"

    def _origins(self) -> tuple[list[_Origin], dict[str, tuple[int, int]]]:
        """Every origin in precedence order, and for each document id where its last version is."""
        files = self.zone.files.list("landing", self.space_id, "files")
        names = set(files)
        self.chat_exports = []
        origins: list[_Origin] = []
        ids_of: list[list[str]] = []
        for path in files:
            if path.endswith(".json") and path[:-5] in names and self._file_format(path[:-5]) == "image":
                continue  # an image's sidecar
            if path.endswith(".jsonl"):
                ids = [doc["doc_id"] for doc in self._read_jsonl(path, report=False)]
            elif self._file_format(path):
                ids = [path[len(self.files_prefix):]]
            elif path.startswith(f"{self.files_prefix}{CHAT_EXPORTS_DIR}/") and path.endswith(".json"):
                self.chat_exports.append(path)
                continue
            else:
                self.counts["ignored_files"] += 1
                continue
            origins.append(_Origin("file", path))
            ids_of.append(ids)
        batches = []
        for batch_id in self.zone.batch_ids(self.space_id):
            body = self.zone.read_batch(self.space_id, batch_id)
            batches.append((body.get("received_at", ""), batch_id, [item["id"] for item in body["items"]]))
        for _, batch_id, ids in sorted(batches):
            origins.append(_Origin("batch", batch_id))
            ids_of.append(ids)
        last = {doc_id: (index, position)
                for index, ids in enumerate(ids_of) for position, doc_id in enumerate(ids)}
        return origins, last

    @staticmethod
    def _file_format(path: str) -> str | None:
        lower = path.lower()
        if lower.endswith(IMAGE_SUFFIXES):
            return "image"
        return next((fmt for suffix, fmt in TEXT_SUFFIXES.items() if lower.endswith(suffix)), None)

    def _read(self, origin: _Origin) -> Iterator[dict[str, Any]]:
        if origin.kind == "batch":
            # Batches were validated when they were accepted; one that cannot be read fails the run
            # (its task reports the error) rather than being skipped: an accepted batch is never lost.
            for item in self.zone.read_batch(self.space_id, origin.name)["items"]:
                yield item_doc(item, f"batch:{origin.name}")
            return
        path, doc_id = origin.name, origin.name[len(self.files_prefix):]
        if path.endswith(".jsonl"):
            yield from self._read_jsonl(path)
            return
        fmt = self._file_format(path)
        if fmt is None:  # only files of a known format are listed as origins
            return
        if fmt == "image":
            yield self._read_image(path, doc_id)
            return
        try:
            text = normalize_text(self.zone.files.read_bytes(path).decode("utf-8"))
        except UnicodeDecodeError:
            self.problems.append(f"{path}: not UTF-8 text, skipped")
            return
        if not text.strip():
            self.problems.append(f"{path}: empty, skipped")
            return
        yield _doc(doc_id, "text", fmt, text, {"source": doc_id}, None, f"file:{path}")

    def _read_jsonl(self, path: str, report: bool = True) -> Iterator[dict[str, Any]]:
        try:
            lines = self.zone.files.read_bytes(path).decode("utf-8").splitlines()
        except UnicodeDecodeError:
            if report:
                self.problems.append(f"{path}: not UTF-8 text, skipped")
            return
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                (item,) = validate_items(self.zone.files, [json.loads(line)])
            except (ValueError, InvalidRequest) as exc:
                if report:
                    self.problems.append(f"{path}:{number}: {getattr(exc, 'message', exc)}")
                continue
            yield item_doc(item, f"file:{path}")

    def _read_image(self, path: str, doc_id: str) -> dict[str, Any]:
        sidecar: dict[str, Any] = {}
        if self.zone.files.exists(f"{path}.json"):
            try:
                sidecar = json.loads(self.zone.files.read_bytes(f"{path}.json"))
                if not isinstance(sidecar, dict) or not isinstance(sidecar.get("metadata", {}), dict):
                    raise ValueError("a sidecar is an object with an optional metadata object")
            except ValueError as exc:
                self.problems.append(f"{path}.json: {exc}; image ingested without it")
                sidecar = {}
        metadata = dict(sidecar.get("metadata") or {})
        text, used = describe_image(sidecar.get("caption"), sidecar.get("alt_text"), metadata, path)
        metadata.update(source=doc_id, embedded_from=used, embedding_modality="text")
        return _doc(doc_id, "image", "image", text, metadata, path, f"file:{path}")

    def documents(self) -> Iterator[dict[str, Any]]:
        origins, last = self._origins()
        for index, origin in enumerate(origins):
            for position, doc in enumerate(self._read(origin)):
                if last.get(doc["doc_id"]) == (index, position):
                    self.counts[f"{doc['type']}_docs"] += 1
                    self.counts[f"from_{origin.kind}s"] += 1
                    yield doc
                else:
                    self.counts["replaced_by_later_version"] += 1
        yield from self._conversation_blocks()

    def documents_of(self, batch_id: str | None = None, exports: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        """The documents of one landed batch (its items and the chat exports it names) and of ``exports``
        (landed chat exports), as ``documents`` reads them: what the fast path (``fast``) ingests."""
        self.chat_exports = list(exports)
        if batch_id is not None:
            body = self.zone.read_batch(self.space_id, batch_id)
            for item in body["items"]:
                self.counts[f"{item['type']}_docs"] += 1
                yield item_doc(item, f"batch:{batch_id}")
            self.chat_exports += [p for p in body.get("files", [])
                                  if p.startswith(f"{self.files_prefix}{CHAT_EXPORTS_DIR}/")]
        yield from self._conversation_blocks()

    @property
    def import_tasks(self) -> list[str]:
        """The import tasks (``nexus cognition import``) whose landed exports this pass read."""
        return sorted({task for task in map(landed_task_id, self.chat_exports) if task})

    def _conversation_blocks(self) -> Iterator[dict[str, Any]]:
        """The chat exports' blocks, with their citation metadata; their conversations' source files
        are stored on the way (``nexus_query.cognition.bricks.landed_conversations``)."""
        landed = landed_conversations(self.zone.files, self.chat_exports)
        self.problems.extend(landed.problems)
        for doc in landed.documents:
            self.counts["text_docs"] += 1
            self.counts["conversation_blocks"] += 1
            yield _doc(doc.doc_id, "text", "text", doc.text, doc.metadata, None, f"file:{doc.metadata['source_file']}")

    def batches(self, rows: int = 2048) -> Iterator[pa.RecordBatch]:
        pending: list[dict[str, Any]] = []
        for doc in self.documents():
            pending.append(doc)
            if len(pending) >= rows:
                yield pa.RecordBatch.from_pylist(pending, schema=DOC_SCHEMA)
                pending = []
        if pending:
            yield pa.RecordBatch.from_pylist(pending, schema=DOC_SCHEMA)

    def summary(self) -> dict[str, Any]:
        return {"documents": self.counts["text_docs"] + self.counts["image_docs"], **dict(self.counts),
                "problems": len(self.problems)}
