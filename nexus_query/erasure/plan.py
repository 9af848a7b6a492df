"""Planning an erasure: turn the request (names, a whole space) into the ids, hashes and paths every
store is purged of, and keep that plan (without content) until it is done.

Names follow one rule (``nexus_query.erasure.names``): a document id (the ``source`` on a hit), the file
name or relative path given to ``nexus ingest``, a landed file's path below ``landing/{space}/files/``
(a ``.jsonl`` file stands for every item in it, a chat export for every conversation in it), a
conversation's source file or the file name of the chat export it came in. A brick stands for its whole
conversation: the conversation's source file and exports hold every block of it. ``doc_ids`` and
``sources`` follow the same rule; ``space`` is everything of the space.

Scope: a tenant-wide file (a conversation's source file, an archived export) that another space still
uses is kept (``shared_kept``) unless the request is tenant-wide (``all_spaces``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from nexus_query.cognition.bricks import CHAT_EXPORTS_DIR, SOURCES_DIR, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.context import validate_id
from nexus_query.erasure.model import SCOPES, ErasurePlan, ErasureRequest
from nexus_query.erasure.names import Catalog, normalize_name, nothing_to_erase, resolve
from nexus_query.erasure.target import ErasureTarget
from nexus_query.errors import InvalidRequest, NotFound, ValidationFailed
from nexus_query.landing import LandingZone
from nexus_query.store.space import SpaceTable

PLANS_DIR = "erasures"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MAX_NAMES = 1000
_ROW_KEYS = ["id", "source", "content_hash", "blob_path", "metadata", "_rowaddr"]
_FRAGMENT_BITS = 32


def validate_request(request: ErasureRequest) -> ErasureRequest:
    """Refuse what cannot be planned: unknown scopes, names outside the rule (422)."""
    validate_id(request.space_id, "space_id")
    validate_id(request.task_id, "task_id")
    if request.scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {SCOPES}", field="scope")
    if request.scope == "space":
        if request.names:
            raise InvalidRequest("a whole-space erasure takes no names", field="names")
        return request
    if not request.names or len(request.names) > MAX_NAMES:
        raise ValidationFailed(f"name between 1 and {MAX_NAMES} {request.scope}", field=request.scope)
    names = tuple(dict.fromkeys(normalize_name(n, request.scope) for n in request.names))
    if names == request.names:
        return request
    return ErasureRequest(**{**request.to_dict(), "names": names})


def files_prefix(space_id: str) -> str:
    return f"landing/{space_id}/files/"


def conversation_of(doc_id: str) -> str | None:
    """The conversation source file a brick's document id names, if it is one."""
    head = doc_id.split("#", 1)[0]
    return head if "#" in doc_id and head.startswith(f"{SOURCES_DIR}/") else None


def readable(space: SpaceTable | None) -> bool:
    """The table has the columns Nexus writes: a table Nexus did not write holds no document a name can
    find (a whole-space erasure still drops it)."""
    return space is not None and {"id", "source", "text", "content_hash"} <= set(space.table.schema.names)


def table_rows(space: SpaceTable | None) -> Iterator[dict]:
    """(id, source, content_hash, blob_path, metadata) of every row at the table's current version: no text."""
    if space is None or not readable(space) or space.count() == 0:
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


def landed_export_name(path: str) -> str:
    """The file name a landed chat export had when it was imported (``{order}-task-{id}-{hash}-{name}``)."""
    name = path.rsplit("/", 1)[-1]
    parts = name.split("-", 4)
    return parts[4] if len(parts) == 5 and parts[1] == "task" else name


def space_catalog(target: ErasureTarget, space_id: str, rows: list[dict], landed: list[str]) -> Catalog:
    """Every name the space's documents answer to: its rows, landing batches, landed files and exports."""
    catalog = Catalog()
    catalog.add_rows(rows)
    zone = LandingZone(target.files)
    for batch_id in zone.batch_ids(space_id):
        try:
            items = zone.read_batch(space_id, batch_id)["items"]
        except (FileNotFoundError, ValueError):
            continue
        for item in items:
            catalog.add_document(item["id"], item.get("metadata"))
    prefix = files_prefix(space_id)
    chats = f"{prefix}{CHAT_EXPORTS_DIR}/"
    for path in landed:
        if path.startswith(chats) and path.endswith(".json"):
            for _, sources in exports_with(target, [path]):
                for source in sources:
                    catalog.add_conversation(source, landed_export_name(path))
                    catalog.add_conversation(source, path[len(prefix):])
        elif not path.endswith((".json", ".jsonl")):
            catalog.add_document(path[len(prefix):], path=path[len(prefix):])
    return catalog


def plan_erasure(target: ErasureTarget, request: ErasureRequest, space: SpaceTable | None, *,
                 require_match: bool = False) -> ErasurePlan:
    """What ``request`` removes, looked up in the landing zone and the table (nothing is changed).
    ``require_match``: a request whose names match nothing raises ``nexus.nothing_to_erase`` (unless it
    allows none)."""
    request = validate_request(request)
    plan = ErasurePlan(request)
    prefix = files_prefix(request.space_id)
    landed = target.files.list("landing", request.space_id, "files")
    rows = list(table_rows(space))
    if request.scope == "space":
        plan.landed_files.update(landed)
        plan.doc_ids.update(r["source"] for r in rows)
        for path in landed:  # conversations landed but not ingested yet are the space's too
            if path.startswith(f"{prefix}{CHAT_EXPORTS_DIR}/") and path.endswith(".json"):
                _plan_landed_file(target, plan, path)
        plan.conversation_sources.update(c for c in map(conversation_of, plan.doc_ids) if c)
    else:
        catalog = space_catalog(target, request.space_id, rows, landed)
        resolved = resolve(catalog, request.names)
        unmatched = set(resolved.unmatched)
        for name in request.names:
            if f"{prefix}{name}" in landed:
                _plan_landed_file(target, plan, f"{prefix}{name}")
                unmatched.discard(name)
        for doc_id in resolved.doc_ids:
            plan.doc_ids.add(doc_id)
            if f"{prefix}{doc_id}" in landed:
                _plan_landed_file(target, plan, f"{prefix}{doc_id}")
        plan.conversation_sources |= resolved.conversations
        plan.conversation_sources.update(c for c in map(conversation_of, plan.doc_ids) if c)
        if require_match and not request.allow_none and unmatched == set(request.names):
            raise nothing_to_erase(catalog, request.names)
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
    if not request.all_spaces:
        plan.shared_kept.update(used_elsewhere(target, request.space_id, plan.conversation_sources))
    return plan


def conversations_elsewhere(target: ErasureTarget, space_id: str) -> set[str]:
    """Every conversation another space of the owner has landed (in a chat export of its landing zone)."""
    used: set[str] = set()
    for path in target.files.list("landing"):
        parts = path.split("/")
        if len(parts) >= 5 and parts[1] != space_id and parts[2:4] == ["files", CHAT_EXPORTS_DIR]:
            for _, sources in exports_with(target, [path]):
                used.update(sources)
    return used


def used_elsewhere(target: ErasureTarget, space_id: str, conversations: set[str]) -> set[str]:
    """The conversations among ``conversations`` that another space of the owner still has landed."""
    return conversations & conversations_elsewhere(target, space_id) if conversations else set()


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
