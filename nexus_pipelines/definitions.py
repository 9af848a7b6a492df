"""The Nexus code location: every domain's assets, checks, sensors and schedules, and the resources."""

from __future__ import annotations

import os

import dagster as dg

from nexus_pipelines.resources import NexusResource

defs = dg.Definitions(
    resources={"nexus": NexusResource(environment=os.environ.get("NEXUS_ENVIRONMENT", "dev"))},
)
