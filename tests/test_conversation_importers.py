"""Importers: ChatGPT and Claude exports and canonical JSON, all read into the canonical form."""

import json
from pathlib import Path

import pytest

from nexus_query.cognition.conversations import canonical_conversation, parse_export
from nexus_query.errors import InvalidRequest

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def by_id(parsed):
    return {c.conversation_id: c for c in parsed.conversations}


def texts(conversation) -> list[str]:
    return [b.text for m in conversation.messages for b in m.blocks]


def texts_of(message) -> list[str]:
    return [b.text for b in message.blocks]


def test_chatgpt_follows_the_active_thread_from_current_node_and_leaves_abandoned_branches_out():
    returns = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-returns"]
    assert [m.message_id for m in returns.messages] == ["n2", "n3", "n4b", "n5b", "n6", "n7", "n8", "n9"]
    assert not any("ABANDONED" in t for t in texts(returns))


def test_chatgpt_without_current_node_follows_the_newest_leaf():
    stove = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-stove"]
    assert [m.message_id for m in stove.messages] == ["m1", "m2b"]
    assert "OLD-REGENERATION" not in " ".join(texts(stove))


def test_chatgpt_content_types_become_labelled_blocks_and_text_parts_stay_verbatim():
    returns = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-returns"]
    messages = {m.message_id: m for m in returns.messages}
    assert [(b.index, b.text) for b in messages["n3"].blocks] == [
        (0, "Yes. Acme accepts returns of lightly used tents within 60 days of delivery for a full refund."),
        (1, "The tent must be dry and clean, with the fly, all poles, stakes and the stuff sack."),
    ]
    assert [b.text for b in messages["n4b"].blocks] == [
        "[image: file-service://file-mildew123 1024x768]",
        "This tent came back with mildew on the fly. Can we still refund it?",
        "[audio_transcription]\nAlso two of the poles are bent.",
    ]
    assert messages["n5b"].blocks[0].text == ("[thinking: Checking the mildew rule]\n"
                                              "Mildew or missing poles mean a partial refund.")
    assert messages["n6"].blocks[0].text == "[code: python]\nrefund = 249.00 * 0.5\nprint(refund)"
    assert (messages["n7"].role, messages["n7"].blocks[0].text) == ("tool", "[execution_output]\n124.5")
    unknown = messages["n9"].blocks[0].text
    assert unknown.startswith("[canvas_document] ") and json.loads(unknown.split(" ", 1)[1]) == {
        "title": "Refund note", "body": "Partial refund: 124.50 dollars (mildew, bent poles)."}


def test_chatgpt_hidden_empty_system_message_is_dropped_and_times_become_iso_utc():
    returns = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-returns"]
    assert "system" not in {m.role for m in returns.messages}
    assert returns.messages[0].created_at == "2024-05-01T10:40:10.000Z"


def test_empty_conversations_and_null_titles_are_read_and_counted_but_hold_nothing():
    parsed = parse_export(fixture("chatgpt_conversations.json"))
    conversations = by_id(parsed)
    assert conversations["conv-gpt-empty"].messages == () and conversations["conv-gpt-empty"].title is None
    assert conversations["conv-gpt-stove"].title is None
    assert parsed.summary() == {"format": "chatgpt", "conversations": 2, "empty_conversations": 1,
                                "messages": 10, "blocks": 13}


def test_claude_content_blocks_text_thinking_and_tool_use_become_blocks_in_order():
    valve = by_id(parse_export(fixture("claude_conversations.json")))["claude-conv-valve"]
    user, assistant = valve.messages
    assert (user.role, assistant.role) == ("user", "assistant")
    assert [b.text for b in user.blocks] == [
        "A customer brought in an Embercore stove from batch EC-2312. What do we do?",
        "[attachment: receipt.txt]\nReceipt 4471: Embercore stove, 59.00 dollars",
        "[file: stove-photo.jpg]",
    ]
    assert [b.text for b in assistant.blocks] == [
        "[thinking]\nEC-2312 lies within the affected range EC-2311 to EC-2314.",
        '[tool_use: inventory_lookup] {"batch":"EC-2312","sku":"EMB-1"}',
        "[tool_result: inventory_lookup]\nheld: 3 units",
        "Replace the stove with one from another batch, or refund it in full. No receipt is needed.",
    ]
    assert [b.index for b in assistant.blocks] == [0, 1, 2, 3]  # the whitespace-only block is not a block


def test_claude_older_text_only_export_reads_the_message_text():
    old = by_id(parse_export(fixture("claude_conversations.json")))["claude-conv-old"]
    assert [(m.message_id, m.role, texts_of(m)) for m in old.messages] == [
        ("om-1", "user", ["When do stores close in winter?"]),
        ("om-2", "assistant", ["Stores close at 7 pm from November to February."]),
    ]
    assert old.created_at == "2023-11-01T08:00:00.000000Z"


def test_claude_empty_conversation_with_blank_name_has_no_messages_and_a_null_title():
    parsed = parse_export(fixture("claude_conversations.json"))
    empty = by_id(parsed)["claude-conv-empty"]
    assert (empty.messages, empty.title) == ((), None)
    assert parsed.summary()["empty_conversations"] == 1


def test_canonical_json_keeps_its_block_indexes_and_round_trips_through_a_source_file():
    parsed = parse_export(fixture("canonical_conversations.json"))
    warranty = by_id(parsed)["canon-warranty"]
    assert [b.index for b in warranty.messages[1].blocks] == [0, 2]
    again = canonical_conversation(json.loads(warranty.to_bytes()))
    assert again == warranty


def test_a_single_canonical_conversation_object_is_accepted():
    one = {"conversation_id": "c1", "messages": [{"message_id": "m", "role": "user", "created_at": None,
                                                   "blocks": [{"index": 0, "text": "hi"}]}]}
    assert [c.conversation_id for c in parse_export(json.dumps(one)).conversations] == ["c1"]


@pytest.mark.parametrize("bad, where", [
    (b"{not json", "not valid JSON"),
    (b'{"hello": "world"}', "not a conversation export"),
    (b'[{"title": "no messages, mapping or chat_messages"}]', "conversations[0]"),
])
def test_files_that_are_not_conversation_exports_are_rejected_with_a_clear_error(bad, where):
    with pytest.raises(InvalidRequest) as err:
        parse_export(bad)
    assert where in err.value.message


@pytest.mark.parametrize("message, field", [
    ({"message_id": "", "role": "user", "blocks": []}, "message_id"),
    ({"message_id": "m", "role": None, "blocks": []}, "role"),
    ({"message_id": "m", "role": "user", "blocks": [{"index": 0, "text": 5}]}, "text"),
    ({"message_id": "m", "role": "user", "blocks": [{"index": 0, "text": "a"}, {"index": 0, "text": "b"}]}, "index"),
    ({"message_id": "m", "role": "user", "blocks": [{"index": -1, "text": "a"}]}, "index"),
])
def test_canonical_conversations_are_validated_strictly(message, field):
    with pytest.raises(InvalidRequest) as err:
        parse_export(json.dumps({"conversation_id": "c", "messages": [message]}))
    assert err.value.details["field"].endswith(field)


def test_repeated_message_ids_or_conversation_ids_are_rejected_because_citations_would_be_ambiguous():
    message = {"message_id": "m", "role": "user", "blocks": [{"index": 0, "text": "a"}]}
    with pytest.raises(InvalidRequest, match="repeats"):
        parse_export(json.dumps({"conversation_id": "c", "messages": [message, message]}))
    conversation = {"conversation_id": "c", "messages": [message]}
    with pytest.raises(InvalidRequest, match="unique"):
        parse_export(json.dumps([conversation, conversation]))


def test_a_source_format_that_is_not_a_safe_id_is_refused_since_it_names_a_folder():
    with pytest.raises(InvalidRequest) as err:
        parse_export(json.dumps({"conversation_id": "c", "source_format": "../x", "messages": []}))
    assert err.value.details["field"].endswith("source_format")
