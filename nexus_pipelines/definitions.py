"""The Nexus code location: every domain's definitions merged, plus the shared resources.

Each domain folder (ingest/, kpi/, haze/, cognition/, ...) exposes a ``defs`` of its assets, checks,
sensors and schedules; add it to ``DOMAINS`` below. Shared resources: ``nexus`` (routing, stores,
embedder) and ``nexus_parquet`` (per-space Parquet in the owner's store, for intermediate assets).
"""

from __future__ import annotations

import os

import dagster as dg

from nexus_pipelines import cognition, erasure, haze, ingest, kpi, maintenance
from nexus_pipelines.ingest.parquet_io import SpaceParquetIOManager
from nexus_pipelines.resources import NexusResource

DOMAINS: list[dg.Definitions] = [ingest.defs, kpi.defs, haze.defs, cognition.defs, maintenance.defs, erasure.defs]

nexus = NexusResource(environment=os.environ.get("NEXUS_ENVIRONMENT", "dev"))
RESOURCES = {"nexus": nexus, "nexus_parquet": SpaceParquetIOManager(nexus=nexus)}

defs = dg.Definitions.merge(*DOMAINS, dg.Definitions(resources=RESOURCES))
