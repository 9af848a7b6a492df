"""What each MCP tool does, as plain functions of the caller's context: the same nexus_query calls the HTTP
API makes (query, landing, cognition, erasure), each answer as text for the model and a typed value for
``structuredContent``. No MCP types here: ``nexus_query.mcp.server`` wraps these."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel

from nexus_query.cognition import ArtifactStore, assemble_topic, render_for_agent
from nexus_query.cognition.artifacts import is_tombstone
from nexus_query.cognition.bricks import BRICK_KIND
from nexus_query.context import RequestContext
from nexus_query.erasure import request_erasure
from nexus_query.erasure.model import Scope
from nexus_query.errors import InvalidRequest, MissingRoute, SpaceNotFound, ValidationFailed
from nexus_query.haze.read import HazeStore
from nexus_query.kpi.fact import EPISODE_TYPES
from nexus_query.landing import estimated_rows, landing_zone, validate_items
from nexus_query.mcp import pipelines
from nexus_query.mcp.models import (
    ArtifactOut,
    FindOut,
    ForgetOut,
    HitOut,
    KpiFactOut,
    KpiStatusOut,
    SpaceOut,
    SpacesOut,
    StoreOut,
)
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore, SpaceTable
from nexus_query.store.filters import matching_rows, parse_filters, sql_prefilter

ARTIFACT_URI = "nexus://artifacts/{artifact_id}"
STATUS_FACT = "status"  # the KPI status fact's metadata ``fact_type`` (the kpi lane's shared interface)
_BRICKS = parse_filters({"kind": BRICK_KIND})
# The ingest item's fields that nexus_store's arguments stand for, so an error names the argument.
ITEM_ARGUMENTS = {"items[0].content": "text", "items[0].id": "id", "items[0].metadata": "metadata"}


@dataclass(frozen=True)
class Answer:
    """A tool's answer: ``text`` for the model to read, ``data`` for ``structuredContent``."""

    text: str
    data: BaseModel


@dataclass(frozen=True)
class Caller:
    """Who is asking (from the API key only) and the registry that said so."""

    ctx: RequestContext
    registry: RoutingRegistry

    @property
    def store(self) -> SpaceStore:
        return SpaceStore(self.registry)


def find(caller: Caller, text: str, space_id: str, *, filters: Mapping[str, Any] | None, top_k: int,
         min_score: float | None, include_global: bool, mode: str | None) -> Answer:
    result = query(caller.ctx, space_id, text, filters=filters, top_k=top_k, include_global=include_global,
                   mode=mode, min_score=min_score, store=caller.store)
    hits = [HitOut(doc_id=h.doc_id, score=h.score, score_details=asdict(h.score_details), source=h.source,
                   space=h.space, type=h.type, content=h.content, metadata=h.metadata) for h in result.hits]
    if not hits:
        text_out = f"No hits in space {space_id!r}" + (f" at min_score {min_score}." if min_score else ".")
    else:
        text_out = "\n\n".join(
            f"[{i}] score {h.score:.2f} · source {h.source} · doc_id {h.doc_id}"
            + (" · global space" if h.space == "global" else "") + f"\n{h.content}"
            for i, h in enumerate(hits, 1))
    return Answer(text_out, FindOut(space_id=space_id, hits=hits))


def store_text(caller: Caller, text: str, space_id: str, *, metadata: Mapping[str, Any] | None,
               doc_id: str | None, wait: bool) -> Answer:
    """Land one text document as an ingest batch (the HTTP ingest path's checks: route, quota, item rules);
    with ``wait``, ingest it now and answer once it is queryable or its task failed, within the bound."""
    from nexus_query.api.ingest_body import check_row_quota

    caller.registry.store_route(caller.ctx)  # a tenant without a vector store: refused before anything lands
    zone = landing_zone(caller.ctx, caller.registry)
    item = {"type": "text", "content": text, "metadata": dict(metadata or {}), **({"id": doc_id} if doc_id else {})}
    try:
        (normalized,) = validate_items(zone.files, [item], max_items=1)
    except InvalidRequest as exc:  # the item rules name items[0].<field>; the tool's argument is named here
        field = str(exc.details.get("field", ""))
        exc.details["field"] = ITEM_ARGUMENTS.get(field, field)
        raise
    check_row_quota(caller.registry, caller.ctx, zone, space_id, lambda: estimated_rows([normalized]))
    if wait:
        task = pipelines.ingest_and_wait(caller.ctx, caller.registry, space_id, normalized)
    else:
        task = zone.land_batch(space_id, [normalized], max_items=1)
    queryable = task.status == "succeeded"
    if queryable:
        said = "it is queryable now"
    elif task.status == "failed":
        said = f"the ingest failed: {task.error}"
    elif wait:
        said = f"it is not queryable yet (task {task.status} when the wait ended); ask again later"
    else:
        said = "the pipeline ingests it (ask nexus_store with wait=true to wait for it)"
    return Answer(f"Stored document {normalized['id']} in space {space_id!r} as task {task.task_id} "
                  f"({task.status}); {said}.",
                  StoreOut(space_id=space_id, doc_id=normalized["id"], task=task.to_dict(), queryable=queryable))


def artifact_answer(artifact: Mapping[str, Any]) -> Answer:
    """An artifact (or its tombstone) rendered for an agent: the seed's consumption rules first."""
    artifact_id = str(artifact["artifact_id"])
    uri = ARTIFACT_URI.format(artifact_id=artifact_id)
    if is_tombstone(artifact):
        data = ArtifactOut(artifact_id=artifact_id, uri=uri, coverage_status=str(artifact["coverage_status"]))
    else:
        payload = artifact["payload"]
        data = ArtifactOut(artifact_id=artifact_id, uri=uri, coverage_status=payload["coverage_status"],
                           query=artifact.get("query"), source_files=list(payload["provenance"]["source_files"]),
                           derived_from=list(artifact.get("derived_from", [])))
    return Answer(render_for_agent(artifact), data)


def assemble(caller: Caller, topic: str, space_id: str, k: int) -> Answer:
    return artifact_answer(assemble_topic(caller.ctx, space_id, topic, k, store=caller.store))


def read_artifact(caller: Caller, artifact_id: str) -> Answer:
    return artifact_answer(ArtifactStore.for_context(caller.ctx, caller.registry).get(artifact_id))


def kpi_status(caller: Caller, space_id: str, metric: str | None) -> Answer:
    """The space's KPI facts that say how things are now: each metric's status fact and every episode
    that has not ended (stored as ``type="kpi"`` rows like every fact)."""
    space = caller.store.open(caller.ctx, space_id)
    rows = space.table.search().where("type = 'kpi'").select(["text", "metadata"]).limit(None).to_arrow().to_pylist()
    status: list[KpiFactOut] = []
    episodes: list[KpiFactOut] = []
    for row in rows:
        meta = json.loads(row["metadata"])
        if metric is not None and meta.get("metric") != metric:
            continue
        fact = KpiFactOut(metric=meta.get("metric"), series=meta.get("series"), fact_type=meta.get("fact_type"),
                          text=row["text"], assessment=meta.get("assessment"), window_start=meta.get("window_start"),
                          window_end=meta.get("window_end"), episode_start=meta.get("episode_start"),
                          numbers=meta.get("numbers") or {})
        if fact.fact_type == STATUS_FACT:
            status.append(fact)
        elif fact.fact_type in EPISODE_TYPES and "episode_start" in meta and meta.get("episode_end") is None:
            episodes.append(fact)
    status.sort(key=lambda f: (f.metric or "", f.series or ""))
    episodes.sort(key=lambda f: (f.metric or "", f.series or "", f.episode_start or ""))
    about = f"metric {metric!r}" if metric else "any metric"
    lines = [f"KPI status in space {space_id!r} ({about}):"]
    lines += [f"- {f.text}" for f in status] or ["- no status fact (the KPI refresh has not written one)"]
    lines += ["Open episodes (not ended):"] + ([f"- {f.text}" for f in episodes] or ["- none"])
    return Answer("\n".join(lines), KpiStatusOut(space_id=space_id, status=status, open_episodes=episodes))


def forget(caller: Caller, space_id: str, *, sources: Sequence[str] | None, doc_ids: Sequence[str] | None,
           reason: str | None, wait: bool) -> Answer:
    """An erasure request (the rules and errors of ``nexus erase``); with ``wait`` it runs now and the
    receipt comes back."""
    if (sources is None) == (doc_ids is None):
        raise ValidationFailed("give exactly one of sources or doc_ids", field="sources" if sources else "doc_ids")
    scope: Scope = "sources" if sources is not None else "doc_ids"
    names = list(sources if sources is not None else doc_ids or [])
    if not wait:
        task = request_erasure(caller.ctx, space_id, scope, names, reason=reason, registry=caller.registry)
        return Answer(f"Erasure accepted as task {task.task_id}; the pipeline runs it.",
                      ForgetOut(space_id=space_id, task_id=task.task_id, status=task.status))
    receipt = pipelines.erase_and_wait(caller.ctx, caller.registry, space_id, scope, names, reason)
    task_id = str(receipt["task_id"])
    counts = ", ".join(f"{k} {v}" for k, v in receipt.items() if isinstance(v, int) and not isinstance(v, bool))
    return Answer(f"Erased from space {space_id!r} (task {task_id}), verified: {counts}.",
                  ForgetOut(space_id=space_id, task_id=task_id, status="succeeded", receipt=receipt))


def spaces(caller: Caller) -> Answer:
    """The caller's spaces and the global one (read with include_global), each with what it holds."""
    store = caller.store
    haze = HazeStore.for_context(caller.ctx, caller.registry)
    found = [_space_summary(store.open(caller.ctx, s), s, "tenant", haze.latest_snapshot_id(s) is not None)
             for s in store.space_ids(caller.ctx)]
    try:
        found.append(_space_summary(store.open_global(caller.ctx.environment), "global", "global", False))
    except (SpaceNotFound, MissingRoute):  # no global space, or no route to one: nothing more to list
        pass
    lines = [f"- {s.space_id}{' (global, read-only: include_global=true)' if s.scope == 'global' else ''}: "
             f"{s.rows} rows; {s.documents} documents, {s.kpi_facts} KPI facts, {s.conversations} conversations"
             f"{', a HAZE map' if s.haze_map else ''}" for s in found]
    return Answer("\n".join(["Spaces this key can read:", *lines]) if found else "This key has no spaces yet.",
                  SpacesOut(spaces=found))


def _space_summary(space: SpaceTable, space_id: str, scope: Literal["tenant", "global"], haze_map: bool
                   ) -> SpaceOut:
    table = space.table
    search = table.search()
    superset = sql_prefilter(_BRICKS)
    if superset is not None:
        search = search.where(superset)
    bricks = matching_rows(search.select(["source", "metadata"]).limit(None).to_arrow().to_pylist(), _BRICKS)
    brick_sources = {r["source"] for r in bricks}
    docs = {s for s in table.search().where("type != 'kpi'").select(["source"]).limit(None).to_arrow()
            .column("source").to_pylist() if s not in brick_sources}
    return SpaceOut(space_id=space_id, scope=scope, read_only=scope == "global", rows=space.count(),
                    documents=len(docs), kpi_facts=table.count_rows("type = 'kpi'"),
                    conversations=len({(m["source_file"], m["conversation_id"])
                                       for m in (json.loads(r["metadata"]) for r in bricks)}),
                    haze_map=haze_map)
