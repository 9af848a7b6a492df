"""Lossless import, as a property: every non-blank string a message's content holds in an export (ChatGPT
or Claude, generated trees with every branch and content shape, plus the fixtures) appears in the
canonical blocks of its conversation."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_query.cognition.conversations import parse_export

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
# What is not text: the shape's name, and keys naming identifiers, timestamps, signatures and serialization
# labels (they stay in the archived original only). Spelled out here, independently of the importer.
SHAPE_KEYS = {"content_type", "type"}
NOT_TEXT = re.compile(r"^(id|uuid|ids|signature|serialization_title)$|_(id|ids|uuid)$|timestamp|"
                      r"^(create|update)_time$|^(created|updated)_at$")
KNOWN_CHATGPT = ("text", "multimodal_text", "code", "execution_output", "tether_quote", "tether_browsing_display",
                 "sonic_webpage", "thoughts", "reasoning_recap", "system_error", "user_editable_context",
                 "model_editable_context")


def string_leaves(value: Any, key: str | None = None) -> Iterator[str]:
    if key is not None and (key in SHAPE_KEYS or NOT_TEXT.search(key)):
        return
    if isinstance(value, str):
        if value.strip():
            yield value.strip()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from string_leaves(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from string_leaves(v)


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def chatgpt_sources(conversation: dict) -> Iterator[str]:
    for node in (conversation.get("mapping") or {}).values():
        message = node.get("message") if isinstance(node, dict) else None
        if isinstance(message, dict):
            yield from string_leaves(message.get("content"))


def claude_sources(conversation: dict) -> Iterator[str]:
    for message in conversation.get("chat_messages") or []:
        content = message.get("content")
        yield from string_leaves(content)
        for key in ("attachments", "files", "files_v2"):
            yield from string_leaves(message.get(key))
        text = message.get("text")
        said = "".join(b["text"] for b in content or [] if isinstance(b, dict) and isinstance(b.get("text"), str))
        # `text` restating the message's text blocks is the same text, not more of it
        if isinstance(text, str) and text.strip() and not (content and squeezed(text) == squeezed(said)):
            yield text.strip()


def kept(text: str, blocks: list[str]) -> bool:
    """In a block verbatim, or, inside a block's labelled JSON, in its JSON spelling."""
    spelled = json.dumps(text, ensure_ascii=False)[1:-1]
    return any(text in b or spelled in b for b in blocks)


def assert_lossless(export: list[dict]) -> None:
    parsed = {c.conversation_id: c for c in parse_export(json.dumps(export)).conversations}
    for raw in export:
        conversation = parsed[str(raw.get("conversation_id") or raw.get("id") or raw.get("uuid"))]
        blocks = [b.text for m in conversation.messages for b in m.blocks]
        sources = chatgpt_sources(raw) if "mapping" in raw else claude_sources(raw)
        lost = [s for s in sources if not kept(s, blocks)]
        assert not lost, f"{conversation.conversation_id}: lost {lost[:3]}"
        assert len({m.message_id for m in conversation.messages}) == len(conversation.messages)
        ids = [m.message_id for m in conversation.messages]
        for position, message in enumerate(conversation.messages):  # parents come first
            assert message.parent_id is None or message.parent_id in ids[:position]
        assert (conversation.current_message_id in ids) if ids else conversation.current_message_id is None


# --- generated exports ---------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
words = st.text("abcdefgh _", min_size=1, max_size=8)
json_value = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | text,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
                          max_leaves=8)
extra_fields = st.dictionaries(words.map(lambda w: f"x{w}"), json_value, max_size=2)


@st.composite
def chatgpt_part(draw) -> Any:
    kind = draw(st.sampled_from(["str", "image_asset_pointer", "image", "audio_transcription", "audio_asset_pointer",
                                 "unknown", "null"]))
    if kind == "str":
        return draw(text)
    if kind == "null":
        return None
    if kind == "image_asset_pointer":
        return {"content_type": kind, "asset_pointer": draw(text), "size_bytes": draw(st.integers(0, 9)),
                "width": draw(st.integers(1, 9)), "height": draw(st.integers(1, 9)),
                "metadata": {"dalle": draw(st.none() | st.fixed_dictionaries({"prompt": text, "gen_id": text}))},
                **draw(extra_fields)}
    if kind == "image":
        return {"type": "image", "url": draw(text), **draw(extra_fields)}
    if kind == "audio_transcription":
        return {"content_type": kind, "text": draw(text), "direction": draw(st.sampled_from(["in", "out"])),
                "decoding_id": draw(text), **draw(extra_fields)}
    if kind == "audio_asset_pointer":
        return {"content_type": kind, "asset_pointer": draw(text), "format": "wav", **draw(extra_fields)}
    return {"content_type": draw(words.map(lambda w: f"new_{w}")), **draw(extra_fields), "body": draw(json_value)}


@st.composite
def chatgpt_content(draw) -> dict:
    kind = draw(st.sampled_from(KNOWN_CHATGPT + ("unknown",)))
    parts = st.lists(chatgpt_part() if kind == "multimodal_text" else text, max_size=3)
    extra = draw(extra_fields)
    if kind in ("text", "multimodal_text"):
        return {"content_type": kind, "parts": draw(parts), **extra}
    if kind in ("code", "execution_output", "tether_quote", "sonic_webpage"):
        body = {"text": draw(text)} if draw(st.booleans()) else {"parts": draw(parts)}  # both are seen
        labels = {"language": draw(text)} if kind == "code" else {"title": draw(text), "url": draw(text)}
        return {"content_type": kind, **body, **(labels if kind != "execution_output" else {}), **extra}
    if kind == "tether_browsing_display":
        return {"content_type": kind, "result": draw(text), "summary": draw(st.none() | text), **extra}
    if kind == "thoughts":
        summary = text | st.lists(st.fixed_dictionaries({"type": st.just("summary"), "text": text}), max_size=2)
        thought = st.fixed_dictionaries({"summary": summary, "content": text, "chunks": st.lists(text, max_size=2),
                                         "finished": st.booleans()})
        return {"content_type": kind, "thoughts": draw(text | st.lists(thought | text, max_size=3)),
                "source_analysis_msg_id": draw(text), **extra}
    if kind == "reasoning_recap":
        return {"content_type": kind, "content": draw(text), **extra}
    if kind == "system_error":
        return {"content_type": kind, "name": draw(text), "text": draw(text), **extra}
    if kind in ("user_editable_context", "model_editable_context"):
        keys = ("user_profile", "user_instructions") if kind == "user_editable_context" else ("model_set_context",)
        return {"content_type": kind, **{k: draw(text) for k in keys}, **extra}
    return {"content_type": draw(words.map(lambda w: f"new_{w}")), "payload": draw(json_value), **extra}


@st.composite
def chatgpt_export(draw) -> list[dict]:
    size = draw(st.integers(1, 8))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, size)]
    ids = [f"node-{i}" for i in range(size)]
    mapping = {}
    for i, node_id in enumerate(ids):
        message = None if i == 0 else {
            "id": node_id, "author": {"role": draw(st.sampled_from(["user", "assistant", "tool", "system"]))},
            "create_time": draw(st.none() | st.floats(1e9, 2e9)), "content": draw(chatgpt_content())}
        mapping[node_id] = {"id": node_id, "message": message, "parent": ids[parents[i]] if i else None,
                            "children": [ids[j] for j in range(size) if parents[j] == i and j]}
    order = draw(st.permutations(ids))
    current = draw(st.none() | st.sampled_from(ids))
    return [{"conversation_id": "gen-gpt", "title": draw(text), "current_node": current,
             "mapping": {k: mapping[k] for k in order}}]


@st.composite
def claude_block(draw) -> dict:
    kind = draw(st.sampled_from(["text", "thinking", "tool_use", "tool_result", "unknown"]))
    extra = draw(extra_fields)
    stamps = {"start_timestamp": "2025-01-01T00:00:00Z", "stop_timestamp": "2025-01-01T00:00:01Z"}
    if kind == "text":
        citations = draw(st.lists(st.fixed_dictionaries({"url": text, "title": text}), max_size=2))
        return {"type": kind, "text": draw(text), "citations": citations, **stamps, **extra}
    if kind == "thinking":
        return {"type": kind, "thinking": draw(text), "summaries": [{"summary": draw(text)}], "cut_off": False,
                "signature": "c2lnbmF0dXJl", **extra}
    if kind == "tool_use":
        return {"type": kind, "name": draw(text), "input": draw(st.dictionaries(words, json_value, max_size=3)),
                "id": "toolu_1", **extra}
    if kind == "tool_result":
        inner = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}) | text, max_size=2)
        return {"type": kind, "name": draw(text), "content": draw(inner | text), "is_error": draw(st.booleans()),
                "tool_use_id": "toolu_1", **extra}
    return {"type": draw(words.map(lambda w: f"new_{w}")), "payload": draw(json_value), **extra}


@st.composite
def claude_export(draw) -> list[dict]:
    size = draw(st.integers(0, 6))
    branched = draw(st.booleans())
    ids = [f"msg-{i}" for i in range(size)]
    messages = []
    for i, uuid in enumerate(ids):
        blocks = draw(st.lists(claude_block(), max_size=3)) if draw(st.booleans()) else None
        joined = "\n\n".join(b["text"] for b in blocks or [] if b["type"] == "text")
        message = {"uuid": uuid, "sender": draw(st.sampled_from(["human", "assistant"])),
                   "created_at": f"2025-01-01T00:00:{i:02d}Z", "text": draw(st.just(joined) | text),
                   "attachments": draw(st.lists(st.fixed_dictionaries(
                       {"file_name": st.just("") | text, "file_type": text, "file_size": st.integers(0, 9),
                        "extracted_content": text}), max_size=2)),
                   "files": draw(st.lists(st.fixed_dictionaries({"file_name": text, "file_uuid": text}), max_size=2))}
        if blocks is not None:
            message["content"] = blocks
        if branched:
            message["parent_message_uuid"] = (ids[draw(st.integers(0, i - 1))] if i and draw(st.booleans())
                                              else "00000000-0000-4000-8000-000000000000")
        messages.append(message)
    conversation = {"uuid": "gen-claude", "name": draw(text), "chat_messages": messages}
    if branched and ids and draw(st.booleans()):
        conversation["current_leaf_message_uuid"] = draw(st.sampled_from(ids))
    return [conversation]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chatgpt_export())
def test_every_text_of_every_branch_of_a_generated_chatgpt_export_is_in_the_canonical_blocks(export):
    assert_lossless(export)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claude_export())
def test_every_text_of_a_generated_claude_export_is_in_the_canonical_blocks(export):
    assert_lossless(export)


EXAMPLE_EXPORTS = Path(__file__).parents[1] / "examples" / "data"
EXPORTS = sorted([p for p in FIXTURES.glob("*.json") if "canonical" not in p.name]
                 + list(EXAMPLE_EXPORTS.glob("*/conversations/*.json")))


@pytest.mark.parametrize("path", EXPORTS, ids=[p.name for p in EXPORTS])
def test_every_text_of_each_fixture_and_example_export_is_in_the_canonical_blocks(path):
    assert_lossless(json.loads(path.read_bytes()))


def test_the_property_notices_a_lost_text():
    """The check itself can fail: a text the importer never saw is reported lost."""
    export = json.loads((FIXTURES / "chatgpt_conversations.json").read_bytes())
    parsed_blocks = [b.text for c in parse_export(json.dumps(export)).conversations
                     for m in c.messages for b in m.blocks]
    assert not kept("a sentence nobody wrote", parsed_blocks)
