"""Verification that does not trust the plan: fingerprints of the erased documents are taken from the
stores before anything is removed, and afterwards every file the space has in every store is read and
searched for them.

Fingerprints are distinctive byte strings of the erased documents' own text (long words and stretches
of their chunks, their landed files and their conversations), as UTF-8 and as JSON writes them, and the
content hashes of their rows; a string that a surviving document of the space also holds is not one.
The scan reads, byte for byte: every file of the space's table folder and every table version (through
Lance, which sees compressed pages), every file of the owner's blob and projection areas that is not
another space's (landing, Parquet intermediates, media, conversation sources and exports, tasks,
artifacts, HAZE snapshots; Parquet files decoded as well), and any further folders the caller names
(Dagster's home: event log and run storage). Tenant-wide files that are another space's (conversations
it landed, exports holding only those) are left out, and counted; so are this erasure's own plan and
request, which go once it is verified.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_query.cognition.artifacts import ARTIFACTS_DIR, INDEX_DIR
from nexus_query.cognition.bricks import EXPORTS_DIR, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.erasure.model import ErasurePlan
from nexus_query.erasure.plan import conversations_elsewhere, plan_parts, readable, request_parts
from nexus_query.erasure.target import ErasureTarget
from nexus_query.errors import InvalidRequest
from nexus_query.landing import MEDIA_DIR, LandingZone
from nexus_query.store.space import SpaceTable

MIN_WORD = 12          # a word this long is rare enough to stand for its document
STRETCH = 32           # characters of a stretch of text
PER_TEXT = 6
MAX_FINGERPRINTS = 2048
BLOB_PIECE = 48        # bytes of an image that stand for it
_WORD = re.compile(rf"\w{{{MIN_WORD},}}")
_PLAIN = re.compile(rf"[^\"\\\n\r\t\x00-\x1f]{{{STRETCH},}}")  # stretches JSON writes unchanged
_SPACE_DIRS = ("landing", "media", INDEX_DIR, "erasures", "haze")
_TEXT_COLUMNS = ["id", "source", "text", "metadata", "content_hash"]


@dataclass(frozen=True)
class ScanResult:
    """What the scan read and what it found (counts per store; no names, no content)."""

    fingerprints: int
    files: int = 0
    size: int = 0  # bytes read
    versions: int = 0
    found: dict[str, int] = field(default_factory=dict)
    shared_kept: int = 0

    @property
    def clean(self) -> bool:
        return not any(self.found.values())


# --- fingerprints, before anything is removed ---------------------------------------------------------

def candidates(text: str) -> list[str]:
    """Distinctive pieces of ``text``: its long words and the ends of its long plain stretches (a short
    text stands for itself)."""
    short = text.strip()
    if MIN_WORD <= len(short) < STRETCH and _PLAIN.fullmatch(short + " " * STRETCH):
        return [short]
    found = list(dict.fromkeys(_WORD.findall(text)))[:PER_TEXT // 2]
    for stretch in _PLAIN.findall(text):
        stretch = stretch.strip()
        if len(stretch) >= STRETCH:
            found += [stretch[:STRETCH], stretch[-STRETCH:]]
        if len(found) >= PER_TEXT:
            break
    return found[:PER_TEXT]


def encodings(piece: str) -> set[bytes]:
    """``piece`` as the stores write it: UTF-8, and inside a JSON string (escaped, or not)."""
    return {piece.encode("utf-8"), json.dumps(piece)[1:-1].encode("ascii"),
            json.dumps(piece, ensure_ascii=False)[1:-1].encode("utf-8")}


def take_fingerprints(target: ErasureTarget, plan: ErasurePlan, space: SpaceTable | None) -> set[bytes]:
    """Fingerprints of what ``plan`` erases, read from the stores themselves (the table's rows, landing
    batches, landed files, conversation source files), minus what surviving documents of the space hold."""
    erased: list[str] = []
    kept: list[str] = []
    hashes: set[str] = set()
    kept_hashes: set[str] = set()
    shown: set[str] = set()  # images a surviving document still shows
    columns = ["id", "source", "text", "content_hash", "blob_path"]
    if space is not None and readable(space) and space.count():
        for batch in space.table.search().select(columns).limit(None).to_batches():
            for row in batch.to_pylist():
                gone = plan.whole_space or row["id"] in plan.row_ids or row["source"] in plan.doc_ids
                (erased if gone else kept).append(row["text"] or "")
                (hashes if gone else kept_hashes).add(row["content_hash"] or "")
                if not gone and row["blob_path"]:
                    shown.add(row["blob_path"])
    zone = LandingZone(target.files)
    for batch_id in zone.batch_ids(plan.request.space_id):
        try:
            items = zone.read_batch(plan.request.space_id, batch_id)["items"]
        except (FileNotFoundError, ValueError):
            continue
        for item in items:
            gone = plan.whole_space or item.get("id") in plan.doc_ids
            (erased if gone else kept).append(item.get("content") or "")
    erased.extend(target.files.read_bytes(path).decode("utf-8", errors="ignore") for path in plan.landed_files
                  if not path.endswith((".json", ".jsonl")) and target.files.exists(path))
    for source in plan.conversation_sources:
        if target.files.exists(source):
            try:
                parsed = parse_export(target.files.read_bytes(source))
            except InvalidRequest:
                continue
            erased += [b.text for c in parsed.conversations for m in c.messages for b in m.blocks]
    surviving = "\n".join(kept)
    pieces = {p for text in erased for p in candidates(text) if p not in surviving}
    needles = {e for p in sorted(pieces) for e in encodings(p)}
    needles |= {h.encode() for h in hashes - kept_hashes if h}
    images = set(plan.blob_paths) - shown
    if plan.whole_space:
        images |= set(target.files.list(MEDIA_DIR, plan.request.space_id))
    needles |= {piece for path in sorted(images) if (piece := _blob_piece(target, path))}
    return set(sorted(needles, key=lambda n: (-len(n), n))[:MAX_FINGERPRINTS])


def _blob_piece(target: ErasureTarget, path: str) -> bytes | None:
    """A stretch from the middle of an image's bytes: any copy of the image holds it."""
    try:
        data = target.files.read_bytes(target.files.relative(path))
    except Exception:  # noqa: BLE001 - gone already, or a reference outside the tenant's store
        return None
    if len(data) < 2 * BLOB_PIECE:
        return None  # too short to be told apart from other bytes
    middle = len(data) // 2
    return data[middle:middle + BLOB_PIECE]


# --- the scan, afterwards -----------------------------------------------------------------------------

@dataclass
class _Tally:
    needles: Sequence[bytes]
    files: int = 0
    size: int = 0
    versions: int = 0
    found: dict[str, int] = field(default_factory=dict)

    def holds(self, data: bytes) -> bool:
        return any(n in data for n in self.needles)

    def read(self, store: str, fs: fsspec.AbstractFileSystem, path: str) -> None:
        try:
            data = fs.cat_file(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return
        self.files += 1
        self.size += len(data)
        if self.holds(data) or (path.endswith(".parquet") and self._parquet_holds(data)):
            self.found[store] = self.found.get(store, 0) + 1

    def _parquet_holds(self, data: bytes) -> bool:
        """A Parquet file's pages may be compressed: its text columns are searched decoded too."""
        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception:  # noqa: BLE001 - a half-written temporary; its raw bytes were searched
            return False
        texts = [table.column(i).to_pylist() for i, f in enumerate(table.schema)
                 if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        return any(self.holds("\x00".join(v or "" for v in values).encode("utf-8", "ignore")) for values in texts)


def scan_for(target: ErasureTarget, plan: ErasurePlan, needles: Iterable[bytes],
             extra_roots: Sequence[str] = ()) -> ScanResult:
    """Search every store of the space for ``needles`` (see the module docstring)."""
    tally = _Tally(sorted(set(needles)))
    if not tally.needles:
        return ScanResult(0)
    space_id = plan.request.space_id
    skipped = _kept_for_others(target, plan)
    task_id = plan.request.task_id
    own = {"/".join(plan_parts(space_id, task_id)), "/".join(request_parts(space_id, task_id))}
    artifacts_elsewhere = _artifacts_only_elsewhere(target, space_id)
    for store, area in (("blobs", target.files), ("projections", target.projections)):
        root = area.root.rstrip("/")
        if not area.fs.exists(root):
            continue
        for path in area.fs.find(root):
            rel = path[len(root) + 1:] if path.startswith(root + "/") else path
            if rel in own or rel in skipped or rel in artifacts_elsewhere or _other_space(rel, space_id):
                continue
            tally.read(store, area.fs, path)
    fs, table_root = target.table_fs()
    if fs.exists(table_root):
        for path in fs.find(table_root):
            tally.read("table_files", fs, path)
    space = target.open_table()
    if space is not None and readable(space):
        _scan_versions(space, plan, tally)
    local = fsspec.filesystem("file")
    for root in extra_roots:
        if local.exists(root):
            for path in local.find(root):
                tally.read("dagster", local, path)
    return ScanResult(len(tally.needles), tally.files, tally.size, tally.versions, dict(tally.found), len(skipped))


def _scan_versions(space: SpaceTable, plan: ErasurePlan, tally: _Tally) -> None:
    table = space.table
    ids, docs = pa.array(sorted(plan.row_ids), pa.utf8()), pa.array(sorted(plan.doc_ids), pa.utf8())
    try:
        for version in sorted(int(v["version"]) for v in table.list_versions()):
            table.checkout(version)
            tally.versions += 1
            data = table.search().select(_TEXT_COLUMNS).limit(None).to_arrow()
            hits = int(pc.sum(pc.is_in(data.column("id"), ids)).as_py() or 0)
            hits += int(pc.sum(pc.is_in(data.column("source"), docs)).as_py() or 0)
            text = "\x00".join(s or "" for column in ("text", "metadata", "content_hash")
                               for s in data.column(column).to_pylist()).encode("utf-8")
            if hits or tally.holds(text):
                tally.found["table_versions"] = tally.found.get("table_versions", 0) + 1
    finally:
        table.checkout_latest()


def _other_space(rel: str, space_id: str) -> bool:
    """A file that belongs to another space of the owner (its landing, media, maps, intermediates...)."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] in _SPACE_DIRS:
        return parts[1] != space_id
    if parts[0] == "pipelines" and parts[-1].endswith(".parquet"):
        name = parts[-1][:-len(".parquet")]
        return name != space_id and not name.endswith(f".{space_id}")
    return False


def _artifacts_only_elsewhere(target: ErasureTarget, space_id: str) -> set[str]:
    """Artifact files listed by other spaces' indexes and not by this space's: not this space's."""
    listed: dict[str, set[str]] = {}
    for rel in target.files.list(INDEX_DIR):
        parts = rel.split("/")
        if len(parts) == 3:
            listed.setdefault(parts[2], set()).add(parts[1])
    return {f"{ARTIFACTS_DIR}/{name}" for name, spaces in listed.items() if space_id not in spaces}


def _kept_for_others(target: ErasureTarget, plan: ErasurePlan) -> set[str]:
    """Tenant-wide files that are another space's, not this one's: the source files of conversations
    other spaces have landed, and the archived exports holding only such conversations. A tenant-wide
    erasure claims the conversations it erased back: their files are scanned."""
    others = conversations_elsewhere(target, plan.request.space_id)
    if plan.request.all_spaces:
        others -= plan.conversation_sources
    if not others:
        return set()
    kept = {s for s in others if target.files.exists(s)}
    for rel in target.files.list(EXPORTS_DIR):
        try:
            parsed = parse_export(target.files.read_bytes(rel))
        except (InvalidRequest, FileNotFoundError):
            continue
        if parsed.conversations and all(source_path(c) in others for c in parsed.conversations):
            kept.add(rel)
    return kept
