from typing import get_args

import pytest

from nexus_query.config import RESOURCE_KINDS, NexusConfig, load_config
from nexus_query.context import RequestContext
from nexus_query.errors import ConfigError, MissingRoute, Unauthorized
from nexus_query.routing import FileKind, ResourceKind, RoutingRegistry, StoreKind, hash_api_key


@pytest.fixture
def registry(nexus_home):
    return RoutingRegistry.default()


def test_demo_keys_map_to_their_tenants(registry):
    assert registry.authenticate("acme-demo-key") == RequestContext("acme", "default", "dev")
    assert registry.authenticate("globex-demo-key").tenant_id == "globex"
    assert registry.authenticate("initech-demo-key").tenant_id == "initech"


@pytest.mark.parametrize("key", [None, "", "acme-demo-key ", "ACME-DEMO-KEY", "8676d15d94dabdd1283e6c407e2bb08a"])
def test_unknown_or_missing_keys_are_unauthorized(registry, key):
    with pytest.raises(Unauthorized):
        registry.authenticate(key)


def test_config_stores_only_hashes_of_keys(registry):
    raw = registry.config.source
    text = open(raw).read()
    assert "acme-demo-key" not in text.replace("# acme-demo-key", "")
    assert hash_api_key("acme-demo-key") in text


def test_tenant_without_store_route_gets_503_missing_route(registry):
    with pytest.raises(MissingRoute) as info:
        registry.store_route(RequestContext("initech"))
    assert info.value.status == 503
    assert info.value.envelope()["error"]["code"] == "nexus_store.missing_route"
    assert info.value.envelope()["error"]["resource_kind"] == "nexus_store"
    # initech keeps its other routes: only the store was removed
    assert registry.blob_route(RequestContext("initech"))


def test_unknown_tenant_and_environment_have_no_routes(registry):
    for ctx in (RequestContext("umbrella"), RequestContext("acme", environment="prod")):
        with pytest.raises(MissingRoute):
            registry.store_route(ctx)


def test_routes_use_data_root_from_environment(registry, nexus_home):
    route = registry.store_route(RequestContext("acme"))
    assert route.uri == f"{nexus_home}/lance"
    assert registry.global_store_route("dev").uri == f"{nexus_home}/lance-global"
    assert registry.tenants("dev") == ["acme", "globex"]


def test_config_expands_environment_variables_with_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("NX_TEST_BUCKET", "prod-bucket")
    cfg = NexusConfig.from_dict({
        "data_root": str(tmp_path),
        "environments": {"prod": {"tenants": {"acme": {
            "nexus_store": {"uri": "s3://${NX_TEST_BUCKET}/nexus",
                            "storage_options": {"endpoint": "${NX_TEST_ENDPOINT:-}", "allow_http": "true"}},
        }}}},
    })
    route = RoutingRegistry(cfg).store_route(RequestContext("acme", environment="prod"))
    assert route.uri == "s3://prod-bucket/nexus"
    assert route.storage.for_lance() == {"allow_http": "true"}


def test_config_refers_to_unset_variable_without_default_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="NX_SURELY_UNSET"):
        NexusConfig.from_dict({"data_root": "${NX_SURELY_UNSET}"})


def test_config_rejects_unknown_resource_kinds_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown resource kinds"):
        NexusConfig.from_dict({"environments": {"dev": {"tenants": {"acme": {"nexus_stor": {}}}}}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_the_typed_resource_kinds_are_exactly_the_configured_ones():
    """``routing.ResourceKind`` types what ``config.RESOURCE_KINDS`` lists: a kind added to one only
    would be a route that type checking cannot see (or one the config refuses)."""
    assert set(get_args(StoreKind)) | set(get_args(FileKind)) == set(RESOURCE_KINDS)
    assert set(get_args(ResourceKind)) == set(RESOURCE_KINDS)
