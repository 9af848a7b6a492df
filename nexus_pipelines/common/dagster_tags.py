"""Dagster's own tag names that this code location writes or reads. Dagster 1.13 documents them (a run
over a partition range, an observation's data version) but exports no public name for them, only from
``dagster._core``, whose module paths move between releases; the strings themselves are stored in every
instance's run and event storage, so they stay. ``tests/test_dagster_tags.py`` checks they still equal
Dagster's."""

# A run request with both covers the partition range start..end in one run (a BackfillPolicy's batch).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
# The data version an observation or materialization records (an observable source asset's fingerprint).
DATA_VERSION_TAG = "dagster/data_version"
# Set on a failed run that the instance's run_retries will re-execute.
WILL_RETRY_TAG = "dagster/will_retry"
