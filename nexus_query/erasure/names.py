"""The naming rule of erasure: which names find a document, the same in Python, HTTP and the CLI.

A document answers to each of these names (compared after Unicode NFC normalization, case-sensitive):

1. its document id: the ``source`` shown on every hit of it (an API item's ``id``, a dropped file's
   path below ``landing/{space}/files/``, a brick's ``{source_file}#{message_id}#{block_index}``);
2. its path below the folder given to ``nexus ingest`` (``Notes/Résumé draft.md`` for ``nexus ingest
   Documents`` holding ``Notes/``, just ``Résumé draft.md`` for a file named alone), kept as the
   ``source`` in its metadata;
3. a tail of that path: its bare file name (``Résumé draft.md``) or its last folders and file name,
   when exactly one document path of the space ends so;
4. for conversations: the conversation's source file (``conversations/{format}/{id}.json``), or the
   file name of the chat export it came in (every conversation of that export).

A name is 1 to 1024 characters, without control characters or backslashes, and does not start with
``/``. Names are only compared, never used as paths. A name that matches nothing is an error
(``nexus.nothing_to_erase``), listing the closest names the space has.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from nexus_query.cognition.bricks import export_name
from nexus_query.errors import NothingToErase, ValidationFailed

MAX_NAME_CHARS = 1024
NAME_PATTERN = r"^[^\x00-\x1f\x7f\\/][^\x00-\x1f\x7f\\]*$"
NAME_RULE = ("a document id, the source shown on a hit, the file name or relative path given to `nexus ingest`, "
             "a conversation source file or a chat export's file name: 1 to 1024 characters, no control "
             "characters or backslashes, not starting with '/'")
_NAME = re.compile(NAME_PATTERN)
_CLOSEST = 5


def normalize_name(name: object, field_name: str = "names") -> str:
    """A name in its one spelling (NFC), or ``ValidationFailed`` (422) when it breaks the rule."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS or not _NAME.match(name):
        raise ValidationFailed(f"not an erasable name: {NAME_RULE}", field=field_name)
    return unicodedata.normalize("NFC", name)


def name_hash(name: str) -> str:
    """What a receipt keeps of a name: enough to check a name against it, not the name."""
    return "sha256:" + hashlib.sha256(unicodedata.normalize("NFC", name).encode("utf-8")).hexdigest()[:16]


@dataclass
class Catalog:
    """Every name of every document the space has (table rows, landing batches, landed files and
    chat exports): document id -> its names, and conversation source file -> its names."""

    documents: dict[str, set[str]] = field(default_factory=dict)
    conversations: dict[str, set[str]] = field(default_factory=dict)
    paths: dict[str, set[str]] = field(default_factory=dict)  # document id -> its ingest paths (tier 2)

    def add_document(self, doc_id: str, metadata: Mapping | None = None, *, path: str | None = None) -> None:
        nfc = unicodedata.normalize("NFC", doc_id)
        names = self.documents.setdefault(doc_id, set())
        names.add(nfc)
        paths = self.paths.setdefault(doc_id, set())
        given = [path] if path else []
        if isinstance(metadata, Mapping) and isinstance(metadata.get("source"), str):
            given.append(metadata["source"])
        for raw in given:
            relative = unicodedata.normalize("NFC", raw)
            paths.add(relative)
            parts = PurePosixPath(relative).parts
            names.update("/".join(parts[i:]) for i in range(len(parts)))  # the path and its every tail
        if "#" in doc_id and doc_id.startswith("conversations/"):
            self.add_conversation(doc_id.split("#", 1)[0])

    def add_conversation(self, source_file: str, export_name: str | None = None) -> None:
        names = self.conversations.setdefault(source_file, {source_file})
        if export_name:
            names.add(unicodedata.normalize("NFC", export_name))

    def add_rows(self, rows: Iterable[Mapping]) -> None:
        """Table rows or intermediates: ``source`` (the document id) and ``metadata`` (JSON text)."""
        for row in rows:
            metadata = row.get("metadata")
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = None
            self.add_document(row["source"], metadata)

    def known(self) -> list[str]:
        """Every name the space answers to, for the ``closest`` suggestions."""
        found = {n for names in self.documents.values() for n in names}
        return sorted(found | {n for names in self.conversations.values() for n in names})


@dataclass(frozen=True)
class Resolved:
    """What a request's names found: documents, conversations, and the names that found nothing."""

    doc_ids: frozenset[str]
    conversations: frozenset[str]
    unmatched: tuple[str, ...]


def resolve(catalog: Catalog, names: Iterable[str]) -> Resolved:
    """Each name to the documents and conversations it names, by the rule in this module's docstring.
    A bare file name shared by several document paths is refused (422), listing those paths."""
    doc_ids: set[str] = set()
    conversations: set[str] = set()
    unmatched: list[str] = []
    for raw in names:
        name = unicodedata.normalize("NFC", raw)
        exact = {d for d in catalog.documents if unicodedata.normalize("NFC", d) == name}
        by_path = {d for d, paths in catalog.paths.items() if name in paths}
        by_file = {d for d, names_of in catalog.documents.items() if name in names_of}
        as_export = f"{export_name(PurePosixPath(name).name)}.json"  # how an import named the landed copy
        chats = {c for c, names_of in catalog.conversations.items() if name in names_of or as_export in names_of}
        found = exact or by_path
        if not found and by_file:
            paths = sorted({p for d in by_file for p in (catalog.paths.get(d) or {d})})
            if len(paths) > 1:
                raise ValidationFailed(f"the file name matches {len(paths)} documents; name one by its path",
                                       field="names", candidates=paths[:20])
            found = by_file
        doc_ids |= found
        conversations |= chats
        if not found and not chats:
            unmatched.append(name)
    return Resolved(frozenset(doc_ids), frozenset(conversations), tuple(unmatched))


def nothing_to_erase(catalog: Catalog, names: Iterable[str]) -> NothingToErase:
    """The error for a request whose names found nothing: how many were looked for and, per name,
    the closest names the space has (names of the caller's own space)."""
    names = list(names)
    known = catalog.known()
    closest = sorted({c for n in names for c in difflib.get_close_matches(n, known, n=_CLOSEST, cutoff=0.4)})
    return NothingToErase(f"no document of the space answers to the {len(names)} name(s) given "
                          "(erase by doc id, the source on a hit, or the file name or path given at ingest)",
                          looked_for=names[:20], closest=closest[:_CLOSEST * 2])
