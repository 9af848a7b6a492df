"""What an erasure is asked to do, what it found to remove, and what it removed: typed records that
hold ids, hashes and counts, never document text, so they can be stored and shown anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nexus_query.errors import NexusError

Scope = Literal["sources", "doc_ids", "space"]
SCOPES: tuple[Scope, ...] = ("sources", "doc_ids", "space")
# The steps of one erasure, in order. Each is idempotent: a run that died after any of them is
# finished by running the same erasure again.
Step = Literal["plan", "rows", "intermediates", "landing", "blobs", "haze", "artifacts", "verify"]
STEPS: tuple[Step, ...] = ("plan", "rows", "intermediates", "landing", "blobs", "haze", "artifacts", "verify")
ERASURE_TASK_KIND = "erasure"
_SETS = ("doc_ids", "row_ids", "content_hashes", "landed_files", "blob_paths", "conversation_sources", "fragments",
         "found_doc_ids", "shared_kept", "needles", "batches")


class ErasureIncomplete(NexusError):
    """The verification re-read a store and still found something the erasure should have removed."""

    code = "nexus.erasure_incomplete"
    status = 500


@dataclass(frozen=True)
class ErasureRequest:
    """One erasure: of named sources, of document ids, or of a whole space. ``task_id`` names it
    everywhere (task record, plan, receipt, Dagster run key)."""

    task_id: str
    space_id: str
    scope: Scope
    names: tuple[str, ...] = ()  # names by the rule of ``nexus_query.erasure.names``; empty for a whole space
    requested_at: str = ""
    reason: str = "erasure request"
    allow_none: bool = False    # a request whose names match nothing is accepted (and erases nothing)
    all_spaces: bool = False    # tenant-wide: files other spaces still use (chat exports, media) go too

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "names": list(self.names)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErasureRequest:
        return cls(task_id=raw["task_id"], space_id=raw["space_id"], scope=raw["scope"],
                   names=tuple(raw.get("names") or ()), requested_at=raw.get("requested_at", ""),
                   reason=raw.get("reason") or "erasure request", allow_none=bool(raw.get("allow_none")),
                   all_spaces=bool(raw.get("all_spaces")))


@dataclass
class ErasurePlan:
    """Everything the erasure will remove, found before anything is removed and stored first, so a
    re-run after a crash still knows what the already-deleted rows were. Ids and hashes only."""

    request: ErasureRequest
    doc_ids: set[str] = field(default_factory=set)          # documents: the rows' ``source``
    row_ids: set[str] = field(default_factory=set)          # the rows themselves
    content_hashes: set[str] = field(default_factory=set)   # sha256 of each erased row's text
    landed_files: set[str] = field(default_factory=set)     # below the tenant root: landing/{space}/files/...
    blob_paths: set[str] = field(default_factory=set)       # images the erased rows pointed at
    conversation_sources: set[str] = field(default_factory=set)  # conversations/{format}/{id}.json
    fragments: set[int] = field(default_factory=set)        # table fragments that held erased rows
    found_doc_ids: set[str] = field(default_factory=set)    # the documents that had rows when planned
    shared_kept: set[str] = field(default_factory=set)      # tenant-wide files another space still uses
    needles: set[str] = field(default_factory=set)          # fingerprints (hex of distinctive bytes) to scan for
    batches: set[str] = field(default_factory=set)          # landing batches (= tasks) the erasure emptied
    completed: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> counts, summed over attempts
    remap_pending: bool = False                              # HAZE snapshots were dropped: draw the map again

    @property
    def whole_space(self) -> bool:
        return self.request.scope == "space"

    def merge(self, other: ErasurePlan) -> None:
        """Add what a fresh look found (a re-run plans again; what was already removed stays planned)."""
        for name in _SETS:
            getattr(self, name).update(getattr(other, name))

    def record(self, step: str, counts: Mapping[str, int]) -> None:
        previous = self.completed.get(step, {})
        self.completed[step] = {k: previous.get(k, 0) + int(v)
                                for k, v in {**{k: 0 for k in previous}, **counts}.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request.to_dict(),
                **{name: sorted(getattr(self, name)) for name in
                   _SETS},
                "completed": self.completed, "remap_pending": self.remap_pending}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErasurePlan:
        plan = cls(ErasureRequest.from_dict(raw["request"]), completed=dict(raw.get("completed") or {}),
                   remap_pending=bool(raw.get("remap_pending")))
        for name in _SETS:
            getattr(plan, name).update(raw.get(name) or ())
        return plan


@dataclass(frozen=True)
class ErasureReceipt:
    """What was removed from each store (counts only) and whether the verification found nothing left."""

    task_id: str
    space_id: str
    scope: Scope
    name_count: int
    name_hashes: tuple[str, ...]  # ``names.name_hash`` of each name asked for: the names are not kept
    documents: int
    rows_deleted: int
    rows_rewritten: int          # surviving rows moved out of data files that held erased rows
    versions_removed: int        # older table versions deleted (they still held the rows)
    indexes_rebuilt: int         # full-text / vector indexes rebuilt without the erased rows
    intermediate_rows_removed: int
    intermediate_files_changed: int
    landing_items_removed: int
    landing_files_removed: int
    landing_files_rewritten: int
    blobs_removed: int
    exports_rewritten: int
    haze_snapshots_removed: int
    haze_points_removed: int
    haze_reducers_removed: int
    haze_remapped: int
    artifacts_tombstoned: int
    tasks_cancelled: int         # tasks whose batches the erasure removed, ended ``cancelled``
    shared_files_kept: int       # tenant-wide files (chat exports, conversation sources) another space still uses
    scanned_files: int           # the verification scan: files read, their bytes, table versions read
    scanned_bytes: int
    scanned_versions: int
    fingerprints: int            # distinctive byte strings of the erased documents looked for
    found: int                   # places the scan still found one (0, or the erasure is not verified)
    verified: bool
    completed_at: str

    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in asdict(self).items()
                if isinstance(v, (int, bool)) and k not in ("verified", "name_count")}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name_hashes": list(self.name_hashes)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErasureReceipt:
        return cls(**{**raw, "name_hashes": tuple(raw["name_hashes"])})


# The receipt's counters, each reported by one step.
COUNTED = tuple(name for name in ErasureReceipt.__dataclass_fields__
                if name not in ("task_id", "space_id", "scope", "name_count", "name_hashes", "documents", "verified",
                                "completed_at", "scanned_files", "scanned_bytes", "scanned_versions", "fingerprints",
                                "found"))
