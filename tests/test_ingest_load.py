from nexus_pipelines.ingest.load import upsert_records
from nexus_query.context import RequestContext
from nexus_query.store import Record

ACME = RequestContext("acme")


def test_second_upsert_embeds_nothing_and_changes_nothing(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    records = [Record(text=f"Tent model {i} sleeps {i + 1} people.", source=f"tent-{i}") for i in range(4)]
    first = upsert_records(space, ACME, records, provider)
    assert (first.embedded, first.inserted) == (4, 4)
    second = upsert_records(space, ACME, records, provider)
    assert (second.embedded, second.reused, second.inserted, second.updated, second.unchanged) == (0, 4, 0, 0, 4)


def test_identical_text_is_embedded_once_and_stored_vectors_are_reused(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    same = "Standard shipping takes three days."
    stats = upsert_records(space, ACME, [Record(text=same, source="a"), Record(text=same, source="b")], provider)
    assert stats.embedded == 1 and stats.inserted == 2
    later = upsert_records(space, ACME, [Record(text=same, source="c"), Record(text="New text.", source="d")],
                           provider)
    assert (later.embedded, later.reused, later.inserted) == (1, 1, 2)
