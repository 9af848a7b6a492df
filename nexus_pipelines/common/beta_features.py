"""The Dagster features this code location uses on purpose although Dagster marks them beta or preview.

Dagster warns at every definition that uses one, so `make demo`, `dagster dev` and each `--wait` command
printed a dozen warnings about choices made here, not about anything a user did. Only these exact
warnings are silenced; any other beta, preview or deprecation warning still shows.
"""

from __future__ import annotations

import warnings

CHOSEN = (
    # owners show who answers for a sensor or a schedule in the UI
    r"Parameter `owners` of (function|initializer) `(sensor|schedule|SensorDefinition\.__init__|"
    r"ScheduleDefinition\.__init__)`",
    # a backfill of many spaces runs as batches of partitions
    r"Parameter `backfill_policy` of function `asset`",
    # the KPI source tells Dagster when its measurements change, per space
    r"Function `observable_source_asset`",
    r"Class `DataVersionsByPartition`",
    # checks are judged per tenant space
    r"Specifying a partitions_def on an AssetCheckSpec",
)


def silence_chosen_beta_warnings() -> None:
    for message in CHOSEN:
        warnings.filterwarnings("ignore", message=message)
