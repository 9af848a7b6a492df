"""assemble_topic against the cognition seed: its artifact schema, each failure mode and each
invariant, one test apiece (real model, LanceDB on disk, the tenant's blob store)."""

import hashlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_pipelines.common.load import upsert_records
from nexus_query.cognition import NO_RECALL_MATCHES, SOURCES_UNAVAILABLE, assemble, assemble_topic
from nexus_query.cognition.artifacts import ArtifactStore, render_for_agent
from nexus_query.cognition.assembly import SourceUnavailable, build_payload, conversation_date, load_source
from nexus_query.cognition.canonical_export import canonical_conversation
from nexus_query.cognition.recall import MIN_SCORE, TOPIC_MIN_SCORE, recall_bricks_readonly
from nexus_query.context import RequestContext
from nexus_query.errors import Forbidden, NotFound
from nexus_query.landing import landing_zone
from nexus_query.paths import TenantFiles
from nexus_query.store import SpaceStore
from tests.helpers import copy_home, ingest_fixture, load_texts, nexus_home_at, unchunked_bricks

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
RETURNS = "conversations/chatgpt/conv-gpt-returns.json"
STOVE = "conversations/chatgpt/conv-gpt-stove.json"


@pytest.fixture(scope="module")
def ingested_home(tmp_path_factory, provider) -> Path:
    """The three exports ingested once per module (embedding them is the slow part)."""
    with nexus_home_at(tmp_path_factory.mktemp("cognition") / "nexus-home") as home:
        ingest_fixture(SpaceStore(), provider, ACME, "chatgpt_conversations.json", "claude_conversations.json",
                       "canonical_conversations.json")
    return home


@pytest.fixture
def acme_space(ingested_home, nexus_home):
    """A store holding the three exports ingested, a copy of its own for each test."""
    return copy_home(ingested_home, nexus_home)


def run(store, provider, topic, k=15, ctx=ACME):
    return assemble(ctx, "main", topic, k, store=store, provider=provider)


def failures(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


# --- the artifact schema ----------------------------------------------------------------------------

def test_artifact_has_exactly_the_seed_schema(acme_space, provider):
    artifact = run(acme_space, provider, "refund for a tent with mildew").artifact
    assert list(artifact) == ["artifact_id", "created_at", "query", "derived_from", "payload"]
    payload = artifact["payload"]
    assert set(payload) == {"topic", "artifact_type", "coverage_status", "provenance", "raw_excerpts",
                            "extracted_facts", "decisions", "constraints", "edge_cases"}
    assert (payload["artifact_type"], payload["coverage_status"]) == ("TOPIC_COGNITION_V1", "ASSEMBLED")
    assert payload["topic"] == artifact["query"] == "refund for a tent with mildew"
    assert set(payload["provenance"]) == {"brick_ids", "source_files"}
    assert artifact["derived_from"] == payload["provenance"]["brick_ids"]
    assert [payload[k] for k in ("extracted_facts", "decisions", "constraints", "edge_cases")] == [[], [], [], []]
    for excerpt in payload["raw_excerpts"]:
        # the seed's fields, the tree (current_message_id per excerpt, parent_id per message), title and date
        assert set(excerpt) == {"source_file", "coverage", "current_message_id", "title", "created_at",
                                "conversation"}
        assert all(set(span) == {"message_id", "block_index"} for span in excerpt["coverage"]["spans"])
        for message in excerpt["conversation"]:
            assert set(message) - {"name"} == {"message_id", "parent_id", "role", "created_at", "blocks"}
            assert all(set(block) == {"index", "text"} for block in message["blocks"])


def test_each_excerpt_carries_its_conversations_title_and_date_and_the_prompt_shows_them(acme_space, provider):
    artifact = run(acme_space, provider, "refund for a tent with mildew").artifact
    files = landing_zone(ACME).files
    prompt = render_for_agent(artifact)
    for excerpt in artifact["payload"]["raw_excerpts"]:
        source = canonical_conversation(json.loads(files.read_bytes(excerpt["source_file"])))
        assert excerpt["title"] == source.title and excerpt["created_at"] == conversation_date(source)
        assert excerpt["created_at"]  # every fixture conversation is dated, by itself or its messages
        about = f" · title {source.title}" if source.title else ""
        assert f"source_file {excerpt['source_file']}{about} · date {excerpt['created_at']}\n" in prompt
    # the recalled spans, and only they, are marked in the transcript
    recalled, message = set(), None
    for line in prompt.splitlines():
        if head := re.match(r"\[message_id (\S+) · ", line):
            message = head.group(1)
        elif mark := re.fullmatch(r"\[block_index (\d+) · RECALLED\]", line):
            recalled.add((message, int(mark.group(1))))
    assert recalled == {(s["message_id"], s["block_index"])
                        for e in artifact["payload"]["raw_excerpts"] for s in e["coverage"]["spans"]}


def test_an_undated_conversation_is_dated_by_its_earliest_message():
    conversation = canonical_conversation({"conversation_id": "c", "messages": [
        {"message_id": "a", "role": "user", "created_at": "2024-05-02T10:00:00Z", "blocks": []},
        {"message_id": "b", "role": "assistant", "created_at": "2024-05-01T09:00:00Z", "blocks": []}]})
    assert conversation_date(conversation) == "2024-05-01T09:00:00Z"


def test_artifact_id_is_sha256_of_the_canonical_json_of_the_payload(acme_space, provider):
    artifact = run(acme_space, provider, "which stove batches are affected").artifact
    canonical = json.dumps(artifact["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert artifact["artifact_id"] == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_provenance_lists_the_recalled_bricks_and_their_source_files_and_every_span_cites_one(acme_space, provider):
    topic = "refund for a tent with mildew"
    recalled = recall_bricks_readonly(ACME, "main", topic, store=acme_space, provider=provider,
                                      min_score=MIN_SCORE)
    payload = run(acme_space, provider, topic).artifact["payload"]
    assert payload["provenance"]["brick_ids"] == sorted(b.brick_id for b in recalled)
    assert payload["provenance"]["source_files"] == sorted({b.source_file for b in recalled})
    cited = {(e["source_file"], s["message_id"], s["block_index"])
             for e in payload["raw_excerpts"] for s in e["coverage"]["spans"]}
    assert cited == {(b.source_file, b.message_id, b.block_index) for b in recalled}


# --- failure modes ----------------------------------------------------------------------------------

def test_missing_source_is_logged_and_skipped_and_the_others_are_assembled(acme_space, provider, caplog):
    files = landing_zone(ACME).files
    files.fs.rm(files.path(RETURNS))
    result = run(acme_space, provider, "tent refund with mildew and bent poles", k=20)
    sources = [e["source_file"] for e in result.artifact["payload"]["raw_excerpts"]]
    assert RETURNS not in sources and sources  # the others are still there
    assert RETURNS not in result.artifact["payload"]["provenance"]["source_files"]
    assert any(m.startswith(f"ERROR: Failed to load source {RETURNS}") for m in failures(caplog))
    assert result.skipped_sources[RETURNS] == "file not found"


def test_corrupt_source_is_logged_and_skipped(acme_space, provider, caplog):
    files = landing_zone(ACME).files
    files.write_bytes_atomic(b'{"messages": [ truncated', STOVE)
    result = run(acme_space, provider, "which Embercore batches are affected by the valve problem", k=20)
    assert STOVE not in [e["source_file"] for e in result.artifact["payload"]["raw_excerpts"]]
    assert result.artifact["payload"]["coverage_status"] == "ASSEMBLED"
    assert any(m.startswith(f"ERROR: Failed to load source {STOVE}") and "not valid JSON" in m
               for m in failures(caplog))


def test_source_that_is_json_but_not_a_conversation_is_treated_as_corrupt(acme_space, provider, caplog):
    landing_zone(ACME).files.write_bytes_atomic(b'{"hello": "world"}', STOVE)
    result = run(acme_space, provider, "which Embercore batches are affected by the valve problem", k=20)
    assert "not a canonical conversation" in result.skipped_sources[STOVE]
    assert any(STOVE in m for m in failures(caplog))


def test_empty_recall_gives_no_recall_matches_with_empty_excerpts(store, provider):
    load_texts(store, provider, ACME, "main", {"tents": "Return a tent within 60 days."})  # documents, no bricks
    artifact = run(store, provider, "tent returns").artifact
    payload = artifact["payload"]
    assert payload["coverage_status"] == NO_RECALL_MATCHES == "NO_RECALL_MATCHES"
    assert payload["raw_excerpts"] == [] and artifact["derived_from"] == []
    assert payload["provenance"] == {"brick_ids": [], "source_files": []}


def test_when_every_recalled_source_fails_to_load_the_status_says_so(acme_space, provider, caplog):
    files = landing_zone(ACME).files
    for path in files.list("conversations"):
        files.fs.rm(files.path(path))
    payload = run(acme_space, provider, "tent refund").artifact["payload"]
    assert (payload["coverage_status"], payload["raw_excerpts"]) == (SOURCES_UNAVAILABLE, [])
    assert failures(caplog)


def test_k_caps_the_number_of_bricks(acme_space, provider):
    for k in (1, 3, 7):
        artifact = run(acme_space, provider, "tent refund", k=k).artifact
        assert len(artifact["derived_from"]) == k


class CountingFiles(TenantFiles):
    """The tenant's real blob store, counting reads per path."""

    def __init__(self, files: TenantFiles) -> None:
        super().__init__(files.route, *files.root.rsplit("/", 2)[1:])
        self.reads: dict[str, int] = {}

    def read_bytes(self, *parts: str) -> bytes:
        key = "/".join(parts)
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().read_bytes(*parts)


def test_each_distinct_source_is_loaded_once_however_many_bricks_point_at_it(acme_space, provider):
    bricks = recall_bricks_readonly(ACME, "main", "tent refund with mildew, poles and the partial refund amount",
                                    k=15, store=acme_space, provider=provider)
    per_source = {}
    for b in bricks:
        per_source[b.source_file] = per_source.get(b.source_file, 0) + 1
    assert max(per_source.values()) > 1  # several bricks share a source
    files = CountingFiles(landing_zone(ACME).files)
    _, loaded, _ = build_payload("tent refund", bricks, files)
    assert files.reads == {source: 1 for source in per_source}
    assert sorted(loaded) == sorted(per_source)


def test_sources_with_identical_content_under_different_paths_are_included_once(acme_space, provider):
    files = landing_zone(ACME).files
    copy = "conversations/backup/conv-gpt-stove.json"
    files.write_bytes_atomic(files.read_bytes(STOVE), copy)
    conversation = canonical_conversation(json.loads(files.read_bytes(copy)))
    upsert_records(acme_space.open(ACME, "main"), ACME, unchunked_bricks(conversation, copy), provider)
    payload = run(acme_space, provider, "which Embercore batches are affected by the valve problem").artifact["payload"]
    assert {STOVE, copy} <= set(payload["provenance"]["source_files"])
    stove_excerpts = [e for e in payload["raw_excerpts"] if e["source_file"] in (STOVE, copy)]
    assert len(stove_excerpts) == 1 and stove_excerpts[0]["source_file"] == copy  # first path in sorted order
    assert {(s["message_id"], s["block_index"]) for s in stove_excerpts[0]["coverage"]["spans"]} >= {
        ("m1", 0), ("m2b", 0)}
    assert [m["message_id"] for m in stove_excerpts[0]["conversation"]] == ["m1", "m2a", "m2b"]  # both branches


# --- invariants -------------------------------------------------------------------------------------

def test_read_only_assembly_leaves_the_index_version_unchanged(acme_space, provider):
    space = acme_space.open(ACME, "main")
    version, rows, history = space.version, space.count(), len(space.table.list_versions())
    run(acme_space, provider, "tent refund")
    run(acme_space, provider, "winter hours")
    space.refresh()
    assert (space.version, space.count(), len(space.table.list_versions())) == (version, rows, history)


def test_no_truncation_excerpts_hold_the_whole_conversation_with_every_block_in_full(acme_space, provider):
    payload = run(acme_space, provider, "seam tape peeling on panel 17 warranty photograph", k=2).artifact["payload"]
    [excerpt] = [e for e in payload["raw_excerpts"]
                 if e["source_file"] == "conversations/canonical/canon-warranty.json"]
    source = json.loads(landing_zone(ACME).files.read_bytes(excerpt["source_file"]))
    assert excerpt["conversation"] == source["messages"]  # every message, cited or not
    assert len(excerpt["conversation"][1]["blocks"][1]["text"]) == 4781  # the long block, unsplit


def test_immutability_assembling_again_is_a_no_op_that_returns_the_stored_artifact(acme_space, provider):
    first = run(acme_space, provider, "winter opening hours")
    files = landing_zone(ACME).files
    path = f"artifacts/{first.artifact['artifact_id'].removeprefix('sha256:')}.json"
    stored_bytes = files.read_bytes(path)
    again = run(acme_space, provider, "winter opening hours")
    assert (first.created, again.created) == (True, False)
    assert again.artifact == first.artifact  # same created_at: the first write stands
    assert files.read_bytes(path) == stored_bytes


def test_time_independence_the_same_inputs_at_two_times_give_the_same_artifact_id(acme_space, provider):
    earlier = assemble_topic(ACME, "main", "stove valve recall", store=acme_space, provider=provider)
    files = landing_zone(ACME).files  # a fresh store, as tomorrow's run on another machine would be
    files.fs.rm(files.path("artifacts"), recursive=True)
    files.fs.rm(files.path("artifact-index"), recursive=True)
    later = assemble_topic(ACME, "main", "stove valve recall", store=acme_space, provider=provider)
    assert later["created_at"] != earlier["created_at"]
    assert later["artifact_id"] == earlier["artifact_id"] and later["payload"] == earlier["payload"]
    assert earlier["created_at"] not in json.dumps(earlier["payload"])


def test_assembled_artifacts_are_stored_in_the_tenants_store_and_listed_for_the_space(acme_space, provider):
    artifact = assemble_topic(ACME, "main", "tent refund", store=acme_space, provider=provider)
    artifacts = ArtifactStore.for_context(ACME)
    assert artifacts.get(artifact["artifact_id"]) == artifact
    assert [e["artifact_id"] for e in artifacts.list("main")] == [artifact["artifact_id"]]


# --- tenant isolation -------------------------------------------------------------------------------

def test_a_source_path_outside_the_tenants_store_is_refused(acme_space, provider, caplog):
    acme_files, globex_files = landing_zone(ACME).files, landing_zone(GLOBEX).files
    secret = "conversations/canonical/globex-secret.json"
    globex_files.write_bytes_atomic(
        json.dumps({"conversation_id": "globex-secret", "messages": [{"message_id": "g1", "role": "user",
                    "created_at": None,
                    "blocks": [{"index": 0, "text": "Globex tent refund margin is 41%."}]}]}).encode(),
        secret)
    for outside in (globex_files.path(secret), f"../../globex/default/{secret}", f"file://{globex_files.path(secret)}"):
        with pytest.raises(SourceUnavailable, match="refused"):
            load_source(acme_files, outside)
        with pytest.raises(Forbidden):
            acme_files.relative(outside)
    conversation = canonical_conversation(json.loads(globex_files.read_bytes(secret)))
    forged = unchunked_bricks(conversation, "conversations/forged.json")
    for brick in forged:  # a row in acme's space whose citation points into globex's store
        brick.metadata = {**brick.metadata, "source_file": globex_files.path(secret)}
    upsert_records(acme_space.open(ACME, "main"), ACME, forged, provider)
    result = run(acme_space, provider, "Globex tent refund margin")
    assert "41%" not in json.dumps(result.artifact)
    assert any("refused" in reason for reason in result.skipped_sources.values())
    assert any("refused" in m for m in failures(caplog))


def test_a_tenant_cannot_read_another_tenants_artifact(acme_space, provider):
    artifact = assemble_topic(ACME, "main", "tent refund", store=acme_space, provider=provider)
    with pytest.raises(NotFound):
        ArtifactStore.for_context(GLOBEX).get(artifact["artifact_id"])


def test_on_s3_sources_load_from_the_bucket_and_the_artifact_is_stored_there(s3_config, provider):
    store = SpaceStore()
    assert store.registry.blob_route(ACME).protocol == "s3"
    ingest_fixture(store, provider, ACME, "canonical_conversations.json")
    artifact = assemble_topic(ACME, "main", "shipping time to Alaska", k=3, store=store, provider=provider)
    payload = artifact["payload"]
    assert payload["coverage_status"] == "ASSEMBLED"
    assert "conversations/canonical/canon-shipping.json" in payload["provenance"]["source_files"]
    assert ArtifactStore.for_context(ACME).get(artifact["artifact_id"]) == artifact


def test_a_topic_the_conversations_never_speak_of_gives_no_recall_matches(acme_space, provider):
    assert recall_bricks_readonly(ACME, "main", "recipe for sourdough bread", store=acme_space,
                                  provider=provider, min_score=MIN_SCORE, topic_min_score=TOPIC_MIN_SCORE) == []
    payload = run(acme_space, provider, "the French revolution of 1789").artifact["payload"]
    assert payload["coverage_status"] == NO_RECALL_MATCHES and payload["raw_excerpts"] == []


# --- branched conversations ---------------------------------------------------------------------------

SHAPES = "conversations/chatgpt/gpt-shapes.json"
BRANCH_TOPIC = "replace the leaking tent on the spot or send it to the factory"


@pytest.fixture
def shapes_space(store, provider):
    ingest_fixture(store, provider, ACME, "chatgpt_content_shapes.json", "claude_content_shapes.json")
    return store


def test_an_artifact_from_a_branched_conversation_holds_every_branch_and_names_the_current_leaf(shapes_space, provider):
    payload = run(shapes_space, provider, BRANCH_TOPIC).artifact["payload"]
    [excerpt] = [e for e in payload["raw_excerpts"] if e["source_file"] == SHAPES]
    messages = {m["message_id"]: m for m in excerpt["conversation"]}
    assert {"u2a", "a7a", "u2b", "a7b", "a7c", "a8"} <= set(messages)  # edited and regenerated branches too
    assert (messages["u2a"]["parent_id"], messages["u2b"]["parent_id"]) == ("a6", "a6")
    assert excerpt["current_message_id"] == "a8"
    source = json.loads(landing_zone(ACME).files.read_bytes(SHAPES))
    assert excerpt["conversation"] == source["messages"]


def test_a_branched_artifact_hashes_the_same_when_assembled_again_from_a_fresh_store_and_a_reimport(shapes_space,
                                                                                                    provider):
    first = run(shapes_space, provider, BRANCH_TOPIC).artifact
    files = landing_zone(ACME).files
    files.fs.rm(files.path("artifacts"), recursive=True)
    files.fs.rm(files.path("artifact-index"), recursive=True)
    ingest_fixture(shapes_space, provider, ACME, "chatgpt_content_shapes.json")  # the same export again
    again = run(shapes_space, provider, BRANCH_TOPIC)
    assert again.created and again.artifact["artifact_id"] == first["artifact_id"]


def test_render_for_agent_shows_the_current_thread_in_order_then_the_alternates_marked(shapes_space, provider):
    artifact = run(shapes_space, provider, BRANCH_TOPIC).artifact
    prompt = render_for_agent(artifact)
    assert prompt.startswith("**SYSTEM RULES (NEXUS COGNITION):**") and artifact["artifact_id"] in prompt
    section = prompt[prompt.index(f"source_file {SHAPES}"):]
    section = section[:section.index("EXCERPT ", 1)] if "EXCERPT " in section[1:] else section
    current, alternates = section.split("ALTERNATE BRANCHES (3 messages")
    heads = re.findall(r"^\[message_id (\S+) · ([^\]]*)\]$", current, re.M)
    assert [m for m, _ in heads][-4:] == ["a6", "u2b", "a7c", "a8"] and not any("ALTERNATE" in h for _, h in heads)
    assert re.findall(r"^\[message_id (\S+) · .*ALTERNATE, reply to (\S+)\]$", alternates, re.M) == [
        ("u2a", "a6"), ("a7a", "u2a"), ("a7b", "u2b")]
    assert re.search(r"^\[block_index 0( · RECALLED)?\]\nSend it to the factory. REGENERATED-AWAY-ANSWER$",
                     alternates, re.M)
    for message in artifact["payload"]["raw_excerpts"][0]["conversation"]:  # every block, verbatim
        assert all(re.search(rf"^\[block_index {b['index']}( · RECALLED)?\]\n{re.escape(b['text'])}$",
                             prompt, re.M) for b in message["blocks"])


def test_every_name_the_cognition_package_exports_is_itself_whatever_was_imported_first():
    """The package loads its names on first use; a submodule named like one of them (``assemble`` was)
    would replace the name once imported, so ``from nexus_query.cognition import assemble`` gave a module."""
    code = ("import importlib, pkgutil, types, nexus_query.cognition as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module(f'nexus_query.cognition.{m.name}')\n"
            "print([n for n in c.__all__ if isinstance(getattr(c, n), types.ModuleType)])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
