"""Ingestion: landing zone → raw_docs → chunks → embeddings → space_table, one partition per space."""

import dagster as dg

from nexus_pipelines.ingest.assets import external_assets, ingest_assets
from nexus_pipelines.ingest.jobs import ingest_job
from nexus_pipelines.ingest.sensors import ingest_failure_sensor, landing_sensor
from nexus_pipelines.ingest.sweep import landing_sweep_sensor

defs = dg.Definitions(assets=[*ingest_assets, *external_assets], jobs=[ingest_job],
                      sensors=[landing_sensor, landing_sweep_sensor, ingest_failure_sensor])
