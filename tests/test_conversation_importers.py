"""Importers: ChatGPT and Claude exports and canonical JSON, all read into the canonical form."""

import json
from pathlib import Path

import pytest

from nexus_query.cognition.canonical_export import canonical_conversation
from nexus_query.cognition.conversations import parse_export
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


def test_chatgpt_keeps_every_branch_and_walks_the_current_thread_from_current_node():
    returns = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-returns"]
    assert [(m.message_id, m.parent_id) for m in returns.messages] == [
        ("n2", None), ("n3", "n2"), ("n4a", "n3"), ("n5a", "n4a"), ("n4b", "n3"), ("n5b", "n4b"), ("n6", "n5b"),
        ("n7", "n6"), ("n8", "n7"), ("n9", "n8")]
    assert returns.current_message_id == "n9"
    assert [m.message_id for m in returns.current_thread()] == ["n2", "n3", "n4b", "n5b", "n6", "n7", "n8", "n9"]
    assert [m.message_id for m in returns.alternates()] == ["n4a", "n5a"]
    assert any("ABANDONED-BRANCH-ANSWER" in t for t in texts(returns))


def test_chatgpt_without_current_node_takes_the_newest_leaf_as_current_and_keeps_the_older_regeneration():
    stove = by_id(parse_export(fixture("chatgpt_conversations.json")))["conv-gpt-stove"]
    assert [m.message_id for m in stove.current_thread()] == ["m1", "m2b"]
    assert [(m.message_id, m.parent_id) for m in stove.alternates()] == [("m2a", "m1")]
    assert "OLD-REGENERATION: only batch EC-2311." in texts(stove)


def test_chatgpt_message_ids_are_the_exports_own_and_stable_across_parses():
    first = parse_export(fixture("chatgpt_content_shapes.json")).conversations[0]
    again = parse_export(fixture("chatgpt_content_shapes.json")).conversations[0]
    assert first == again and first.to_bytes() == again.to_bytes()
    export = json.loads(fixture("chatgpt_content_shapes.json"))[0]
    assert {m.message_id for m in first.messages} <= set(export["mapping"])


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
        "[audio_transcription: in]\nAlso two of the poles are bent.",
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
                                "messages": 13, "alternate_messages": 3, "blocks": 16}


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
        "[thinking: Checking the batch range]\nEC-2312 lies within the affected range EC-2311 to EC-2314.",
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


# --- every content shape (fixtures chatgpt_content_shapes.json, claude_content_shapes.json) ---------------

def shapes(name: str, conversation_id: str):
    conversation = by_id(parse_export(fixture(name)))[conversation_id]
    return conversation, {m.message_id: texts_of(m) for m in conversation.messages}


def test_chatgpt_every_content_shape_keeps_its_text_under_a_label():
    _, blocks = shapes("chatgpt_content_shapes.json", "gpt-shapes")
    assert blocks["ctx"] == ["[user_profile]\nI manage the Boulder store.",
                             "[user_instructions]\nAnswer in metric units."]
    assert blocks["u1"] == [
        "[image: file-service://file-TentPhoto1 1536x1024]",
        "[image: https://example.com/rainfly.png]",
        "[audio_transcription: in]\nThe rainfly seam is leaking after the storm.",
        "[audio: sediment://file-Audio1]",
        '[audio_asset_pointer fields] {"format":"wav"}',
        "Is this covered by the seam warranty?",
        "[attachment: receipt-9.pdf]",
    ]
    assert blocks["a1"] == ["[thinking: Seam warranty terms]\nSeam tape failures within two years are covered."]
    assert blocks["a2"] == ["[thinking]\nThe photo shows peeling tape along the ridge line."]  # thoughts as a string
    assert blocks["a3"] == ["[reasoning_recap] Thought for 9 seconds"]
    assert blocks["a4"] == ["[code: python]\ndays = (date(2025,1,1) - date(2023,6,1)).days\nprint(days)"]  # in parts
    assert blocks["t1"] == ["[execution_output]\n580"]  # in parts
    assert blocks["a5"] == ['[code: unknown]\nsearch("seam warranty acme")']  # in text
    assert blocks["t2"] == ["[browsing]\n# Acme seam warranty\nTwo years on seam tape.",
                            "[browsing]\nAcme warranty page"]
    assert blocks["t3"] == ["[quote: Acme warranty https://acme.example/warranty acme.example]\n"
                            "Seam tape is warranted for two years from purchase."]  # in parts
    assert blocks["t4"] == [
        "[quote: Tent care https://acme.example/care acme.example]\nDry the tent fully before storage."]
    assert blocks["t5"] == ["[system_error: ToolTimeout]\nThe browsing tool timed out after 30 seconds."]
    assert blocks["t6"] == [
        "[webpage: Returns https://acme.example/returns acme.example]\nReturns are accepted within 60 days.",
        "[webpage: Returns https://acme.example/returns acme.example]\n60-day returns"]
    unknown = blocks["a8"][0]
    assert unknown.startswith("[canvas_document] ") and json.loads(unknown.split(" ", 1)[1]) == {
        "title": "Warranty note", "body": "Replaced under seam warranty (580 days)."}


def test_chatgpt_branched_conversation_keeps_edited_and_regenerated_branches_off_the_current_thread():
    conversation, _ = shapes("chatgpt_content_shapes.json", "gpt-shapes")
    thread = [m.message_id for m in conversation.current_thread()]
    assert thread[-4:] == ["a6", "u2b", "a7c", "a8"] and conversation.current_message_id == "a8"
    assert [(m.message_id, m.parent_id) for m in conversation.alternates()] == [
        ("u2a", "a6"), ("a7a", "u2a"), ("a7b", "u2b")]
    # the hidden, empty system message is the only one left out; its child hangs from the root instead
    assert "sys" not in {m.message_id for m in conversation.messages}
    assert conversation.messages[0].message_id == "ctx" and conversation.messages[0].parent_id is None


def test_claude_every_content_shape_keeps_its_text_and_unknown_blocks_are_labelled_json():
    _, blocks = shapes("claude_content_shapes.json", "claude-shapes")
    assert blocks["c-1"] == [
        "Here is the inspection log from the Boulder store.",
        "[attachment: (txt)]\nValve EC-2313: slow leak at 2 bar.\nValve EC-2314: no leak.",  # a paste: no file name
        "[attachment: checklist.md (text/markdown)]\n1. Check the O-ring.\n2. Check the thread.",
        "[file: valve-closeup.jpg]",
        '[file fields] {"file_kind":"image","preview_url":"/api/files/f-1/preview"}',  # files_v2 adds these only
    ]
    assert blocks["c-2"] == [
        "[thinking: Reading the log]\nEC-2313 leaks at 2 bar, which fails the 3 bar test.",
        '[tool_use: recall_lookup] {"batch":"EC-2313"}',
        '[tool_use fields] {"message":"Looking up the recall list"}',
        "[tool_result: recall_lookup]\nEC-2313 is on the recall list.",
        "[tool_result error: stock_lookup]\nstock service unavailable",
        "EC-2313 fails the pressure test and is recalled: take it out of service.",
        '[text fields] {"citations":[{"title":"Embercore recall notice","url":"https://acme.example/recall"}]}',
        '[voice_note] {"text":"Call the customer back tomorrow.","title":"Follow-up"}',
    ]


def test_claude_branches_follow_parent_message_uuid_and_current_leaf_message_uuid():
    conversation, _ = shapes("claude_content_shapes.json", "claude-shapes")
    assert [m.message_id for m in conversation.current_thread()] == ["c-1", "c-2", "c-3b", "c-4b"]
    assert [(m.message_id, m.parent_id) for m in conversation.alternates()] == [("c-3a", "c-2"), ("c-4a", "c-3b")]
    assert conversation.messages[0].parent_id is None  # the sentinel root uuid is no message


def test_claude_message_text_that_says_more_than_its_blocks_is_kept_as_its_own_block():
    export = [{"uuid": "c", "chat_messages": [{"uuid": "m", "sender": "human", "text": "typed text, not in blocks",
                                                "content": [{"type": "text", "text": "block text"}]}]}]
    [conversation] = parse_export(json.dumps(export)).conversations
    assert texts(conversation) == ["[text]\ntyped text, not in blocks", "block text"]


def test_a_linear_claude_export_without_parent_uuids_is_one_thread_in_order():
    conversation, _ = shapes("claude_content_shapes.json", "claude-text-only")
    assert [(m.message_id, m.parent_id) for m in conversation.messages] == [("o-1", None), ("o-2", "o-1")]
    assert conversation.current_message_id == "o-2"


def test_a_cyclic_chatgpt_mapping_is_read_without_looping_and_keeps_every_message():
    def node(i, parent):
        return {"id": i, "parent": parent, "children": [],
                "message": {"id": i, "author": {"role": "user"}, "content": {"content_type": "text", "parts": [i]}}}
    export = [{"conversation_id": "loop", "current_node": "a", "mapping": {"a": node("a", "b"), "b": node("b", "a")}}]
    [conversation] = parse_export(json.dumps(export)).conversations
    assert [(m.message_id, m.parent_id) for m in conversation.messages] == [("a", None), ("b", "a")]


def test_canonical_tree_round_trips_and_a_parent_must_be_an_earlier_message():
    conversation, _ = shapes("chatgpt_content_shapes.json", "gpt-shapes")
    again = canonical_conversation(json.loads(conversation.to_bytes()))
    assert again == conversation and again.alternates() == conversation.alternates()
    tree = json.loads(conversation.to_bytes())
    tree["messages"][0]["parent_id"] = tree["messages"][-1]["message_id"]
    with pytest.raises(InvalidRequest) as err:
        canonical_conversation(tree)
    assert err.value.details["field"].endswith("parent_id")
    tree = json.loads(conversation.to_bytes())
    tree["current_message_id"] = "nowhere"
    with pytest.raises(InvalidRequest, match="current_message_id"):
        canonical_conversation(tree)


def test_canonical_messages_without_parent_ids_form_one_thread_ending_at_the_last():
    warranty = by_id(parse_export(fixture("canonical_conversations.json")))["canon-warranty"]
    assert [(m.message_id, m.parent_id) for m in warranty.messages] == [("w-1", None), ("w-2", "w-1")]
    assert warranty.current_message_id == "w-2" and warranty.alternates() == ()


def test_chatgpt_thought_summaries_given_as_lists_of_items_read_as_text():
    content = {"content_type": "thoughts", "thoughts": [
        {"summary": [{"type": "summary", "text": "Checking stock"}, {"type": "summary", "text": "Pricing"}],
         "content": "Two tents are left.", "chunks": [], "finished": True}]}
    export = [{"conversation_id": "c", "mapping": {"n": {"id": "n", "parent": None, "children": [], "message": {
        "id": "n", "author": {"role": "assistant"}, "content": content}}}}]
    [conversation] = parse_export(json.dumps(export)).conversations
    assert texts(conversation) == ["[thinking: Checking stock; Pricing]\nTwo tents are left."]


def test_generated_image_metadata_keeps_its_words_but_not_its_ids_or_serialization_labels():
    part = {"content_type": "image_asset_pointer", "asset_pointer": "sediment://file_1", "width": 1024, "height": 1536,
            "size_bytes": 3, "metadata": {"dalle": {"gen_id": "g-1", "prompt": "",
                                                    "serialization_title": "DALL-E generation metadata"},
                                          "generation": {"gen_id": "g-1", "orientation": "portrait",
                                                         "serialization_title": "Image Generation metadata"}}}
    export = [{"conversation_id": "c", "mapping": {"n": {"id": "n", "parent": None, "children": [], "message": {
        "id": "n", "author": {"role": "tool"}, "content": {"content_type": "multimodal_text", "parts": [part]}}}}}]
    [conversation] = parse_export(json.dumps(export)).conversations
    assert texts(conversation) == [
        "[image: sediment://file_1 1024x1536]",
        '[image_asset_pointer fields] {"metadata":{"generation":{"orientation":"portrait"}}}']


def test_a_claude_export_that_repeats_a_uuid_keeps_both_messages():
    export = [{"uuid": "c", "chat_messages": [
        {"uuid": "m", "sender": "human", "text": "first"}, {"uuid": "m", "sender": "assistant", "text": "second"}]}]
    [conversation] = parse_export(json.dumps(export)).conversations
    assert [(m.message_id, m.parent_id, texts_of(m)) for m in conversation.messages] == [
        ("m", None, ["first"]), ("m~1", "m", ["second"])]


def test_a_lone_attachment_or_file_where_a_list_belongs_is_kept_as_text_not_a_crash():
    export = json.loads(fixture("claude_conversations.json"))
    message = export[0]["chat_messages"][0]
    message["attachments"] = {"file_name": "warranty.pdf", "extracted_content": "Seams are covered for 5 years."}
    message["files"], message["files_v2"] = 3, "photo.jpg"
    first = parse_export(json.dumps(export).encode()).conversations[0]
    kept = texts_of(first.messages[0])
    assert any("Seams are covered for 5 years." in t for t in kept)
    assert any("photo.jpg" in t for t in kept) and any("3" in t for t in kept)


def test_canonical_blocks_that_are_not_a_list_are_refused_with_the_field_named():
    tree = json.loads(fixture("canonical_conversations.json"))
    tree["conversations"][0]["messages"][0]["blocks"] = 7
    with pytest.raises(InvalidRequest) as err:
        parse_export(json.dumps(tree).encode())
    assert err.value.details["field"].endswith("messages[0].blocks")
