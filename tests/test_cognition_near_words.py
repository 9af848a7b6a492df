"""Recall's word-level soft match: a query term a brick lacks is held in part by the brick's nearest word."""

import json

import numpy as np
import pytest

from nexus_query.cognition.bricks import block_documents, own_text, source_path
from nexus_query.cognition.conversations import parse_export
from nexus_query.cognition.near_words import WordVectors, nearest_word_cosines, words_of
from nexus_query.cognition.recall import (
    NEAR_FLOOR,
    asked_words,
    brick_rankings,
    ranked,
    recall_bricks_readonly,
    term_credits,
    topic_matches,
)
from nexus_query.context import RequestContext
from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider
from nexus_query.scoring import query_terms
from tests.helpers import ingest_fixture, land

ACME = RequestContext("acme")
BACK = "My lower back is wrecked after lifting a sofa badly, so I'm seeing a physio."
CHAT = {"conversation_id": "catch-up", "title": "Catching up", "created_at": "2024-05-02T09:00:00Z", "messages": [
    {"message_id": f"m{i}", "role": "user", "name": name, "blocks": [{"index": 0, "text": text}]}
    for i, (name, text) in enumerate([
        ("Marco", "Everyone at work has a cold."),
        ("Marco", BACK),
        ("Priya", "We bought a new sofa for the lounge."),
        ("Priya", "The train was late again this morning."),
    ])]}


def cosine_of_nearest(provider, word: str, text: str) -> float:
    """Independently of near_words: each word embedded by itself, the best cosine with ``word``."""
    asked = provider.embed([word])[0]
    return max(float(provider.embed([w])[0] @ asked) for w in words_of(text))


def test_a_bricks_words_are_its_letters_only_words_lowercased_once_each():
    assert words_of("Inès's café: 2 cafés, CAFÉ again! x") == ["inès", "café", "cafés", "again"]


def test_a_query_term_the_brick_lacks_gets_the_cosine_of_the_bricks_nearest_word(provider):
    texts = [BACK, "We bought a new sofa for the lounge.", "!!!"]
    near = nearest_word_cosines({"injur": "injure"}, texts, provider)
    assert near[0]["injur"] == pytest.approx(cosine_of_nearest(provider, "injure", BACK), abs=1e-5)
    assert near[0]["injur"] > near[1]["injur"]  # "wrecked", "physio" are nearer to an injury than "sofa"
    assert near[2] == {}  # no words, nothing to stand in


def test_a_words_vector_is_the_same_whatever_words_are_embedded_beside_it(tmp_path):
    int8 = OnnxInt8Provider(cache_dir=tmp_path / "models")
    # the int8 model quantizes a batch's activations together: beside others, a word's vector shifts
    assert not np.array_equal(int8.embed(["hurt", "supercalifragilistic"])[0], int8.embed(["hurt"])[0])
    alone = WordVectors().get(int8, ["hurt"])[0]
    among = WordVectors().get(int8, ["sofa", "supercalifragilistic", "hurt", "physiotherapist"])[2]
    assert np.array_equal(alone, among)


def test_the_word_cache_keeps_at_most_its_size_dropping_the_least_recently_used(provider):
    cache = WordVectors(max_words=3)
    first = cache.get(provider, ["tent", "stove", "lamp"])
    cache.get(provider, ["tent"])  # used again: "stove" is now the oldest
    cache.get(provider, ["rope"])
    assert len(cache) == 3
    assert set(cache._caches[provider.info.id]._items) == {"tent", "lamp", "rope"}
    assert np.array_equal(cache.get(provider, ["lamp", "tent"]), first[[2, 0]])
    assert cache.get(provider, []).shape == (0, 384)


def test_a_bricks_own_words_are_its_block_without_the_who_when_line_rebuilt_from_its_metadata():
    conversation = parse_export(json.dumps(CHAT)).conversations[0]
    brick = block_documents(conversation, source_path(conversation))[1]
    assert brick.text.startswith("[Marco (user) · Thursday 2 May 2024 · Catching up]\n")
    assert own_text(brick.text, brick.metadata) == BACK
    # a later chunk of a long block, or any row that is not a brick, comes back as it is
    assert own_text("[Marco (user)]\nsomething else", brick.metadata) == "[Marco (user)]\nsomething else"
    assert own_text(brick.text, {"kind": "document"}) == brick.text


def test_the_speakers_names_and_the_stop_words_are_never_stood_in_for():
    query = "What did Marco and Mary Ann injure at the café?"
    asked = asked_words(query, query_terms(query), ["Marco", "Mary Ann"])
    assert asked == {next(iter(query_terms("injure"))): "injure", next(iter(query_terms("café"))): "café"}


def test_a_held_term_counts_whole_and_a_lacking_one_by_its_nearest_word_above_the_floor():
    credit = term_credits(frozenset({"tent", "injur", "rope"}), frozenset({"tent"}), {"injur": 0.625, "rope": 0.1},
                          floor=0.25)
    assert credit == {"tent": 1.0, "injur": 0.5, "rope": 0.0}
    assert term_credits(frozenset({"injur"}), frozenset(), {"injur": 0.9}, floor=None) == {"injur": 0.0}


def test_recall_lifts_the_brick_whose_words_paraphrase_the_question(store, provider):
    land(ACME, "catch-up.json", json.dumps(CHAT).encode())
    ingest_fixture(store, provider, ACME)
    rankings = brick_rankings(ACME, "main", "What did Marco injure?", store=store, provider=provider)
    term = next(iter(query_terms("injure")))
    back = next(row for row in rankings.vector if json.loads(row["metadata"])["message_id"] == "m1")
    assert rankings.near[back["id"]][term] == pytest.approx(cosine_of_nearest(provider, "injure", BACK), abs=1e-5)
    assert "marco" not in {t for near in rankings.near.values() for t in near}  # a speaker is held exactly or not
    with_near = {row["id"]: score for row, score in ranked(rankings)}
    without = {row["id"]: score for row, score in ranked(rankings, near_floor=None)}
    assert with_near[back["id"]] > without[back["id"]]
    assert NEAR_FLOOR is not None and rankings.near[back["id"]][term] > NEAR_FLOOR
    assert json.loads(ranked(rankings)[0][0]["metadata"])["message_id"] == "m1"


def test_nearest_words_lift_the_bricks_of_a_matched_topic_but_never_make_a_topic_match(store, provider):
    land(ACME, "catch-up.json", json.dumps(CHAT).encode())
    ingest_fixture(store, provider, ACME)
    rankings = brick_rankings(ACME, "main", "recipe for sourdough bread", store=store, provider=provider)
    lifted, exact = ranked(rankings)[0][1], ranked(rankings, near_floor=None)[0][1]
    assert lifted > exact  # every word has a nearest word, so an unrelated topic is lifted too
    assert topic_matches(rankings, exact) and not topic_matches(rankings, (exact + lifted) / 2)
    between = (exact + lifted) / 2
    assert recall_bricks_readonly(ACME, "main", "recipe for sourdough bread", store=store, provider=provider,
                                  topic_min_score=between) == []
