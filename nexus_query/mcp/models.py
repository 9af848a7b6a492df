"""The structured output of each MCP tool: the JSON schema an agent reads in ``tools/list`` (outputSchema)
and the shape of ``structuredContent`` beside the text."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class HitOut(BaseModel):
    doc_id: str = Field(description="the row's id (a chunk of a document)")
    score: float = Field(description="relevance in [0, 1], one meaning in every mode and space")
    score_details: dict[str, Any] = Field(description="the evidence behind the score (vector, text, ranks)")
    source: str = Field(description="the document the row belongs to: what nexus_forget(sources=...) takes")
    space: Literal["tenant", "global"] = Field(description="tenant: the caller's space; global: the shared one")
    type: str = Field(description="text, image or kpi")
    content: str
    metadata: dict[str, Any]


class FindOut(BaseModel):
    space_id: str
    hits: list[HitOut]


class StoreOut(BaseModel):
    space_id: str
    doc_id: str = Field(description="the stored document's id: what nexus_forget(doc_ids=...) takes")
    task: dict[str, Any] = Field(description="the ingest task: task_id, status (queued, running, succeeded, "
                                             "failed), counts, error")
    queryable: bool = Field(description="true once the document is findable (the task succeeded)")


class ArtifactOut(BaseModel):
    artifact_id: str
    uri: str = Field(description="the artifact as an MCP resource")
    coverage_status: str = Field(description="ASSEMBLED, NO_RECALL_MATCHES, SOURCES_UNAVAILABLE or ERASED")
    query: str | None = None
    source_files: list[str] = Field(default_factory=list)
    derived_from: list[str] = Field(default_factory=list, description="the brick ids the artifact cites")


class KpiFactOut(BaseModel):
    metric: str | None
    series: str | None
    fact_type: str | None
    text: str
    assessment: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    episode_start: str | None = None
    numbers: dict[str, Any] = Field(default_factory=dict)


class KpiStatusOut(BaseModel):
    space_id: str
    status: list[KpiFactOut] = Field(description="the current status fact of each metric")
    open_episodes: list[KpiFactOut] = Field(description="anomalies that have not ended")


class ForgetOut(BaseModel):
    space_id: str
    task_id: str
    status: str = Field(description="the erasure task's state: succeeded once the receipt is written")
    receipt: dict[str, Any] | None = Field(default=None, description="what was removed, and the verification's verdict")


class SpaceOut(BaseModel):
    space_id: str
    scope: Literal["tenant", "global"]
    read_only: bool
    rows: int
    documents: int = Field(description="distinct documents (sources) of text and image rows")
    kpi_facts: int
    conversations: int = Field(description="conversations whose bricks are indexed (what nexus_assemble reads)")
    haze_map: bool = Field(description="a 2-D map of the space exists")


class SpacesOut(BaseModel):
    spaces: list[SpaceOut]
