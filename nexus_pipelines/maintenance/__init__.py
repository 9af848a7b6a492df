"""Maintenance: every space compacted, indexed and cleaned up nightly (``space_maintenance``), keeping each
version readable for a cursor's lifetime after it stopped being the latest. The work is ``optimize``."""

import dagster as dg

from nexus_pipelines.maintenance.assets import space_maintenance, space_maintenance_job, space_maintenance_nightly

defs = dg.Definitions(assets=[space_maintenance], jobs=[space_maintenance_job], schedules=[space_maintenance_nightly])
