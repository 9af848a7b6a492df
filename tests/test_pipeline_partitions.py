"""Partition keys: one documented, validated form per space, and the reserved global key."""

import pytest

from nexus_pipelines.partitions import GLOBAL_PARTITION_KEY, SpaceKey, tags_for_partition, tenant_spaces
from nexus_query.errors import InvalidId


def test_a_space_key_round_trips_and_names_its_tenant_context_and_run_tag():
    key = SpaceKey.parse("acme.default.main")
    assert (key.tenant_id, key.project_id, key.space_id) == ("acme", "default", "main")
    assert key.partition_key == "acme.default.main" and not key.is_global
    assert key.context("prod").environment == "prod" and key.context("prod").tenant_id == "acme"
    assert tags_for_partition("acme.default.main") == {"nexus/tenant": "acme"}


def test_the_global_key_is_a_single_word_with_no_tenant_context():
    key = SpaceKey.parse(GLOBAL_PARTITION_KEY)
    assert key.is_global and key == SpaceKey.global_space() and key.partition_key == "global"
    assert tags_for_partition("global") == {"nexus/tenant": "_global"}
    with pytest.raises(InvalidId):
        key.context("dev")


@pytest.mark.parametrize("bad", ["acme.main", "acme.default.main.x", "Acme.default.main", "acme.default.ma|in",
                                 "acme..main", "../etc.default.main", "acme.default.global", "_global.shared.x",
                                 "_global.shared.global", "acme.default.m,ain", ""])
def test_malformed_or_reserved_keys_are_refused(bad):
    with pytest.raises(InvalidId):
        SpaceKey.parse(bad)


def test_every_pipeline_partition_lives_in_one_dynamic_definition():
    from nexus_pipelines.ingest.assets import ingest_assets

    assert {a.partitions_def for a in ingest_assets} == {tenant_spaces}
