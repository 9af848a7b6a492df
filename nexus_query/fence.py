"""The fence a space erasure puts up: while ``erasures/{space}/erasing.json`` exists in the owner's blob
store area, the space is ``erasing`` and ingest, import, retry and erase to it answer 409
``nexus.space_erasing``. ``DELETE /nexus/spaces/{id}`` writes it; the erasure run takes it down when it
ends. A writer checks before it writes and again after (and takes its own write back when the fence went
up meanwhile), so every batch either was accepted before the fence, and is erased with the space, or is
refused."""

from __future__ import annotations

import json

from nexus_query.errors import SpaceErasing
from nexus_query.paths import TenantFiles


def fence_parts(space_id: str) -> tuple[str, ...]:
    return ("erasures", space_id, "erasing.json")


def erasing(files: TenantFiles, space_id: str) -> str | None:
    """The id of the erasure fencing ``space_id``, or None."""
    try:
        return json.loads(files.read_bytes(*fence_parts(space_id))).get("erasure_id") or "unknown"
    except FileNotFoundError:
        return None


def refuse_if_erasing(files: TenantFiles, space_id: str) -> None:
    erasure_id = erasing(files, space_id)
    if erasure_id:
        raise SpaceErasing("the space is being erased; try again when the erasure has ended",
                           space_id=space_id, erasure_id=erasure_id)


def put_up(files: TenantFiles, space_id: str, erasure_id: str) -> None:
    files.write_bytes_atomic(json.dumps({"erasure_id": erasure_id}).encode(), *fence_parts(space_id))


def take_down(files: TenantFiles, space_id: str, erasure_id: str) -> None:
    """Remove the fence, if it is still this erasure's."""
    if erasing(files, space_id) == erasure_id:
        files.fs.rm_file(files.path(*fence_parts(space_id)))
