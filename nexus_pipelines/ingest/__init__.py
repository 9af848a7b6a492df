"""Ingestion: landing zone → raw_docs → chunks → embeddings → space_table, one partition per space."""

import dagster as dg

from nexus_pipelines.ingest.assets import external_assets, ingest_assets
from nexus_pipelines.ingest.sensors import ingest_failure_sensor, ingest_job, landing_sensor, landing_sweep_sensor

defs = dg.Definitions(assets=[*ingest_assets, *external_assets], jobs=[ingest_job],
                      sensors=[landing_sensor, landing_sweep_sensor, ingest_failure_sensor])
