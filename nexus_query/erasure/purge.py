"""Purging the files of one store at a time (the Lance table: ``purge_table``). Every function here is
idempotent: it removes what the plan names and is still there, and reports counts (never content), so a
re-run after a crash finishes the job and a second run reports zeros.

Why each store needs more than a delete:

- Lance: see ``purge_table``.
- Parquet intermediates, landing batches, chat exports: rewritten without the erased records.
- HAZE snapshots and reducers hold the erased points (and their text previews): they are removed,
  and the pipeline draws the map again from what is left.
- Cognition artifacts quoting an erased conversation become tombstones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_query.cognition.artifacts import ARTIFACTS_DIR, ArtifactStore, artifact_hex
from nexus_query.cognition.bricks import EXPORTS_DIR, SOURCES_DIR, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.erasure.model import ErasurePlan
from nexus_query.erasure.plan import files_prefix
from nexus_query.erasure.target import ErasureTarget
from nexus_query.errors import InvalidRequest
from nexus_query.landing import MEDIA_DIR, LandingZone, now_iso
from nexus_query.paths import TenantFiles
from nexus_query.store.filters import sql_string
from nexus_query.store.space import SpaceTable

INTERMEDIATES_DIR = "pipelines"
_IN_LIST = 500


# --- Parquet intermediates ------------------------------------------------------------------------

def erased_mask(table: pa.Table, plan: ErasurePlan) -> pa.ChunkedArray | None:
    """Rows of an intermediate (raw_docs: ``doc_id``; chunks, embeddings: ``source`` and ``id``) that
    belong to erased documents; None when the file has none of those columns."""
    masks = []
    if "doc_id" in table.column_names:
        masks.append(pc.is_in(table.column("doc_id"), pa.array(sorted(plan.doc_ids), pa.utf8())))
    if "source" in table.column_names:
        masks.append(pc.is_in(table.column("source"), pa.array(sorted(plan.doc_ids), pa.utf8())))
    if "id" in table.column_names and "source" in table.column_names:
        masks.append(pc.is_in(table.column("id"), pa.array(sorted(plan.row_ids), pa.utf8())))
    if not masks:
        return None
    mask = masks[0]
    for other in masks[1:]:
        mask = pc.or_(mask, other)
    return pc.fill_null(mask, False)


def intermediate_files(files: TenantFiles, space_id: str) -> list[str]:
    """Every Parquet intermediate of the space, and temporaries a crashed writer left beside them."""
    base = files.path(INTERMEDIATES_DIR)
    if not files.fs.exists(base):
        return []
    root = files.root.rstrip("/") + "/"
    found = []
    for full in files.fs.find(base):
        name = full.rsplit("/", 1)[-1]
        if name == f"{space_id}.parquet" or (name.startswith(".") and name.endswith(f".{space_id}.parquet")):
            found.append(full[len(root):] if full.startswith(root) else full)
    return sorted(found)


def purge_intermediates(target: ErasureTarget, plan: ErasurePlan) -> dict[str, int]:
    counts = {"intermediate_rows_removed": 0, "intermediate_files_changed": 0}
    files = target.files
    for rel in intermediate_files(files, plan.request.space_id):
        full = files.root.rstrip("/") + "/" + rel
        hidden = rel.rsplit("/", 1)[-1].startswith(".")
        if plan.whole_space or hidden:
            counts["intermediate_rows_removed"] += _parquet_rows(files, full)
            files.fs.rm_file(full)
            counts["intermediate_files_changed"] += 1
            continue
        with files.fs.open(full, "rb") as fh:
            table = pq.read_table(fh)
        mask = erased_mask(table, plan)
        removed = int(pc.sum(mask).as_py() or 0) if mask is not None else 0
        if not removed:
            continue
        kept = table.filter(pc.invert(mask))
        sink = pa.BufferOutputStream()
        pq.write_table(kept, sink)  # the schema (and its metadata, e.g. the chunker) is kept
        files.write_bytes_atomic(sink.getvalue().to_pybytes(), rel)
        counts["intermediate_rows_removed"] += removed
        counts["intermediate_files_changed"] += 1
    return counts


def _parquet_rows(files: TenantFiles, full: str) -> int:
    try:
        with files.fs.open(full, "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    except Exception:  # a half-written temporary: no footer
        return 0


# --- the landing zone -----------------------------------------------------------------------------

def purge_landing(target: ErasureTarget, plan: ErasurePlan) -> dict[str, int]:
    """Batches lose the erased items (an emptied batch goes), landed files named by the plan go,
    JSON-lines files and chat exports are rewritten without the erased documents and conversations."""
    counts = {"landing_items_removed": 0, "landing_files_removed": 0, "landing_files_rewritten": 0}
    files, space_id = target.files, plan.request.space_id
    zone = LandingZone(files)
    if plan.whole_space:
        plan.batches.update(zone.batch_ids(space_id))
        base = files.path("landing", space_id)
        if files.fs.exists(base):
            found = [p for p in files.fs.find(base)]
            counts["landing_files_removed"] = len(found)
            files.fs.rm(base, recursive=True)
        return counts
    for batch_id in zone.batch_ids(space_id):
        body = zone.read_batch(space_id, batch_id)
        kept = [item for item in body["items"] if item.get("id") not in plan.doc_ids]
        removed = len(body["items"]) - len(kept)
        if not removed:
            continue
        counts["landing_items_removed"] += removed
        parts = zone.batch_parts(space_id, batch_id)
        if kept:
            files.write_bytes_atomic(json.dumps({**body, "items": kept}).encode(), *parts)
            counts["landing_files_rewritten"] += 1
        else:
            files.fs.rm_file(files.path(*parts))
            counts["landing_files_removed"] += 1
            plan.batches.add(batch_id)  # its task ends cancelled: nothing of it is left to ingest
    prefix = files_prefix(space_id)
    for path in files.list("landing", space_id, "files"):
        if path in plan.landed_files:
            files.fs.rm_file(files.path(path))
            counts["landing_files_removed"] += 1
        elif path.endswith(".jsonl"):
            _rewrite_jsonl(files, path, plan, counts)
        elif path.startswith(f"{prefix}conversations/") and path.endswith(".json"):
            _rewrite_export(files, path, plan.conversation_sources, counts, "landing_files_removed",
                            "landing_files_rewritten")
    return counts


def _rewrite_jsonl(files: TenantFiles, path: str, plan: ErasurePlan, counts: dict[str, int]) -> None:
    lines = files.read_bytes(path).decode("utf-8", errors="replace").splitlines()
    kept = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if isinstance(item, dict) and item.get("id") in plan.doc_ids:
            counts["landing_items_removed"] += 1
        else:
            kept.append(line)
    if len(kept) == len(lines):
        return
    if any(line.strip() for line in kept):
        files.write_bytes_atomic(("\n".join(kept) + "\n").encode(), path)
        counts["landing_files_rewritten"] += 1
    else:
        files.fs.rm_file(files.path(path))
        counts["landing_files_removed"] += 1


def _rewrite_export(files: TenantFiles, path: str, conversations: set[str], counts: dict[str, int],
                    removed_key: str, rewritten_key: str) -> None:
    """A chat export without the erased conversations, in its own format (the other conversations of
    the file are kept as they were); a file left with none goes."""
    if not conversations:
        return
    data = files.read_bytes(path)
    try:
        parsed = parse_export(data)
    except InvalidRequest:
        return
    erased = [source_path(c) in conversations for c in parsed.conversations]
    if not any(erased):
        return
    if all(erased):
        files.fs.rm_file(files.path(path))
        counts[removed_key] += 1
        return
    tree: Any = json.loads(data)
    items = tree["conversations"] if isinstance(tree, dict) else tree
    kept = [item for item, gone in zip(items, erased, strict=False) if not gone]
    tree = {**tree, "conversations": kept} if isinstance(tree, dict) else kept
    files.write_bytes_atomic(json.dumps(tree, ensure_ascii=False).encode("utf-8"), path)
    counts[rewritten_key] += 1


# --- blobs: images, conversation sources, archived exports ----------------------------------------

BLOB_AREAS = (f"{MEDIA_DIR}/", f"{SOURCES_DIR}/")  # the only files an erasure deletes as blobs


def purge_blobs(target: ErasureTarget, plan: ErasurePlan, space: SpaceTable | None) -> dict[str, int]:
    """Images only erased documents show and the erased conversations' source files go; archived
    exports are rewritten without those conversations; a whole space's media folder goes. Files another
    space still uses stay (``shared_kept``), an image outside the space's own media folder stays unless
    the erasure is tenant-wide, and nothing outside the media and conversation areas is ever deleted as
    a blob."""
    counts = {"blobs_removed": 0, "exports_rewritten": 0, "shared_files_kept": 0}
    files, space_id = target.files, plan.request.space_id
    still_used = _blobs_in_use(space, plan.blob_paths)
    erased_conversations = plan.conversation_sources - plan.shared_kept
    own_media = f"{MEDIA_DIR}/{space_id}/"
    for path in sorted(plan.blob_paths | erased_conversations):
        if path in still_used:
            continue  # another document of the space still shows this image
        try:
            relative = files.relative(path)
        except Exception:  # noqa: BLE001 - a reference outside the tenant's store is not ours to delete
            continue
        if not relative.startswith(BLOB_AREAS) or not files.exists(relative):
            continue
        if relative.startswith(f"{MEDIA_DIR}/") and not relative.startswith(own_media) \
                and not plan.request.all_spaces:
            counts["shared_files_kept"] += 1  # a tenant-wide image: another space may show it
            continue
        files.fs.rm_file(files.path(relative))
        counts["blobs_removed"] += 1
    if plan.whole_space and files.exists(MEDIA_DIR, space_id):
        counts["blobs_removed"] += len(files.list(MEDIA_DIR, space_id))
        files.fs.rm(files.path(MEDIA_DIR, space_id), recursive=True)
    counts["shared_files_kept"] += sum(files.exists(p) for p in plan.shared_kept)
    for path in files.list(EXPORTS_DIR):
        _rewrite_export(files, path, erased_conversations, counts, "blobs_removed", "exports_rewritten")
    return counts


def _blobs_in_use(space: SpaceTable | None, paths: Iterable[str]) -> set[str]:
    paths = sorted(set(paths))
    if space is None or not paths or space.count() == 0:
        return set()
    used: set[str] = set()
    for i in range(0, len(paths), _IN_LIST):
        in_list = ", ".join(sql_string(p) for p in paths[i:i + _IN_LIST])
        found = space.table.search().where(f"blob_path IN ({in_list})").select(["blob_path"]).limit(None).to_arrow()
        used.update(found.column("blob_path").to_pylist())
    return used


# --- HAZE -----------------------------------------------------------------------------------------

def erased_points_in(files: TenantFiles, rel: str, plan: ErasurePlan) -> int:
    """How many erased points (by id, document or content hash) a HAZE Parquet file holds."""
    with files.fs.open(files.path(rel), "rb") as fh:
        table = pq.read_table(fh)
    mask = None
    for column, values in (("id", plan.row_ids), ("source", plan.doc_ids), ("content_hash", plan.content_hashes)):
        if column in table.column_names and values:
            hit = pc.is_in(table.column(column), pa.array(sorted(values), pa.utf8()))
            mask = hit if mask is None else pc.or_(mask, hit)
    return int(pc.sum(pc.fill_null(mask, False)).as_py() or 0) if mask is not None else 0


def purge_haze(target: ErasureTarget, plan: ErasurePlan) -> dict[str, int]:
    """Remove every snapshot and reducer of the space that holds an erased point, and move the
    ``latest`` pointer to the newest snapshot left (or remove it). The map is drawn again afterwards
    (``remap_pending``), by the pipeline, which owns the projection code."""
    counts = {"haze_snapshots_removed": 0, "haze_points_removed": 0, "haze_reducers_removed": 0}
    files, space_id = target.projections, plan.request.space_id
    base = ("haze", space_id)
    if not files.exists(*base):
        return counts
    if plan.whole_space:
        for rel in files.list(*base, "snapshots"):
            if rel.endswith("/points.parquet"):
                counts["haze_snapshots_removed"] += 1
                counts["haze_points_removed"] += _parquet_rows(files, files.path(rel))
        counts["haze_reducers_removed"] = len({r.split("/")[3] for r in files.list(*base, "reducers")})
        files.fs.rm(files.path(*base), recursive=True)
        return counts
    for folder, key in (("snapshots", "haze_snapshots_removed"), ("reducers", "haze_reducers_removed")):
        by_id: dict[str, list[str]] = {}
        for rel in files.list(*base, folder):
            by_id.setdefault(rel.split("/")[3], []).append(rel)
        for item_id, rels in sorted(by_id.items()):
            held = sum(erased_points_in(files, rel, plan) for rel in rels if rel.endswith(".parquet"))
            if held:
                files.fs.rm(files.path(*base, folder, item_id), recursive=True)
                counts[key] += 1
                if folder == "snapshots":
                    counts["haze_points_removed"] += held
    if counts["haze_snapshots_removed"]:
        _repoint_latest(files, space_id)
    return counts


def _repoint_latest(files: TenantFiles, space_id: str) -> None:
    left = sorted({rel.split("/")[3] for rel in files.list("haze", space_id, "snapshots")
                   if rel.endswith("/snapshot.json")})
    if left:
        files.write_bytes_atomic(json.dumps({"snapshot_id": left[-1]}).encode(), "haze", space_id, "latest.json")
    elif files.exists("haze", space_id, "latest.json"):
        files.fs.rm_file(files.path("haze", space_id, "latest.json"))


# --- cognition artifacts --------------------------------------------------------------------------

def tombstone_artifacts(target: ErasureTarget, plan: ErasurePlan) -> dict[str, int]:
    """Every artifact that quotes an erased conversation or cites an erased brick becomes a tombstone
    (for a whole space: every artifact of the space)."""
    store = ArtifactStore(target.files)
    tombstoned = 0
    for artifact_id in store.artifact_ids():
        artifact = stored_artifact(store, artifact_id)
        if artifact is None or artifact.get("coverage_status") == "ERASED" or not erases_artifact(store, artifact_id,
                                                                                                  artifact, plan):
            continue
        store.tombstone(artifact_id, reason=plan.request.reason, erased_at=now_iso())
        tombstoned += 1
    return {"artifacts_tombstoned": tombstoned}


def erases_artifact(store: ArtifactStore, artifact_id: str, artifact: dict[str, Any], plan: ErasurePlan) -> bool:
    """The artifact is the erased space's (listed by it and by no other space, unless the erasure is
    tenant-wide) and quotes an erased conversation or cites an erased brick (or the space goes whole).
    Another space's artifact is never touched."""
    spaces = set(store.spaces_of(artifact_id))
    space_id = plan.request.space_id
    if not plan.request.all_spaces and (space_id not in spaces or spaces - {space_id}):
        return False
    payload = artifact.get("payload") or {}
    provenance = payload.get("provenance") or {}
    quoted = set(provenance.get("source_files", ())) | {e.get("source_file") for e in payload.get("raw_excerpts", ())}
    cited = set(provenance.get("brick_ids", ())) | set(artifact.get("derived_from", ()))
    return plan.whole_space or bool(quoted & plan.conversation_sources or cited & plan.row_ids)


def stored_artifact(store: ArtifactStore, artifact_id: str) -> dict[str, Any] | None:
    """The artifact as stored, without the hash check: one altered after it was written may still quote
    erased content, and must not stop an erasure. None when it is not JSON."""
    try:
        return json.loads(store.files.read_bytes(ARTIFACTS_DIR, f"{artifact_hex(artifact_id)}.json"))
    except (ValueError, FileNotFoundError):
        return None
