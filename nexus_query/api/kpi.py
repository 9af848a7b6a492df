"""``POST /nexus/spaces/{space_id}/kpi/measurements``: a batch of readings into the space's KPI source (the
seed's end-of-run trigger). It answers 202 with a task, like ingest; the task succeeds once a KPI run has
refreshed the space's facts from the batch."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, WithJsonSchema

from nexus_query.api.auth import caller
from nexus_query.api.models import ID_REGEX, ErrorEnvelope, IngestAccepted, strict
from nexus_query.context import RequestContext
from nexus_query.kpi.catalogue import METRIC_NAME
from nexus_query.kpi.landing import request_measurements
from nexus_query.routing import RoutingRegistry

MAX_READINGS = 50_000  # per request: about a month of one metric's minutes


# pydantic writes key patterns as patternProperties, which still allow any other key: propertyNames says it
Dimensions = Annotated[dict[Annotated[str, StringConstraints(pattern=ID_REGEX)], str], WithJsonSchema(
    {"type": "object", "maxProperties": 8, "propertyNames": {"pattern": ID_REGEX},
     "additionalProperties": {"type": "string"}})]


NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _date_time_text(value: Any) -> Any:
    """The schema's ``string`` of ``format: date-time``: pydantic's lax datetime (kept for ISO text without
    an offset) would also read a number, or a number in a string, as seconds since 1970."""
    if isinstance(value, str) and not NUMBER.fullmatch(value):
        return value
    raise ValueError("a timestamp is an ISO 8601 date-time string, e.g. 2026-11-16T13:55:00Z")


class Reading(BaseModel):
    model_config = strict()

    metric: str = Field(pattern=f"^{METRIC_NAME.pattern}$",
                        description="the metric's name, as the catalogue lists it")
    timestamp: Annotated[datetime, BeforeValidator(_date_time_text)] = Field(
        strict=False, description="ISO 8601 date-time; without an offset it is UTC")
    value: float
    unit: str | None = Field(None, max_length=32)
    dimensions: Dimensions | None = Field(None, max_length=8,
                                          description="e.g. {\"region\": \"eu\"}; names: the id rule")


class MeasurementsRequest(BaseModel):
    model_config = strict(json_schema_extra={"examples": [{"readings": [
        {"metric": "checkout_latency_p95", "timestamp": "2026-11-16T13:55:00Z", "value": 214.0, "unit": "ms"}]}]})

    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS)


def kpi_router(current: Callable[[], RoutingRegistry], space_id_param: Any = None) -> APIRouter:
    router = APIRouter()
    space_id_param = space_id_param or Path(description="the space id", examples=["main"])

    @router.post("/spaces/{space_id}/kpi/measurements", status_code=202, response_model=IngestAccepted,
                 summary="Add KPI measurements to a space (its facts refresh in the background)",
                 responses={409: {"model": ErrorEnvelope, "description": "nexus.conflicting_readings: two readings "
                                                                         "of one series at one time disagree"}})
    def post_measurements(body: MeasurementsRequest = Body(), space_id: str = space_id_param,
                          ctx: RequestContext = Depends(caller)) -> dict[str, str]:
        readings = [{**r.model_dump(exclude_none=True), "timestamp": r.timestamp.isoformat()} for r in body.readings]
        task = request_measurements(ctx, space_id, readings, registry=current())
        return {"task_id": task.task_id}

    return router
