"""Landing a conversation export sent to ``POST /nexus/spaces/{space_id}/cognition/imports``, as one plain
function of bytes (like ``ingest_body`` for ingest batches): the quotas, then the export is checked and
landed, and either ingested by the server's warm writer (the fast path: an export up to
``FAST_MAX_EXPORT_BYTES``, one long conversation and more) or left to the sensors' pipeline run (bulk).

A bulk export reaches a worker process as the file its body was spooled to, so parsing tens of megabytes
does not stall the serving process; a small one is landed in a thread of the server, which holds the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nexus_query.api.body_spool import SpooledBody
from nexus_query.api.ingest_body import FastLane, check_row_quota, lower_priority
from nexus_query.cognition.bricks import land_export
from nexus_query.cognition.conversations import parse_export
from nexus_query.config import NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import NexusError
from nexus_query.landing import landing_zone
from nexus_query.quotas import check_landing_bytes, record_landing
from nexus_query.routing import RoutingRegistry

# Exports up to this size are ingested by the serving process's warm writer (a ChatGPT export of a
# 600-turn conversation with long answers is about 1-2 MiB); larger ones by a pipeline run.
FAST_MAX_EXPORT_BYTES = 4 * 2**20


@dataclass(frozen=True)
class ImportJob:
    ctx: RequestContext
    space_id: str
    file_name: str
    body: SpooledBody
    config: NexusConfig | None = None  # None: the configured registry (NEXUS_CONFIG), read where it runs


@dataclass(frozen=True)
class ImportLanded:
    """The receipt (``ImportReceipt.to_dict()`` and ``path``), or the error's status, envelope and
    Retry-After (errors cross the process boundary as data)."""

    receipt: dict[str, Any] | None = None
    status: int = 202
    envelope: dict[str, Any] | None = None
    retry_after: int | None = None


def land_import_body(job: ImportJob, fast_lane: FastLane | None = None) -> ImportLanded:
    """Check the quotas and the export, land it and start its ingest: on ``fast_lane`` when there is one (the
    server passes it for an export up to ``FAST_MAX_EXPORT_BYTES``), else by announcing it to the landing
    sensor. Nothing is stored for a bad export."""
    try:
        registry = RoutingRegistry(job.config) if job.config is not None else RoutingRegistry.default()
        zone = landing_zone(job.ctx, registry)
        check_landing_bytes(registry.config.api.max_landing_bytes_per_day, zone, job.body.size)
        data = job.body.read()
        check_row_quota(registry, job.ctx, zone, job.space_id, lambda: parse_export(data).counts().blocks)
        path: Literal["fast", "run"]
        if fast_lane is not None:
            receipt, path = fast_lane.import_export(job.ctx, job.space_id, job.file_name, data, registry), "fast"
        else:
            receipt, path = land_export(zone.files, job.space_id, job.file_name, data), "run"
            zone.announce(receipt.space_id, "files")  # the landing sensor starts the space's ingest run
        record_landing(zone, job.body.size)
        return ImportLanded(receipt={**receipt.to_dict(), "path": path})
    except NexusError as exc:
        return ImportLanded(status=exc.status, envelope=exc.envelope(), retry_after=getattr(exc, "retry_after", None))


def land_import_in_worker(job: ImportJob) -> ImportLanded:
    """``land_import_body`` of a bulk export in a worker process, at a lower CPU priority."""
    lower_priority()
    return land_import_body(job)
