"""Serving many spaces from one query process: snapshots and LanceDB connections are least-recently-used
caches bounded by the config's ``serving`` section (real model, LanceDB on disk)."""

import pytest
import yaml

from nexus_query.config import DEFAULT_CONFIG_PATH, NexusConfig, ServingConfig
from nexus_query.context import RequestContext
from nexus_query.errors import ConfigError
from nexus_query.query import query
from nexus_query.store import SpaceStore
from nexus_query.store.snapshots import snapshot_cache
from nexus_query.store.space import apply_serving_limits, open_databases
from tests.helpers import load_texts


@pytest.fixture
def bounded(nexus_home, tmp_path, monkeypatch):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(nexus_home)
    raw["serving"] = {"snapshot_cache_mb": 64, "max_snapshots": 3, "max_open_databases": 2}
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    snapshot_cache.clear()
    yield
    snapshot_cache.clear()
    apply_serving_limits(ServingConfig())  # the shipped bounds for the tests that follow


def test_snapshots_and_open_databases_stay_within_the_configured_bounds_as_more_spaces_are_served(
        bounded, provider):
    spaces = [(RequestContext("acme", f"p{i}"), f"s{i}") for i in range(6)]  # six projects: six databases
    for number, (ctx, space_id) in enumerate(spaces):
        load_texts(SpaceStore(), provider, ctx, space_id, {f"doc{number}": f"Tent model {number} weighs {number} kg."})
    for number, (ctx, space_id) in enumerate(spaces):
        (hit,) = query(ctx, space_id, f"how much does tent model {number} weigh?", top_k=1, mode="vector",
                       provider=provider).hits
        assert hit.source == f"doc{number}"
        assert len(snapshot_cache) <= 3 and open_databases() <= 2
    # The least recently used ones went; asking an evicted space again reads it afresh, same answer.
    ctx, space_id = spaces[0]
    assert query(ctx, space_id, "how much does tent model 0 weigh?", top_k=1, mode="vector",
                 provider=provider).hits[0].source == "doc0"
    assert len(snapshot_cache) == 3 and open_databases() == 2


def test_serving_bounds_come_from_the_config_and_nonsense_is_refused():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    assert NexusConfig.from_dict(raw).serving.max_snapshots == 4096
    raw["serving"] = {"max_snapshots": "12"}
    assert NexusConfig.from_dict(raw).serving.max_snapshots == 12
    for bad in ({"max_snapshots": 0}, {"max_handles": 5}):
        raw["serving"] = bad
        with pytest.raises(ConfigError):
            NexusConfig.from_dict(raw)


def test_a_space_too_large_to_hold_is_sized_once_per_version_not_on_every_query(store, provider, monkeypatch):
    from nexus_query.store.snapshots import SnapshotCache

    space = load_texts(store, provider, RequestContext("acme"), "main", {"a": "tents", "b": "stoves"})
    cache = SnapshotCache(max_bytes=1024)  # too small for any space
    sized = []
    monkeypatch.setattr(cache, "fits", lambda table: sized.append(table.version) or False)
    assert cache.get(space.table, space.location.dataset_uri) is None
    assert cache.get(space.table, space.location.dataset_uri) is None
    assert sized == [space.table.version]
    cache.configure(max_bytes=1024, max_items=10)  # a new budget judges the size anew
    assert cache.get(space.table, space.location.dataset_uri) is None and len(sized) == 2


def test_the_snapshot_cache_size_comes_from_the_environment_through_the_config_not_at_import(
        nexus_home, monkeypatch):
    """``NEXUS_SNAPSHOT_CACHE_MB`` is read when the config is loaded (so a value set after import counts),
    and a cache built without a config takes the shipped default."""
    from nexus_query.config import load_config
    from nexus_query.store.snapshots import SnapshotCache

    monkeypatch.setenv("NEXUS_SNAPSHOT_CACHE_MB", "96")
    serving = load_config(DEFAULT_CONFIG_PATH).serving
    assert serving.snapshot_cache_mb == 96
    try:
        apply_serving_limits(serving)
        assert snapshot_cache.max_bytes == 96 * 2**20
    finally:
        apply_serving_limits(ServingConfig())
    assert snapshot_cache.max_bytes == SnapshotCache().max_bytes == ServingConfig().snapshot_cache_mb * 2**20
