"""The Nexus Dagster code location (see ``nexus_pipelines.definitions``)."""

from nexus_pipelines.common.beta_features import silence_chosen_beta_warnings

silence_chosen_beta_warnings()
