"""Erasure: one Dagster run per request, on the space's partition, with the receipt in its metadata."""

import dagster as dg

from nexus_pipelines.erasure.assets import erase_job, erase_tenant_job, erasure_request_sensor, space_erasure

defs = dg.Definitions(assets=[space_erasure], jobs=[erase_job, erase_tenant_job], sensors=[erasure_request_sensor])
