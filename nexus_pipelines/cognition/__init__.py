"""Cognition: space_table → cognition_artifacts (per tenant space, the configured topics). The
importers, bricks, recall and assembly themselves are nexus_query.cognition."""

import dagster as dg

from nexus_pipelines.cognition.assets import cognition_artifacts, cognition_job

defs = dg.Definitions(assets=[cognition_artifacts], jobs=[cognition_job])
