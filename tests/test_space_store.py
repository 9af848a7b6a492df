import numpy as np
import pytest

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.errors import EmbedderMismatch, GlobalSpaceReadOnly, SpaceNotFound
from nexus_query.query import query
from nexus_query.store import Record, build_rows
from tests.helpers import load_texts

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
DOCS = {
    "tents": "Return a tent within 60 days with the original receipt for a full refund.",
    "stoves": "The Embercore stove burns propane and boils a litre of water in three minutes.",
    "shipping": "Standard shipping takes three to five business days within the country.",
}


def test_upsert_twice_gives_the_same_table(store, provider):
    space = load_texts(store, provider, ACME, "main", DOCS)
    before = space.table.to_arrow().sort_by("id")
    records = [Record(text=t, source=s) for s, t in DOCS.items()]
    rows = build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info)
    result = space.upsert(rows, provider.info)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 3)
    after = space.table.to_arrow().sort_by("id")
    assert after.drop(["timestamp"]).equals(before.drop(["timestamp"]))
    assert after.column("timestamp").equals(before.column("timestamp"))


def test_duplicate_ids_in_one_batch_keep_the_last_copy(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    old, new = Record(text="old text", source="doc"), Record(text="new text", source="doc")
    rows = build_rows(ACME, [old, new], provider.embed([old.text, new.text]), provider.info)
    result = space.upsert(rows, provider.info)
    assert result.inserted == 1 and space.count() == 1
    assert space.table.to_arrow().column("text").to_pylist() == ["new text"]


def test_changed_text_updates_only_its_row(store, provider):
    space = load_texts(store, provider, ACME, "main", DOCS)
    changed = Record(text="Tents can be returned within 90 days.", source="tents")
    result = space.upsert(build_rows(ACME, [changed], provider.embed([changed.text]), provider.info), provider.info)
    assert (result.inserted, result.updated) == (0, 1)
    assert space.count() == 3


def test_delete_sources_removes_only_their_rows(store, provider):
    space = load_texts(store, provider, ACME, "main", DOCS)
    assert space.delete_sources(["stoves", "never-there"]) == 1
    assert space.sources() == {"tents", "shipping"}


def test_space_refuses_vectors_of_another_embedder(store, provider):
    space = load_texts(store, provider, ACME, "main", DOCS)
    other = EmbedderInfo(model="all-mpnet-base-v2", dimension=768)
    record = Record(text="x", source="x")
    with pytest.raises(EmbedderMismatch) as info:
        space.upsert(build_rows(ACME, [record], np.ones((1, 768), np.float32) / np.sqrt(768), other), other)
    assert info.value.status == 409
    with pytest.raises(EmbedderMismatch):
        store.open_or_create(ACME, "main", other)
    assert space.count() == 3


def test_embedder_is_recorded_in_the_space(store, provider):
    load_texts(store, provider, ACME, "main", DOCS)
    reopened = store.open(ACME, "main")
    assert reopened.embedder == provider.info == EmbedderInfo("all-MiniLM-L6-v2", 384, "local")


def test_tenants_never_see_each_others_rows(store, provider):
    load_texts(store, provider, ACME, "main", DOCS)
    load_texts(store, provider, GLOBEX, "main", {"customs": "Customs clearance needs a commercial invoice."})
    acme_hits = query(ACME, "main", "customs clearance invoice", top_k=10, store=store, provider=provider).hits
    globex_hits = query(GLOBEX, "main", "return a tent", top_k=10, store=store, provider=provider).hits
    assert {h.source for h in acme_hits} == set(DOCS)
    assert {h.source for h in globex_hits} == {"customs"}
    assert store.location(ACME, "main").db_uri != store.location(GLOBEX, "main").db_uri
    assert set(store.open(ACME, "main").table.to_arrow().column("tenant_id").to_pylist()) == {"acme"}


def test_opening_a_space_that_does_not_exist_is_404(store):
    with pytest.raises(SpaceNotFound) as info:
        store.open(ACME, "nothing-here")
    assert info.value.status == 404


def test_global_space_is_read_only_for_tenant_reads(store, provider):
    system = store.open_global_for_system("dev", provider.info)
    record = Record(text="p95 latency is the 95th percentile.", source="glossary")
    system.upsert(build_rows(ACME, [record], provider.embed([record.text]), provider.info), provider.info)
    shared = store.open_global("dev")
    assert shared.count() == 1
    with pytest.raises(GlobalSpaceReadOnly) as info:
        shared.upsert(build_rows(ACME, [record], provider.embed([record.text]), provider.info), provider.info)
    assert info.value.status == 403
    with pytest.raises(GlobalSpaceReadOnly):
        shared.delete_sources(["glossary"])
