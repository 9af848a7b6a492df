"""Bricks (one per content block, cited by source_file/message_id/block_index), imports, and the
read-only recall."""

import json
from pathlib import Path

import pytest

from nexus_pipelines.ingest.load import upsert_records
from nexus_query.cognition.bricks import (
    MAX_BRICK_CHARS,
    bricks_for_export,
    conversation_bricks,
    import_export,
    source_path,
    split_block,
)
from nexus_query.cognition.conversations import parse_export
from nexus_query.cognition.recall import recall_bricks_readonly
from nexus_query.context import RequestContext
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest
from nexus_query.landing import landing_zone
from tests.conftest import load_texts

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
ACME = RequestContext("acme")


def ingest_fixture(store, provider, ctx: RequestContext, name: str, space_id: str = "main"):
    """What the ingest pipeline does with a landed export: sources stored, bricks embedded and upserted."""
    exported = bricks_for_export(landing_zone(ctx).files, (FIXTURES / name).read_bytes())
    space = store.open_or_create(ctx, space_id, provider.info)
    upsert_records(space, ctx, exported.records, provider)
    return exported


def test_every_content_block_becomes_a_brick_carrying_its_citation_metadata(nexus_home):
    exported = bricks_for_export(landing_zone(ACME).files, (FIXTURES / "claude_conversations.json").read_bytes())
    valve = [r for r in exported.records if r.metadata["conversation_id"] == "claude-conv-valve"]
    assert len(valve) == 7  # 3 blocks of the user's message, 4 of the assistant's
    first = valve[0]
    assert first.source == first.metadata["source_file"] == "conversations/claude/claude-conv-valve.json"
    assert {k: first.metadata[k] for k in ("message_id", "block_index", "role", "conversation_id")} == {
        "message_id": "cm-1", "block_index": 0, "role": "user", "conversation_id": "claude-conv-valve"}
    assert [(r.metadata["message_id"], r.metadata["block_index"]) for r in valve] == [
        ("cm-1", 0), ("cm-1", 1), ("cm-1", 2), ("cm-2", 0), ("cm-2", 1), ("cm-2", 2), ("cm-2", 3)]
    assert len({r.chunk_index for r in valve}) == 7  # so brick ids are distinct and stable


def test_a_long_block_is_split_into_bricks_that_share_its_block_index_and_cover_it_exactly():
    warranty = {c.conversation_id: c for c in
                parse_export((FIXTURES / "canonical_conversations.json").read_bytes()).conversations}["canon-warranty"]
    long_text = warranty.messages[1].blocks[1].text
    bricks = [r for r in conversation_bricks(warranty, source_path(warranty)) if r.metadata["block_index"] == 2]
    assert len(bricks) >= 5 and all(len(b.text) <= MAX_BRICK_CHARS for b in bricks)
    assert {b.metadata["message_id"] for b in bricks} == {"w-2"}
    assert [b.metadata["part"] for b in bricks] == list(range(len(bricks)))
    assert "".join(b.text for b in bricks) == long_text
    assert all(long_text[b.char_start:b.char_end] == b.text for b in bricks)


def test_split_block_cuts_at_sentence_ends_rather_than_inside_words():
    text = "The fly must be dry. " * 80
    spans = split_block(text, limit=200)
    assert all(text[s:e].endswith(". ") for s, e in spans[:-1])


def test_empty_conversations_make_no_source_file_and_no_bricks(nexus_home):
    files = landing_zone(ACME).files
    exported = bricks_for_export(files, (FIXTURES / "chatgpt_conversations.json").read_bytes())
    assert sorted(exported.sources) == ["conversations/chatgpt/conv-gpt-returns.json",
                                        "conversations/chatgpt/conv-gpt-stove.json"]
    assert not files.exists("conversations/chatgpt/conv-gpt-empty.json")
    assert {r.metadata["conversation_id"] for r in exported.records} == {"conv-gpt-returns", "conv-gpt-stove"}


def test_importing_stores_the_original_and_the_sources_and_lands_the_export_for_the_pipeline(nexus_home):
    files = landing_zone(ACME).files
    data = (FIXTURES / "chatgpt_conversations.json").read_bytes()
    summary = import_export(files, "main", "conversations.json", data)
    assert (summary["conversations"], summary["empty_conversations"], summary["messages"], summary["blocks"]) == (2, 1, 10, 13)
    assert summary["landed"].startswith("landing/main/files/conversations/")
    assert files.read_bytes(summary["landed"]) == data == files.read_bytes(summary["archived"])
    assert summary["source_files"] == ["conversations/chatgpt/conv-gpt-returns.json",
                                       "conversations/chatgpt/conv-gpt-stove.json"]
    stored = json.loads(files.read_bytes(summary["source_files"][0]))
    assert stored["format"] == "nexus.conversation.v1" and stored["conversation_id"] == "conv-gpt-returns"


def test_importing_a_file_that_is_not_an_export_writes_nothing(nexus_home):
    files = landing_zone(ACME).files
    with pytest.raises(InvalidRequest):
        import_export(files, "main", "notes.json", b'{"notes": "not a conversation"}')
    assert not Path(files.root).exists()


def test_importing_into_the_global_space_is_refused(nexus_home):
    with pytest.raises(GlobalSpaceReadOnly):
        import_export(landing_zone(ACME).files, "global", "c.json", (FIXTURES / "canonical_conversations.json").read_bytes())


def test_unchanged_sources_are_not_rewritten_when_the_same_export_comes_again(nexus_home):
    files = landing_zone(ACME).files
    data = (FIXTURES / "canonical_conversations.json").read_bytes()
    bricks_for_export(files, data)
    path = files.path("conversations/canonical/canon-warranty.json")
    before = Path(path).stat().st_mtime_ns
    again = bricks_for_export(files, data)
    assert Path(path).stat().st_mtime_ns == before and len(again.records) == 9


def test_recall_returns_only_conversation_bricks_nearest_first(store, provider):
    load_texts(store, provider, ACME, "main", {"stove-doc": "Embercore batches EC-2311 to EC-2314 are affected."})
    ingest_fixture(store, provider, ACME, "claude_conversations.json")
    bricks = recall_bricks_readonly(ACME, "main", "which Embercore stove batches are affected?", k=5,
                                    store=store, provider=provider)
    assert len(bricks) == 5
    assert all(b.source_file.startswith("conversations/") for b in bricks)
    assert [b.score for b in bricks] == sorted((b.score for b in bricks), reverse=True)


def test_recall_is_read_only_the_table_version_and_history_are_unchanged(store, provider):
    ingest_fixture(store, provider, ACME, "chatgpt_conversations.json")
    space = store.open(ACME, "main")
    version, history = space.version, len(space.table.list_versions())
    for topic in ("tent refund with mildew", "valve recall batches", "winter opening hours"):
        assert recall_bricks_readonly(ACME, "main", topic, store=store, provider=provider)
    space.refresh()
    assert (space.version, len(space.table.list_versions())) == (version, history)


def test_the_recall_handle_is_a_checked_out_version_on_which_writes_fail(store, provider):
    """The mechanism recall relies on: a LanceDB table checked out at a version refuses writes."""
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    handle = store.open(ACME, "main").table
    handle.checkout(handle.version)
    with pytest.raises(Exception):
        handle.delete("true")
    assert store.open(ACME, "main").count() == 9


@pytest.mark.parametrize("k", [0, -1, 201, "15", True])
def test_recall_refuses_a_k_outside_1_to_200(store, provider, k):
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    with pytest.raises(InvalidRequest):
        recall_bricks_readonly(ACME, "main", "shipping", k=k, store=store, provider=provider)
