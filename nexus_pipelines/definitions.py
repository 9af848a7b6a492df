"""The Nexus code location: every domain's definitions merged, plus the shared resources.

Each domain folder (ingest/, kpi/, haze/, cognition/, ...) exposes a ``defs`` of its assets, checks,
sensors and schedules; add it to ``DOMAINS`` below.
"""

from __future__ import annotations

import os

import dagster as dg

from nexus_pipelines.resources import NexusResource

DOMAINS: list[dg.Definitions] = []

defs = dg.Definitions.merge(
    *DOMAINS,
    dg.Definitions(resources={"nexus": NexusResource(environment=os.environ.get("NEXUS_ENVIRONMENT", "dev"))}),
)
