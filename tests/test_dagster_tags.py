"""The tag names nexus_pipelines spells out are the ones Dagster itself writes and reads."""

# Private imports on purpose: Dagster exports no public name for these tags, and this test is what
# notices if a release renames one.
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    WILL_RETRY_TAG,
)

from nexus_pipelines.common import dagster_tags


def test_the_tag_names_spelled_out_equal_dagsters_own():
    assert dagster_tags.ASSET_PARTITION_RANGE_START_TAG == ASSET_PARTITION_RANGE_START_TAG
    assert dagster_tags.ASSET_PARTITION_RANGE_END_TAG == ASSET_PARTITION_RANGE_END_TAG
    assert dagster_tags.DATA_VERSION_TAG == DATA_VERSION_TAG
    assert dagster_tags.WILL_RETRY_TAG == WILL_RETRY_TAG
