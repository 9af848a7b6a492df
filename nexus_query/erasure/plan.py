"""Planning an erasure: turn the request (source names, document ids, a whole space) into the ids,
hashes and paths every store is purged of, and keep that plan (without content) until it is done.

Names a request may use, per scope:

- ``sources``: a file in the space's landing zone (its path below ``landing/{space}/files/``, so a
  dropped file's source name is its file name; a ``.jsonl`` file stands for every item in it, a chat
  export for every conversation in it), a conversation's source file (``conversations/{format}/{id}.json``),
  or a document id;
- ``doc_ids``: document ids (the rows' ``source``: an API item's id, a dropped file's name, a brick's
  ``{source_file}#{message_id}#{block_index}``). A brick stands for its whole conversation: the
  conversation's source file and exports hold every block of it;
- ``space``: everything of the space.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from nexus_query.cognition.bricks import CHAT_EXPORTS_DIR, SOURCES_DIR, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.context import validate_id
from nexus_query.erasure.model import SCOPES, ErasurePlan, ErasureRequest
from nexus_query.erasure.target import ErasureTarget
from nexus_query.errors import InvalidRequest, NotFound
from nexus_query.paths import safe_relative_path
from nexus_query.store.space import SpaceTable

PLANS_DIR = "erasures"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MAX_NAMES = 1000
_ROW_KEYS = ["id", "source", "content_hash", "blob_path", "_rowaddr"]
_FRAGMENT_BITS = 32


def validate_request(request: ErasureRequest) -> ErasureRequest:
    """Refuse what cannot be planned: unknown scopes, names that are not plain relative names."""
    validate_id(request.space_id, "space_id")
    validate_id(request.task_id, "task_id")
    if request.scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {SCOPES}", field="scope")
    if request.scope == "space":
        if request.names:
            raise InvalidRequest("a whole-space erasure takes no names", field="names")
        return request
    if not request.names or len(request.names) > MAX_NAMES:
        raise InvalidRequest(f"name between 1 and {MAX_NAMES} {request.scope}", field=request.scope)
    for name in request.names:
        if not isinstance(name, str):
            raise InvalidRequest(f"{request.scope} must be strings", field=request.scope)
        safe_relative_path(name.split("#", 1)[0])  # ids and names never reach a path unchecked
    return request


def files_prefix(space_id: str) -> str:
    return f"landing/{space_id}/files/"


def conversation_of(doc_id: str) -> str | None:
    """The conversation source file a brick's document id names, if it is one."""
    head = doc_id.split("#", 1)[0]
    return head if "#" in doc_id and head.startswith(f"{SOURCES_DIR}/") else None


def table_rows(space: SpaceTable | None) -> Iterator[dict]:
    """(id, source, content_hash, blob_path) of every row at the table's current version: no text."""
    if space is None or space.count() == 0:
        return
    for batch in space.table.search().select(_ROW_KEYS).limit(None).to_batches(65536):
        yield from batch.to_pylist()


def exports_with(target: ErasureTarget, paths: list[str]) -> Iterator[tuple[str, list[str]]]:
    """For each chat export among ``paths``: its path and the source files of its conversations."""
    for path in paths:
        try:
            parsed = parse_export(target.files.read_bytes(path))
        except (InvalidRequest, FileNotFoundError):
            continue
        yield path, [source_path(c) for c in parsed.conversations]


def plan_erasure(target: ErasureTarget, request: ErasureRequest, space: SpaceTable | None) -> ErasurePlan:
    """What ``request`` removes, looked up in the landing zone and the table (nothing is changed)."""
    request = validate_request(request)
    plan = ErasurePlan(request)
    prefix = files_prefix(request.space_id)
    landed = target.files.list("landing", request.space_id, "files")
    if request.scope == "space":
        plan.landed_files.update(landed)
    else:
        for name in request.names:
            if request.scope == "sources" and f"{prefix}{name}" in landed:
                _plan_landed_file(target, plan, f"{prefix}{name}")
            if name.startswith(f"{SOURCES_DIR}/") and "#" not in name and (
                    request.scope == "sources" or target.files.exists(name)):
                plan.conversation_sources.add(name)
            conversation = conversation_of(name)
            if conversation:
                plan.conversation_sources.add(conversation)
            plan.doc_ids.add(name)
    rows = list(table_rows(space))
    if request.scope == "space":
        plan.doc_ids.update(r["source"] for r in rows)
        plan.conversation_sources.update(c for c in map(conversation_of, plan.doc_ids) if c)
    # A conversation's documents are its bricks, whatever export or request named it.
    conversations = tuple(f"{c}#" for c in plan.conversation_sources)
    for row in rows:
        if row["source"] in plan.doc_ids or (conversations and row["source"].startswith(conversations)):
            plan.doc_ids.add(row["source"])
            plan.found_doc_ids.add(row["source"])
            plan.row_ids.add(row["id"])
            plan.content_hashes.add(row["content_hash"])
            plan.fragments.add(int(row["_rowaddr"]) >> _FRAGMENT_BITS)
            if row["blob_path"]:
                plan.blob_paths.add(row["blob_path"])
    return plan


def _plan_landed_file(target: ErasureTarget, plan: ErasurePlan, path: str) -> None:
    """A landed file and the documents it stands for."""
    plan.landed_files.add(path)
    name = path[len(files_prefix(plan.request.space_id)):]
    if path.endswith(".jsonl"):
        for line in target.files.read_bytes(path).decode("utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                plan.doc_ids.add(item["id"])
    elif name.startswith(f"{CHAT_EXPORTS_DIR}/") and path.endswith(".json"):
        for _, sources in exports_with(target, [path]):
            plan.conversation_sources.update(sources)
    else:
        plan.doc_ids.add(name)
        if path.lower().endswith(IMAGE_SUFFIXES) and target.files.exists(f"{path}.json"):
            plan.landed_files.add(f"{path}.json")


# --- keeping the plan -------------------------------------------------------------------------------

def plan_parts(space_id: str, task_id: str) -> tuple[str, ...]:
    return (PLANS_DIR, space_id, "plans", f"{task_id}.json")


def receipt_parts(space_id: str, task_id: str) -> tuple[str, ...]:
    return (PLANS_DIR, space_id, "receipts", f"{task_id}.json")


def request_parts(space_id: str, task_id: str) -> tuple[str, ...]:
    return (PLANS_DIR, space_id, "requests", f"{task_id}.json")


def save_plan(target: ErasureTarget, plan: ErasurePlan) -> None:
    target.files.write_bytes_atomic(json.dumps(plan.to_dict()).encode(),
                                    *plan_parts(plan.request.space_id, plan.request.task_id))


def load_plan(target: ErasureTarget, request: ErasureRequest) -> ErasurePlan | None:
    parts = plan_parts(request.space_id, request.task_id)
    if not target.files.exists(*parts):
        return None
    return ErasurePlan.from_dict(json.loads(target.files.read_bytes(*parts)))


def drop_plan(target: ErasureTarget, request: ErasureRequest) -> None:
    """The plan holds the erased rows' content hashes: once verified, it goes (the receipt stays)."""
    path = target.files.path(*plan_parts(request.space_id, request.task_id))
    if target.files.fs.exists(path):
        target.files.fs.rm_file(path)


def save_request(target: ErasureTarget, request: ErasureRequest) -> None:
    target.files.write_bytes_atomic(json.dumps(request.to_dict()).encode(),
                                    *request_parts(request.space_id, request.task_id))


def read_request(target: ErasureTarget, space_id: str, task_id: str) -> ErasureRequest:
    parts = request_parts(validate_id(space_id, "space_id"), validate_id(task_id, "task_id"))
    if not target.files.exists(*parts):
        raise NotFound("no such erasure request", task_id=task_id)
    return ErasureRequest.from_dict(json.loads(target.files.read_bytes(*parts)))


def pending_requests(files) -> list[ErasureRequest]:
    """Every waiting request in one owner's blob store area (what the sensor starts runs for)."""
    found = []
    for rel in files.list(PLANS_DIR):
        parts = rel.split("/")
        if len(parts) == 4 and parts[2] == "requests" and parts[3].endswith(".json"):
            found.append(ErasureRequest.from_dict(json.loads(files.read_bytes(rel))))
    return found


def finish_request(target: ErasureTarget, request: ErasureRequest) -> None:
    path = target.files.path(*request_parts(request.space_id, request.task_id))
    if target.files.fs.exists(path):
        target.files.fs.rm_file(path)
