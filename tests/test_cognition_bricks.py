"""Bricks (one per content block, cited by source_file/message_id/block_index, chunked by the ingest
pipeline), imports, and the read-only recall."""

import json
from pathlib import Path

import numpy as np
import pytest

from nexus_pipelines.common.load import upsert_records
from nexus_pipelines.ingest.sources import LandingReader
from nexus_query.cognition.bricks import (
    block_documents,
    brick_text,
    import_export,
    land_export,
    landed_conversations,
    landed_task_id,
    source_path,
    vector_text,
)
from nexus_query.cognition.conversations import parse_export
from nexus_query.cognition.near_words import words_of
from nexus_query.cognition.recall import (
    LIFT,
    MIN_SCORE,
    RARITY,
    brick_rankings,
    ranked,
    recall_bricks_readonly,
    term_credits,
    term_weights,
    without_speakers,
)
from nexus_query.context import RequestContext
from nexus_query.errors import GlobalSpaceReadOnly, InvalidRequest
from nexus_query.landing import landing_zone
from nexus_query.scoring import hybrid_relevance, query_terms, vector_relevance
from nexus_query.store import SpaceStore
from tests.helpers import CONVERSATIONS, bricks_of, copy_home, ingest_fixture, land, load_texts, nexus_home_at

ACME = RequestContext("acme")


def test_every_content_block_becomes_a_brick_carrying_its_citation_metadata(nexus_home, provider):
    land(ACME, "claude_conversations.json")
    records, _ = bricks_of(provider, ACME)
    valve = [r for r in records if r.metadata["conversation_id"] == "claude-conv-valve"]
    assert len(valve) == 7  # 3 blocks of the user's message, 4 of the assistant's
    first = valve[0]
    assert first.metadata["source_file"] == "conversations/claude/claude-conv-valve.json"
    assert {k: first.metadata[k] for k in ("message_id", "block_index", "role", "conversation_id", "kind")} == {
        "message_id": "cm-1", "block_index": 0, "role": "user", "conversation_id": "claude-conv-valve",
        "kind": "conversation_brick"}
    assert sorted((r.metadata["message_id"], r.metadata["block_index"]) for r in valve) == [
        ("cm-1", 0), ("cm-1", 1), ("cm-1", 2), ("cm-2", 0), ("cm-2", 1), ("cm-2", 2), ("cm-2", 3)]
    assert len({r.row_id for r in valve}) == 7


def test_a_long_block_becomes_several_bricks_that_share_its_block_index_and_cover_it(nexus_home, provider):
    land(ACME, "canonical_conversations.json")
    records, _ = bricks_of(provider, ACME)
    export = parse_export((CONVERSATIONS / "canonical_conversations.json").read_bytes())
    warranty = {c.conversation_id: c for c in export.conversations}["canon-warranty"]
    long_text = brick_text(warranty, warranty.messages[1], warranty.messages[1].blocks[1].text)  # the document
    parts = sorted((r for r in records if r.metadata.get("message_id") == "w-2" and r.metadata["block_index"] == 2),
                   key=lambda r: r.char_start)
    assert len(parts) >= 4
    assert all(long_text[p.char_start:p.char_end] == p.text for p in parts)
    assert parts[0].char_start == 0 and parts[-1].char_end == len(long_text)
    # no gap: every word is in a brick
    assert all(a.char_end >= b.char_start for a, b in zip(parts, parts[1:], strict=False))


def test_empty_conversations_make_no_source_file_and_no_bricks(nexus_home):
    files = landing_zone(ACME).files
    landed = landed_conversations(files, [land(ACME, "chatgpt_conversations.json")])
    assert sorted(landed.sources) == ["conversations/chatgpt/conv-gpt-returns.json",
                                      "conversations/chatgpt/conv-gpt-stove.json"]
    assert not files.exists("conversations/chatgpt/conv-gpt-empty.json")
    assert {d.metadata["conversation_id"] for d in landed.documents} == {"conv-gpt-returns", "conv-gpt-stove"}


def test_the_latest_landed_version_of_a_conversation_wins(nexus_home):
    files = landing_zone(ACME).files
    older = json.loads((CONVERSATIONS / "canonical_conversations.json").read_bytes())
    newer = json.loads(json.dumps(older))
    newer["conversations"][1]["messages"][1]["blocks"][0]["text"] = "Standard shipping to Alaska now takes 5 days."
    paths = [land(ACME, "20240101-a.json", json.dumps(older).encode()),
             land(ACME, "20240201-b.json", json.dumps(newer).encode())]
    landed = landed_conversations(files, paths)
    texts = {d.doc_id: d.text for d in landed.documents}
    shipping = texts["conversations/canonical/canon-shipping.json#s-2#0"]
    assert shipping.endswith("]\nStandard shipping to Alaska now takes 5 days.")  # under its speaker line
    stored = json.loads(files.read_bytes("conversations/canonical/canon-shipping.json"))
    assert stored["messages"][1]["blocks"][0]["text"] == "Standard shipping to Alaska now takes 5 days."


def test_a_landed_file_that_is_not_an_export_is_reported_and_the_others_still_load(nexus_home, provider):
    land(ACME, "notes.json", b'{"notes": "not a conversation"}')
    land(ACME, "claude_conversations.json")
    records, reader = bricks_of(provider, ACME)
    assert any(p.startswith("landing/main/files/conversations/notes.json") for p in reader.problems)
    assert {r.metadata["conversation_id"] for r in records} == {"claude-conv-valve", "claude-conv-old"}
    assert reader.summary()["conversation_blocks"] == 9


def test_importing_keeps_the_original_and_lands_it_where_ingestion_reads_chat_exports(nexus_home):
    files = landing_zone(ACME).files
    data = (CONVERSATIONS / "chatgpt_conversations.json").read_bytes()
    summary = import_export(files, "main", "conversations.json", data)
    assert (summary["conversations"], summary["empty_conversations"], summary["messages"],
            summary["blocks"]) == (2, 1, 13, 16)
    assert summary["landed"].startswith("landing/main/files/conversations/")
    assert files.read_bytes(summary["landed"]) == data == files.read_bytes(summary["archived"])
    later = import_export(files, "main", "conversations.json", data)
    assert later["landed"] > summary["landed"]  # landed names sort in import order


def test_every_message_of_every_branch_becomes_bricks_with_its_citation(nexus_home, provider):
    land(ACME, "chatgpt_content_shapes.json")
    records, _ = bricks_of(provider, ACME)
    cited = {(r.metadata["message_id"], r.metadata["block_index"]) for r in records}
    conversation = parse_export((CONVERSATIONS / "chatgpt_content_shapes.json").read_bytes()).conversations[0]
    assert cited == {(m.message_id, b.index) for m in conversation.messages for b in m.blocks}
    assert {"u2a", "a7a", "a7b"} <= {m for m, _ in cited}  # the alternates are recallable too


def test_land_export_receipt_carries_the_exports_counts_and_is_what_import_export_prints(nexus_home):
    files = landing_zone(ACME).files
    data = (CONVERSATIONS / "chatgpt_content_shapes.json").read_bytes()
    receipt = land_export(files, "main", "conversations.json", data)
    assert receipt.counts == parse_export(data).counts()
    assert receipt.counts.alternate_messages == 3  # the edited and regenerated branches
    assert (receipt.space_id, landed_task_id(receipt.landed)) == ("main", receipt.task_id)
    assert files.read_bytes(receipt.landed) == data == files.read_bytes(receipt.archived)
    assert receipt.to_dict() == {**parse_export(data).summary(), "space_id": "main", "task_id": receipt.task_id,
                                 "archived": receipt.archived, "landed": receipt.landed}

def test_importing_records_a_queued_task_named_in_the_landed_file(nexus_home):
    files = landing_zone(ACME).files
    summary = import_export(files, "main", "conversations.json",
                            (CONVERSATIONS / "claude_conversations.json").read_bytes())
    task = landing_zone(ACME).read_task(summary["task_id"])
    assert (task.status, task.kind, task.counts) == ("queued", "cognition_import",
                                                      {"conversations": 2, "messages": 4, "blocks": 9})
    assert landed_task_id(summary["landed"]) == summary["task_id"]
    reader = LandingReader(landing_zone(ACME), "main")
    list(reader.documents())
    assert reader.import_tasks == [summary["task_id"]]


def test_importing_a_file_that_is_not_an_export_writes_nothing(nexus_home):
    files = landing_zone(ACME).files
    with pytest.raises(InvalidRequest):
        import_export(files, "main", "notes.json", b'{"notes": "not a conversation"}')
    assert not Path(files.root).exists()


def test_importing_into_the_global_space_is_refused(nexus_home):
    with pytest.raises(GlobalSpaceReadOnly):
        import_export(landing_zone(ACME).files, "global", "c.json",
                      (CONVERSATIONS / "canonical_conversations.json").read_bytes())


def test_unchanged_sources_are_not_rewritten_when_ingestion_runs_again(nexus_home):
    files = landing_zone(ACME).files
    paths = [land(ACME, "canonical_conversations.json")]
    landed_conversations(files, paths)
    path = files.path("conversations/canonical/canon-warranty.json")
    before = Path(path).stat().st_mtime_ns
    again = landed_conversations(files, paths)
    assert Path(path).stat().st_mtime_ns == before and len(again.documents) == 5


def test_block_documents_skip_blank_blocks_and_name_each_block_uniquely():
    conversation = parse_export(json.dumps({"conversation_id": "c", "messages": [
        {"message_id": "m", "role": "user", "blocks": [{"index": 0, "text": "a"}, {"index": 3, "text": "  "}]}]}
    )).conversations[0]
    docs = block_documents(conversation, source_path(conversation))
    assert [(d.doc_id, d.text) for d in docs] == [("conversations/canonical/c.json#m#0", "[user]\na")]


LEASE = {"conversation_id": "flat-hunt", "title": "Flat hunting in Leeds", "created_at": "2024-03-02T18:30:00Z",
         "messages": [
             {"message_id": "p1", "role": "user", "name": "Priya", "created_at": "2024-03-02T18:31:00Z",
              "blocks": [{"index": 0, "text": "The landlord wants twelve months signed before the keys."}]},
             {"message_id": "m1", "role": "assistant", "name": "Marco",
              "blocks": [{"index": 0, "text": "Twelve months is normal there, ask about the deposit."}]}]}


def test_a_brick_carries_its_speaker_title_and_time_in_its_text_and_metadata():
    conversation = parse_export(json.dumps(LEASE)).conversations[0]
    priya, marco = block_documents(conversation, source_path(conversation))
    assert priya.text == ("[Priya (user) · Saturday 2 March 2024 · Flat hunting in Leeds]\n"
                          "The landlord wants twelve months signed before the keys.")
    assert {k: priya.metadata[k] for k in ("name", "role", "title", "created_at")} == {
        "name": "Priya", "role": "user", "title": "Flat hunting in Leeds", "created_at": "2024-03-02T18:31:00Z"}
    # a message without a time of its own is dated by its conversation
    assert marco.metadata["created_at"] == "2024-03-02T18:30:00Z" and "Marco (assistant)" in marco.text


def test_a_brick_is_embedded_without_its_who_when_line_which_only_the_full_text_index_reads(store, provider):
    land(ACME, "lease.json", json.dumps(LEASE).encode())
    records = ingest_fixture(store, provider, ACME)
    row = store.open(ACME, "main").table.search().where("text LIKE '[Priya (user)%'").limit(1).to_list()[0]
    block = "The landlord wants twelve months signed before the keys."
    assert row["text"] == f"[Priya (user) · Saturday 2 March 2024 · Flat hunting in Leeds]\n{block}"
    assert np.allclose(row["vector"], provider.embed([block])[0], atol=1e-5)
    assert not np.allclose(row["vector"], provider.embed([row["text"]])[0], atol=1e-3)
    # ingesting again embeds and writes nothing: the row is stored as it would be written
    assert upsert_records(store.open(ACME, "main"), ACME, records, provider).embedded == 0


def test_only_the_first_chunk_of_a_brick_loses_its_line_to_the_model():
    brick = {"kind": "conversation_brick"}
    assert vector_text("[Priya · Flat hunting]\nThe lease.", brick, 0) == "The lease."
    assert vector_text("[code: python]\nprint(1)", brick, 40) == "[code: python]\nprint(1)"  # a later chunk
    assert vector_text("[Priya · Flat hunting]\nThe lease.", {}, 0) == "[Priya · Flat hunting]\nThe lease."
    assert vector_text("[Priya · Flat hunting]\n  ", brick, 0) == "[Priya · Flat hunting]\n  "  # no block left


def test_recall_matches_a_brick_on_its_speaker_and_month_though_its_words_do_not_say_them(store, provider):
    land(ACME, "lease.json", json.dumps(LEASE).encode())
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")  # ingests both exports
    bricks = recall_bricks_readonly(ACME, "main", "What did Priya say in March?", k=3, store=store,
                                    provider=provider, min_score=MIN_SCORE)
    assert bricks[0].message_id == "p1"
    assert (bricks[0].name, bricks[0].title, bricks[0].created_at) == (
        "Priya", "Flat hunting in Leeds", "2024-03-02T18:31:00Z")


def test_the_vector_scan_reads_the_question_without_the_speakers_it_names(store, provider):
    land(ACME, "lease.json", json.dumps(LEASE).encode())
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    named = brick_rankings(ACME, "main", "What did Priya say about the keys?", store=store, provider=provider)
    unnamed = brick_rankings(ACME, "main", "What did they say about the keys?", store=store, provider=provider)
    # the vector side reads both alike: a brick's vector never holds its speaker's name
    assert [(r["id"], r["cosine"]) for r in named.vector] == [(r["id"], r["cosine"]) for r in unnamed.vector]
    # the text side still reads the name, from the brick's who/when line
    assert "priya" in named.terms and json.loads(named.text[0]["metadata"])["message_id"] == "p1"


def test_only_whole_speaker_names_are_taken_out_of_the_vectors_query():
    speakers = ["Inès", "Mary Ann", "Mary"]
    assert without_speakers("What did inès think of Mary Ann's dad?", speakers) == "What did they think of their dad?"
    assert without_speakers("Did Mary’s sister call Inèsa?", speakers) == "Did their sister call Inèsa?"
    assert without_speakers("Where is the tent?", speakers) == "Where is the tent?"
    assert without_speakers("Where did Priya go?", []) == "Where did Priya go?"


def test_recall_returns_only_conversation_bricks_nearest_first(store, provider):
    load_texts(store, provider, ACME, "main", {"stove-doc": "Embercore batches EC-2311 to EC-2314 are affected."})
    ingest_fixture(store, provider, ACME, "claude_conversations.json")
    bricks = recall_bricks_readonly(ACME, "main", "which Embercore stove batches are affected?", k=5,
                                    store=store, provider=provider)
    assert len(bricks) == 5
    assert all(b.source_file.startswith("conversations/") for b in bricks)
    assert [b.score for b in bricks] == sorted((b.score for b in bricks), reverse=True)


PARTS = {"conversation_id": "parts", "title": "Stove repair", "messages": [
    {"message_id": "q", "role": "user", "blocks": [{"index": 0, "text": "My camping stove will not light any more."}]},
    {"message_id": "a", "role": "assistant", "blocks": [{"index": 0, "text": "Check that the burner is dry."}]},
    {"message_id": "p", "role": "assistant", "blocks": [{"index": 0, "text": "Order spare ZX-4471 from the depot."}]}]}


def test_recall_ranks_the_bricks_of_both_signals_by_their_own_calibrated_score(store, provider):
    land(ACME, "parts.json", json.dumps(PARTS).encode())
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    topic = "stove ZX-4471 ignition"
    rankings = brick_rankings(ACME, "main", topic, store=store, provider=provider, depth=3)
    assert json.loads(rankings.text[0]["metadata"])["message_id"] == "p"  # the only one with ZX-4471
    both = ranked(rankings)  # every brick either signal found, once, by score
    assert sorted(row["id"] for row, _ in both) == sorted({r["id"] for r in (*rankings.text, *rankings.vector)})
    assert [score for _, score in both] == sorted((score for _, score in both), reverse=True)
    bricks = recall_bricks_readonly(ACME, "main", topic, k=5, store=store, provider=provider)
    assert bricks[0].message_id == "p"
    asked, terms = provider.embed([topic])[0], query_terms(topic)
    found = brick_rankings(ACME, "main", topic, store=store, provider=provider)  # recall reads them this deep
    weights = term_weights(terms, list({r["id"]: r["text"] for r in (*found.text, *found.vector)}.values()))
    words = {t: w for w in words_of(topic) for t in query_terms(w)}  # each term's word in the topic
    for brick in bricks:  # each score is the brick's own evidence on scoring's scale, and the order follows it
        # the block is embedded without its who/when line (these short blocks are one chunk each)
        block = vector_text(brick.text, {"kind": "conversation_brick"}, 0)
        cosine = float(provider.embed([block])[0] @ asked)
        # a term the brick lacks is held by its block's nearest word, above NEAR_FLOOR (test_cognition_near_words)
        near = {t: max(float(provider.embed([w])[0] @ provider.embed([words[t]])[0]) for w in words_of(block))
                for t in terms if t in words}
        credit = term_credits(terms, query_terms(brick.text), near)
        held = (1 - RARITY) * sum(credit.values()) / len(terms) + RARITY * sum(
            weights[t] * c for t, c in credit.items()) / sum(weights.values())
        expected = hybrid_relevance(vector_relevance(cosine), held, LIFT)
        assert brick.score == pytest.approx(expected, abs=1e-4)
    assert [b.score for b in bricks] == sorted((b.score for b in bricks), reverse=True)


DINNERS = {"conversation_id": "dinners", "title": "Weekend plans", "messages": [
    {"message_id": f"m{i}", "role": "user", "blocks": [{"index": 0, "text": text}]} for i, text in enumerate([
        "I think dinner out at a restaurant on Friday would be nice.",
        "Honestly I think any restaurant dinner beats cooking tonight.",
        "Do you think the restaurant near work does dinner on Sundays?",
        "I think we had dinner at that restaurant last year.",
        "Nonna Rosa's was overpriced and slow.",
    ])]}


def test_a_brick_holding_the_querys_rare_name_outranks_bricks_sharing_only_its_common_words(store, provider):
    land(ACME, "dinners.json", json.dumps(DINNERS).encode())
    ingest_fixture(store, provider, ACME)
    topic = "What did you think of dinner at Nonna Rosa's restaurant?"
    rankings = brick_rankings(ACME, "main", topic, store=store, provider=provider)
    # counted alike (recall before round 22), the query's common words outweigh its name
    by_count = ranked(rankings, 0.5, rarity=0.0)
    assert json.loads(by_count[0][0]["metadata"])["message_id"] != "m4"
    # weighted by how few of the bricks found hold them, the name counts most
    bricks = recall_bricks_readonly(ACME, "main", topic, k=5, store=store, provider=provider)
    assert bricks[0].message_id == "m4"
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
    records = ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    handle = store.open(ACME, "main").table
    handle.checkout(handle.version)
    with pytest.raises(ValueError, match="cannot be modified when a specific version is checked out"):
        handle.delete("true")
    assert store.open(ACME, "main").count() == len(records)


@pytest.fixture(scope="module")
def canonical_home(tmp_path_factory, provider) -> Path:
    """canonical_conversations.json ingested once for the module's parametrized tests."""
    with nexus_home_at(tmp_path_factory.mktemp("canonical") / "nexus-home") as home:
        ingest_fixture(SpaceStore(), provider, ACME, "canonical_conversations.json")
    return home


@pytest.mark.parametrize("k", [0, -1, 201, "15", True])
def test_recall_refuses_a_k_outside_1_to_200(canonical_home, nexus_home, provider, k):
    store = copy_home(canonical_home, nexus_home)
    with pytest.raises(InvalidRequest):
        recall_bricks_readonly(ACME, "main", "shipping", k=k, store=store, provider=provider)
