"""Chunk invariants, for any text: exact substrings, nothing dropped, model-sized, headings respected."""

import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nexus_pipelines.ingest.chunking import Chunker, markdown_sections
from nexus_pipelines.ingest.pipeline import ChunkStats, chunk_batches
from nexus_pipelines.ingest.sources import DOC_SCHEMA

WORDS = st.sampled_from(["tent", "stove", "returns", "Acme's", "2.5kg", "naïve", "café", "東京", "🙂", "x" * 130,
                         "supercalifragilistic", "e\u0301", "\u200b", "-", "#", "##", "```", ".", "?", "(a)"])
SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "\t", ". ", "\r\n", "\n# ", "\n## ", "\n```\n"])
TEXTS = st.one_of(
    st.lists(st.tuples(WORDS, SEPARATORS), max_size=400).map(lambda pairs: "".join(w + s for w, s in pairs)),
    st.text(max_size=600),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def small(provider) -> Chunker:
    """A 24-piece limit, so short generated texts still need several windows."""
    return Chunker(provider.tokenizer, max_tokens=24, overlap_tokens=6)


@SETTINGS
@given(text=TEXTS, markdown=st.booleans(), overlap=st.sampled_from([0, 6]))
@example(text="a " * 24 + "\u200b " + "b " * 30, markdown=False, overlap=0)  # a character with no word piece at a cut
def test_chunks_are_trimmed_ordered_substrings_that_cover_every_visible_character(provider, text, markdown, overlap):
    spans = Chunker(provider.tokenizer, max_tokens=24, overlap_tokens=overlap).split(text, markdown)
    covered = [False] * len(text)
    for span in spans:
        piece = text[span.start:span.end]
        assert 0 <= span.start < span.end <= len(text)
        assert piece == piece.strip() and piece
        for i in range(span.start, span.end):
            covered[i] = True
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text)), "a character fell between chunks"
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    assert [s.end for s in spans] == sorted(s.end for s in spans)


@SETTINGS
@given(text=TEXTS, markdown=st.booleans())
def test_every_chunk_fits_the_model_when_tokenized_on_its_own(small, provider, text, markdown):
    for span in small.split(text, markdown):
        assert span.n_tokens <= small.max_tokens
        assert provider.tokenizer.count(text[span.start:span.end]) <= small.max_tokens


@SETTINGS
@given(sections=st.lists(st.tuples(st.integers(1, 3), st.text("abcdef ", min_size=1, max_size=12),
                                   st.lists(WORDS, min_size=1, max_size=60)), min_size=1, max_size=6))
def test_no_chunk_crosses_a_markdown_heading_with_body_text_before_it(small, sections):
    text = "".join(f"{'#' * level} T{i} {title}\n\n{' '.join(words)}\n\n"
                   for i, (level, title, words) in enumerate(sections))
    bounds = [s.start for s in markdown_sections(text)] + [len(text)]
    for span in small.split(text, markdown=True):
        section = max(i for i, b in enumerate(bounds) if b <= span.start)
        assert span.end <= bounds[section + 1], "a chunk runs into the next section"


@SETTINGS
@given(texts=st.lists(TEXTS.filter(lambda t: t.strip()), min_size=1, max_size=5))
def test_chunk_rows_are_the_document_text_at_their_recorded_offsets(small, texts):
    docs = pa.RecordBatch.from_pylist(
        [{"doc_id": f"d{i}", "type": "text", "format": "markdown", "text": t, "metadata": json.dumps({"n": i}),
          "blob_path": None, "origin": "file:x", "doc_hash": str(i)} for i, t in enumerate(texts)],
        schema=DOC_SCHEMA)
    stats = ChunkStats()
    rows = [r for batch in chunk_batches([docs], small, stats) for r in batch.to_pylist()]
    assert stats.chunks == len(rows) and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        doc = texts[int(row["source"][1:])]
        assert doc[row["char_start"]:row["char_end"]] == row["text"]
        assert json.loads(row["metadata"])["n"] == int(row["source"][1:])
    assert {r["source"] for r in rows} == {f"d{i}" for i, t in enumerate(texts) if t.strip()}


def test_the_default_chunker_uses_the_models_own_limit(provider):
    chunker = Chunker.for_provider(provider)
    assert chunker.max_tokens == provider.max_seq_length - 2  # [CLS] and [SEP]
    long = "word " * 2000
    assert all(s.n_tokens <= chunker.max_tokens for s in chunker.split(long)) and len(chunker.split(long)) > 7
