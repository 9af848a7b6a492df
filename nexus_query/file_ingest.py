"""Local files into a space as one task (``nexus ingest PATH...``): text and markdown files become text
items, JSON-lines files one item per line, images items that point at a copy in the tenant's blob store
(with an optional sidecar ``<image file name>.json``: ``{"caption", "alt_text", "metadata"}``), and chat
exports (ChatGPT, Claude or canonical JSON) are landed beside the batch, which names them, so the run that
reads the batch ingests them too. Everything is checked before anything is written."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus_query.cognition.bricks import land_export
from nexus_query.cognition.conversations import parse_export
from nexus_query.context import validate_id
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest
from nexus_query.fence import refuse_if_erasing
from nexus_query.landing import GLOBAL_SPACE_ID, MEDIA_DIR, LandingZone, Task, validate_items

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass
class FileBatch:
    """What a set of paths becomes: API items, chat exports to land beside them, and what was skipped."""

    items: list[dict[str, Any]] = field(default_factory=list)
    exports: list[Path] = field(default_factory=list)
    images: list[tuple[Path, str]] = field(default_factory=list)  # local file, blob path it is copied to
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LandedFiles:
    task: Task
    items: int
    exports: int
    skipped: list[str]
    sources: list[str] = field(default_factory=list)  # each document's name (``nexus erase --source``)


def doc_id_for(path: Path, root: Path) -> str:
    """A stable id per file (the same file ingested again replaces its document): a readable slug of its
    path below ``root`` and a short hash of that path (in NFC: one id however the file system composed its
    accents), within the id rule."""
    relative = _nfc(path.relative_to(root).as_posix() if path != root else path.name)
    slug = re.sub(r"[^a-z0-9]+", "-", relative.lower()).strip("-")[:40] or "file"
    return f"{slug}-{hashlib.sha256(relative.encode()).hexdigest()[:10]}"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _expand(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, the root its id is taken relative to) for every file named or inside a named folder."""
    found = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*"))
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise InvalidRequest(f"no such file or folder: {raw}", field="path")
    return found


def collect(paths: Iterable[str | Path], space_id: str) -> FileBatch:
    """Read and check every file; nothing is written."""
    batch = FileBatch()
    files = _expand(paths)
    names = {p for p, _ in files}
    for path, root in files:
        lower = path.name.lower()
        doc_id = doc_id_for(path, root)
        source = _nfc(path.relative_to(root).as_posix())
        if lower.endswith(TEXT_SUFFIXES):
            text = _read_text(path)
            if text.strip():
                batch.items.append({"type": "text", "id": doc_id, "content": text,
                                    "metadata": {"source": source, "file_name": _nfc(path.name)}})
            else:
                batch.skipped.append(f"{path}: empty")
        elif lower.endswith(".jsonl"):
            for number, line in enumerate(_read_text(path).splitlines(), start=1):
                if line.strip():
                    try:
                        batch.items.append(json.loads(line))
                    except ValueError as exc:
                        raise InvalidRequest(f"{path}:{number}: not JSON ({exc})", field="path") from None
        elif lower.endswith(IMAGE_SUFFIXES):
            sidecar = _sidecar(path)
            blob_path = f"{MEDIA_DIR}/{space_id}/{doc_id}{path.suffix.lower()}"
            batch.images.append((path, blob_path))
            metadata = {**sidecar.metadata, "source": source, "file_name": _nfc(path.name)}
            if sidecar.alt_text:
                metadata["alt_text"] = sidecar.alt_text
            batch.items.append({"type": "image", "id": doc_id, "blob_path": blob_path,
                                **({"content": sidecar.caption} if sidecar.caption else {}),
                                "metadata": metadata})
        elif lower.endswith(".json"):
            if path.with_name(path.name[:-5]) in names and path.name[:-5].lower().endswith(IMAGE_SUFFIXES):
                continue  # an image's sidecar, read with the image
            try:
                parse_export(path.read_bytes())
            except InvalidRequest as exc:
                batch.skipped.append(f"{path}: not a chat export ({exc.message})")
                continue
            batch.exports.append(path)
        else:
            batch.skipped.append(f"{path}: not a file type Nexus ingests")
    return batch


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path}: not UTF-8 text", field="path") from None


@dataclass(frozen=True)
class Sidecar:
    """An image's ``<image>.json``: metadata for its document, its alt text and a caption (the item's
    content). Values are kept as the file gives them (any JSON); an empty one is left out."""

    metadata: dict[str, Any] = field(default_factory=dict)
    alt_text: Any = None
    caption: Any = None


def _sidecar(path: Path) -> Sidecar:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return Sidecar()
    try:
        value = json.loads(sidecar.read_bytes())
    except ValueError as exc:
        raise InvalidRequest(f"{sidecar}: not JSON ({exc})", field="path") from None
    if not isinstance(value, dict) or not isinstance(value.get("metadata", {}), dict):
        raise InvalidRequest(f"{sidecar}: a sidecar is an object with an optional metadata object", field="path")
    return Sidecar(value.get("metadata") or {}, value.get("alt_text"), value.get("caption"))


def land_files(zone: LandingZone, space_id: str, paths: Iterable[str | Path],
               batch_id: str | None = None) -> LandedFiles:
    """Land ``paths`` (files and folders) in ``space_id`` as one task. Items are checked first (images
    once their copies exist, since an image item must name an existing blob), then exports and the
    batch are written, the batch last. ``batch_id``: as ``LandingZone.land_batch``'s."""
    validate_id(space_id, "space_id")
    if space_id == GLOBAL_SPACE_ID:
        raise GlobalSpaceReadOnly("the global space is read-only; only system jobs write it")
    refuse_if_erasing(zone.files, space_id)
    batch = collect(paths, space_id)
    if not batch.items and not batch.exports:
        raise InvalidRequest("nothing to ingest: " + ("; ".join(batch.skipped[:5]) or "no files"), field="path")
    non_image = [item for item in batch.items if item.get("type") != "image"]
    validate_items(zone.files, non_image, max_items=max(len(non_image), 1)) if non_image else None
    for local, blob_path in batch.images:
        zone.files.write_bytes_atomic(local.read_bytes(), blob_path)
    if batch.items:
        validate_items(zone.files, batch.items, max_items=len(batch.items))
    landed = [land_export(zone.files, space_id, path.name, path.read_bytes()).landed for path in batch.exports]
    task = zone.land_batch(space_id, batch.items, max_items=max(len(batch.items), 1), attached_files=landed,
                           batch_id=batch_id)
    sources = [str(item.get("metadata", {}).get("source") or item.get("id")) for item in batch.items]
    sources += [_nfc(path.name) for path in batch.exports]
    return LandedFiles(task, len(batch.items), len(batch.exports), batch.skipped, sources)
