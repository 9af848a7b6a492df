"""The chunker's tokenizer on ``tokenizers`` alone cuts exactly what transformers' ``AutoTokenizer`` cuts,
under the same fingerprint (else every space would re-chunk), over texts people write: accents (composed and
combining), emoji with joiners, CJK and Hangul, very long words, markdown, odd whitespace; and the int8
embedder's chunking no longer imports torch or transformers."""

from __future__ import annotations

import random
import subprocess
import sys

from transformers import AutoTokenizer

from nexus_pipelines.ingest.chunking import Chunker
from nexus_query.embeddings.local import resolve_model_path
from nexus_query.embeddings.word_pieces import ChunkingTokenizer
from tests.helpers import REPO

PIECES = ["café", "Zoë", "naïve", "e\u0301te\u0301", "Straße", "ﬁle", "🙂", "👩‍👩‍👧", "🇩🇪", "東京都の天気は晴れです",
          "한국어 문장", "Ελληνικά", "Привет", "مرحبا", "supercalifragilisticexpialidocious" * 4, "x" * 700,
          "\u00a0", "\u200b", "\t", "\n\n", "## Heading – ü", "```py\nprint('hi')\n```", "don't", "1,234.56",
          "A.B.C.", "—", "word", "the", "tent.", "Stove!", "why?", "[CLS]", "<b>bold</b>", "http://x.io/a?b=c"]


def varied_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 500))) for _ in range(count)]


def test_the_chunker_cuts_the_same_chunks_under_the_same_fingerprint_as_with_transformers():
    model_dir = resolve_model_path("all-MiniLM-L6-v2")
    ours = ChunkingTokenizer(model_dir)
    theirs = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    assert ours.num_special_tokens_to_add(pair=False) == theirs.num_special_tokens_to_add(pair=False) == 2
    for max_tokens, overlap in ((254, 32), (40, 8)):
        mine, reference = Chunker(ours, max_tokens, overlap), Chunker(theirs, max_tokens, overlap)
        assert mine.fingerprint == reference.fingerprint
        texts = varied_texts(200, seed=max_tokens)
        markdown = [i % 2 == 0 for i in range(len(texts))]
        cut = mine.split_many(texts, markdown)
        assert cut == reference.split_many(texts, markdown)
        assert sum(len(spans) for spans in cut) > 2 * len(texts)  # long texts were really cut


def test_the_int8_embedders_chunking_imports_neither_torch_nor_transformers():
    script = ("import sys\n"
              "from nexus_query.embeddings.onnx_int8 import OnnxInt8Provider\n"
              "from nexus_pipelines.ingest.chunking import Chunker\n"
              "chunker = Chunker.for_provider(OnnxInt8Provider())\n"
              "assert chunker.split('Zoë ate 東京 🙂 ' * 300)\n"
              "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
