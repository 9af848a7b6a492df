"""The same store code against a real S3 API (moto_server on 127.0.0.1)."""

from nexus_query.context import RequestContext
from nexus_query.paths import TenantFiles
from nexus_query.query import query
from nexus_query.routing import RoutingRegistry
from nexus_query.store import Record, SpaceStore, build_rows
from tests.helpers import load_texts

ACME = RequestContext("acme")


def test_space_on_s3_upserts_idempotently_and_answers_queries(s3_config, provider):
    registry = RoutingRegistry.default()
    assert registry.store_route(ACME).uri.startswith("s3://")
    store = SpaceStore(registry)
    docs = {"tents": "Return a tent within 60 days.", "stoves": "The stove burns propane."}
    space = load_texts(store, provider, ACME, "main", docs)
    assert space.location.dataset_uri.endswith("/lance/acme/default/main.lance")
    records = [Record(text=t, source=s) for s, t in docs.items()]
    again = space.upsert(build_rows(ACME, records, provider.embed(list(docs.values())), provider.info), provider.info)
    assert again.unchanged == 2 and store.open(ACME, "main").count() == 2
    hits = query(ACME, "main", "returning a tent", top_k=1, store=store, provider=provider).hits
    assert hits[0].source == "tents"


def test_tenant_files_on_s3_write_atomically_and_refuse_other_tenants(s3_config):
    registry = RoutingRegistry.default()
    acme = TenantFiles.for_tenant(registry.blob_route(ACME), ACME)
    globex = TenantFiles.for_tenant(registry.blob_route(RequestContext("globex")), RequestContext("globex"))
    acme.write_bytes_atomic(b"{}", "landing", "main", "batch.json")
    assert acme.read_bytes("landing", "main", "batch.json") == b"{}"
    assert acme.url("landing", "main", "batch.json").startswith("s3://")
    assert acme.relative(acme.url("landing", "main", "batch.json")) == "landing/main/batch.json"
    import pytest

    from nexus_query.errors import Forbidden
    with pytest.raises(Forbidden):
        acme.relative(globex.url("landing", "main", "batch.json"))
