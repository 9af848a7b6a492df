"""The verification step: read every store again, through its own reader, and count what the erasure
should have removed and is still there. Any count above zero fails the erasure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import fsspec
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_query.cognition.artifacts import ArtifactStore
from nexus_query.cognition.bricks import EXPORTS_DIR, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.erasure.model import ErasureIncomplete, ErasurePlan
from nexus_query.erasure.plan import files_prefix
from nexus_query.erasure.purge import (
    erased_mask,
    erased_points_in,
    erases_artifact,
    intermediate_files,
    stored_artifact,
)
from nexus_query.erasure.purge_table import versions_holding
from nexus_query.erasure.target import ErasureTarget
from nexus_query.errors import InvalidRequest
from nexus_query.landing import LandingZone
from nexus_query.paths import TenantFiles


@dataclass(frozen=True)
class Verification:
    """What each store still holds of the erasure (all zero when it is complete)."""

    remaining: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(self.remaining.values())


def verify_erased(target: ErasureTarget, plan: ErasurePlan, *, needles: Sequence[bytes] = ()) -> Verification:
    """Re-read the table (every stored version), the intermediates, the landing zone, the blobs, the
    HAZE files and the artifacts for the erased ids. ``needles`` (e.g. a canary's bytes) are also looked
    for in the raw bytes of every file of the owner's areas and the table's folder; callers pass them
    from memory, never through a run's config, where they would be logged."""
    remaining: dict[str, int] = {}
    files, space_id = target.files, plan.request.space_id
    space = target.open_table()
    if plan.whole_space:
        remaining["table"] = int(space is not None)
    elif space is not None:
        remaining["table_versions"] = len(versions_holding(space, plan))
    parquet_left = 0
    for rel in intermediate_files(files, space_id):
        if plan.whole_space:
            parquet_left += 1
            continue
        with files.fs.open(files.path(rel), "rb") as fh:
            table = pq.read_table(fh)
        mask = erased_mask(table, plan)
        parquet_left += int(pc.sum(mask).as_py() or 0) if mask is not None else 0
    remaining["intermediate_rows"] = parquet_left
    zone = LandingZone(files)
    landing_left = 0
    if plan.whole_space:
        landing_left = len(files.list("landing", space_id))
    else:
        for batch_id in zone.batch_ids(space_id):
            landing_left += sum(item.get("id") in plan.doc_ids for item in zone.read_batch(space_id, batch_id)["items"])
        for path in files.list("landing", space_id, "files"):
            if path in plan.landed_files:
                landing_left += 1
            elif path.endswith(".jsonl"):
                for line in files.read_bytes(path).decode("utf-8", errors="replace").splitlines():
                    try:
                        landing_left += json.loads(line).get("id") in plan.doc_ids
                    except (ValueError, AttributeError):
                        continue
            elif path.startswith(f"{files_prefix(space_id)}conversations/"):
                landing_left += _conversations_in(files, path, plan.conversation_sources)
    remaining["landing"] = landing_left
    erased_conversations = plan.conversation_sources - plan.shared_kept
    blobs_left = sum(files.exists(files.relative(p)) for p in erased_conversations)
    blobs_left += sum(_conversations_in(files, p, erased_conversations) for p in files.list(EXPORTS_DIR))
    remaining["blobs"] = blobs_left
    haze_left = 0
    if plan.whole_space:
        haze_left = len(target.projections.list("haze", space_id))
    elif target.projections.exists("haze", space_id):
        haze_left = sum(erased_points_in(target.projections, rel, plan)
                        for rel in target.projections.list("haze", space_id) if rel.endswith(".parquet"))
    remaining["haze_points"] = haze_left
    store = ArtifactStore(files)
    artifacts_left = 0
    for artifact_id in store.artifact_ids():
        artifact = stored_artifact(store, artifact_id) or {}
        artifacts_left += artifact.get("coverage_status") != "ERASED" and erases_artifact(store, artifact_id,
                                                                                          artifact, plan)
    remaining["artifacts"] = artifacts_left
    if needles:
        remaining["needle_files"] = len(files_containing([files, target.projections], target, needles))
    return Verification(remaining)


def _conversations_in(files: TenantFiles, path: str, conversations: set[str]) -> int:
    if not conversations:
        return 0
    try:
        parsed = parse_export(files.read_bytes(path))
    except (InvalidRequest, FileNotFoundError):
        return 0
    return sum(source_path(c) in conversations for c in parsed.conversations)


def files_containing(areas: Sequence[TenantFiles], target: ErasureTarget, needles: Sequence[bytes]) -> list[str]:
    """Every file (hidden ones too) in ``areas`` and under the table's folder whose raw bytes contain
    one of ``needles``."""
    found = []
    roots = [(area.fs, area.root) for area in areas]
    if "://" not in target.location.dataset_uri:  # a table on an object store: scanned by listing its bucket
        roots.append((fsspec.filesystem("file"), target.location.dataset_uri))
    for fs, root in roots:
        if not fs.exists(root):
            continue
        for path in fs.find(root):
            data = fs.cat_file(path)
            if any(n in data for n in needles):
                found.append(path)
    return found


def require_erased(verification: Verification) -> None:
    if not verification.passed:
        left = {k: v for k, v in verification.remaining.items() if v}
        raise ErasureIncomplete(f"erasure incomplete: still found {left}", remaining=left)
