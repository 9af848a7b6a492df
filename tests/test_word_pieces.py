"""The chunker's word pieces come from ``tokenizers`` directly: the same pieces as transformers' tokenizer,
so chunks, and the fingerprints that let a space reuse them, do not change."""

import random
import subprocess
import sys

import pytest

from nexus_pipelines.ingest.chunking import CHUNKING_VERSION
from nexus_query.embeddings.local import resolve_model_path
from nexus_query.embeddings.word_pieces import WordPieces
from nexus_query.errors import ConfigError

WORDS = ["tent", "stove", "Acme's", "2.5kg", "naïve", "café", "Zoë", "e\u0301te\u0301", "Straße", "İstanbul", "ﬁle",
         "🙂", "👩‍👩‍👧", "🇩🇪", "東京都の天気は晴れです", "한국어 문장", "Ελληνικά", "Привет", "مرحبا", "x" * 700,
         "supercalifragilisticexpialidocious" * 4, "\u00a0", "\u200b", "[CLS]", "[SEP]", "[UNK]", "ÅNGSTRÖM", "Ⅻ",
         "①", "(a)", "```py\nprint('hi')\n```", "## Heading – ü", "don't", "1,234.56", "A.B.C.", "—",
         "<b>bold</b>", "http://x.io/a?b=c"]
SEPARATORS = [" ", "\n", "\n\n", "\t", ". ", "\r\n", "\n# "]


def varied_texts(count: int) -> list[str]:
    rnd = random.Random(20261207)
    texts = ["".join(rnd.choice(WORDS) + rnd.choice(SEPARATORS) for _ in range(rnd.randint(1, 300)))
             for _ in range(count)]
    code_points = [c for c in range(1, 0x2FFFF) if not 0xD800 <= c <= 0xDFFF]
    return texts + ["".join(chr(rnd.choice(code_points)) for _ in range(rnd.randint(1, 300))) for _ in range(count)]


def test_word_pieces_match_the_transformers_tokenizer_piece_for_piece_on_varied_text():
    from transformers import AutoTokenizer

    model_dir = resolve_model_path("all-MiniLM-L6-v2")
    reference = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    ours = WordPieces.from_model_dir(model_dir)
    texts = varied_texts(400)
    expected = reference(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    for i, pieces in enumerate(ours.pieces(texts)):
        assert pieces.offsets == [tuple(o) for o in expected["offset_mapping"][i]], texts[i][:60]
        assert pieces.word_ids == expected.word_ids(i), texts[i][:60]
    assert ours.name_or_path == reference.name_or_path
    assert ours.num_special_tokens_to_add() == reference.num_special_tokens_to_add(pair=False)
    assert WordPieces.from_transformers(reference).pieces(texts[:20]) == ours.pieces(texts[:20])


def test_the_models_own_truncation_does_not_shorten_what_the_chunker_measures():
    """all-MiniLM-L6-v2's tokenizer.json truncates at 128 pieces; a chunker reading that would never cut."""
    assert WordPieces.from_model_dir(resolve_model_path("all-MiniLM-L6-v2")).count("word " * 1000) == 1000


@pytest.mark.parametrize("provider_class", ["LocalProvider", "OnnxInt8Provider"])
def test_chunking_imports_neither_torch_nor_transformers_and_keeps_its_fingerprint(provider, provider_class):
    module = "local" if provider_class == "LocalProvider" else "onnx_int8"
    code = ("import sys; from nexus_pipelines.ingest.chunking import Chunker; "
            f"from nexus_query.embeddings.{module} import {provider_class}; "
            f"c = Chunker.for_provider({provider_class}()); assert len(c.split('Zoë ate 東京 🙂 ' * 300)) > 3; "
            "print(c.fingerprint, 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fingerprint, torch_loaded, transformers_loaded = done.stdout.split()
    assert (torch_loaded, transformers_loaded) == ("False", "False")
    # the fingerprint transformers' tokenizer gave: equal fingerprints let a space reuse its chunks
    assert fingerprint == f"{CHUNKING_VERSION}|{provider.model.tokenizer.name_or_path}|254|32"


def test_a_model_folder_without_a_fast_tokenizer_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer.json"):
        WordPieces.from_model_dir(tmp_path)
