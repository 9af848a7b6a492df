"""The Nexus code location: every domain's definitions merged, plus the shared resources.

Each domain folder (ingest/, kpi/, haze/, cognition/, ...) exposes a ``defs`` of its assets, checks,
sensors and schedules; add it to ``DOMAINS`` below. Shared resources: ``nexus`` (routing, stores,
embedder) and ``nexus_parquet`` (per-space Parquet in the owner's store, for intermediate assets).
"""

from __future__ import annotations

import os

import dagster as dg

from nexus_pipelines import cognition, erasure, haze, ingest, kpi, maintenance
from nexus_pipelines.catalog import with_owners
from nexus_pipelines.common.parquet_io import SpaceParquetIOManager
from nexus_pipelines.resources import NexusResource

DOMAINS: list[dg.Definitions] = [ingest.defs, kpi.defs, haze.defs, cognition.defs, maintenance.defs, erasure.defs]

nexus = NexusResource(environment=os.environ.get("NEXUS_ENVIRONMENT", "dev"))
RESOURCES = {"nexus": nexus, "nexus_parquet": SpaceParquetIOManager(nexus=nexus)}

def _owned(domain: dg.Definitions) -> dg.Definitions:
    """The domain with the owners of ``nexus_pipelines.catalog`` on every asset that names none (a
    SourceAsset, such as the observable ``kpi_measurements``, cannot carry owners in Dagster 1.13)."""
    assets = [a.map_asset_specs(with_owners) if isinstance(a, dg.AssetsDefinition)
              else with_owners(a) if isinstance(a, dg.AssetSpec) else a for a in domain.assets or []]
    return dg.Definitions(assets=assets, jobs=domain.jobs, schedules=domain.schedules, sensors=domain.sensors,
                          asset_checks=domain.asset_checks, resources=domain.resources)


defs = dg.Definitions.merge(*(_owned(d) for d in DOMAINS), dg.Definitions(resources=RESOURCES))
