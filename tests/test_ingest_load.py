from nexus_pipelines.common.load import embed_records, upsert_records
from nexus_pipelines.ingest.prune import PruneResult, prune_departed
from nexus_pipelines.maintenance.optimize import SMALL_FRAGMENTS_BEFORE_COMPACTION, compact_if_fragmented
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


def test_many_small_writes_get_compacted_once_and_then_left_alone(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    for i in range(SMALL_FRAGMENTS_BEFORE_COMPACTION + 1):
        upsert_records(space, ACME, [Record(text=f"Stove model {i} burns for {i + 2} hours.", source=f"stove-{i}")],
                       provider)
    assert space.table.stats()["fragment_stats"]["num_small_fragments"] > SMALL_FRAGMENTS_BEFORE_COMPACTION
    report = compact_if_fragmented(space, cursor_ttl_seconds=3600)
    # the full-text index covers the first write's fragment: Lance compacts indexed and unindexed rows apart
    assert report is not None and report.fragments_after <= 2 < report.fragments_before
    assert space.table.stats()["fragment_stats"]["num_fragments"] == report.fragments_after
    assert space.count() == SMALL_FRAGMENTS_BEFORE_COMPACTION + 1
    assert report.versions_removed == 0  # every version stays readable for the cursors' lifetime
    assert compact_if_fragmented(space, cursor_ttl_seconds=3600) is None


def test_pruning_keeps_a_space_whose_source_came_back_empty_unless_told_otherwise(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    upsert_records(space, ACME, [Record(text="Kept.", source="a"), Record(text="Gone.", source="b")], provider)
    kept_id = Record(text="Kept.", source="a").row_id
    assert prune_departed(space, {kept_id}) == PruneResult(1, False)
    assert prune_departed(space, set()) == PruneResult(0, refused_empty_source=True) and space.count() == 1
    assert prune_departed(space, set(), allow_empty_source=True) == PruneResult(1, False) and space.count() == 0


def test_a_text_repeated_across_the_batches_of_one_run_is_embedded_once(store, provider):
    space = store.open_or_create(ACME, "main", provider.info)
    recent: dict = {}
    first = embed_records(space, [Record(text="Boilerplate footer.", source="a")], provider, ACME,
                          stored_keys=set(), recent=recent)
    later = embed_records(space, [Record(text="Boilerplate footer.", source="b")], provider, ACME,
                          stored_keys=set(), recent=recent)
    assert (first.stats.embedded, later.stats.embedded, later.stats.reused) == (1, 0, 1)
    assert (first.vectors == later.vectors).all()
