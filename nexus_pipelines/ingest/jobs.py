"""The ingest job: what the landing sensors start, one run per space partition."""

from nexus_pipelines.ingest.assets import ingest_assets
from nexus_pipelines.partitions import space_job

ingest_job = space_job("ingest_space", ingest_assets,
                       "Ingest one space: landing zone to LanceDB. Runs carry nexus/tenant, so dagster.yaml "
                       "allows one run per tenant at a time.")
