"""Token-aware, heading-aware, overlapping chunks that are exact substrings of their document.

Why token-aware: the model truncates its input at ``max_seq_length`` word pieces, so a chunk longer
than that is silently cut at embedding time and its tail is never found. Every chunk here fits the
model (special tokens included), is ``text[char_start:char_end]`` exactly, starts and ends on word
boundaries when the text has any, and consecutive chunks cover their section with no gap (only
whitespace between them, or an overlap of ``overlap_tokens``). Markdown headings start a new chunk, and
the heading path ("Returns > Tents") goes with every chunk of the section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nexus_query.embeddings.word_pieces import WordPieces

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SENTENCE_END = (".", "!", "?", ":", ";")
CHUNKING_VERSION = "1"  # bump when the splitting rules change, so earlier chunks are not reused


@dataclass(frozen=True)
class Span:
    """One chunk: ``text[start:end]`` of its document."""

    start: int
    end: int
    heading: str  # "A > B" for markdown sections, "" otherwise
    n_tokens: int


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading: str


def markdown_sections(text: str) -> list[_Section]:
    """Split at ATX headings outside code fences; a heading with no body joins the next section."""
    starts: list[tuple[int, str]] = [(0, "")]
    path: list[tuple[int, str]] = []
    in_fence, offset = False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING.match(line.rstrip("\n"))):
            level = len(m.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, m.group(2).strip())]
            starts.append((offset, " > ".join(title for _, title in path)))
        offset += len(line)
    sections: list[_Section] = []
    for (start, heading), (end, _) in zip(starts, starts[1:] + [(len(text), "")], strict=True):
        body = text[start:end]
        if sections and sections[-1].end == start and _heading_only(text[sections[-1].start:start]):
            sections[-1] = _Section(sections[-1].start, end, heading)
        elif body.strip():
            sections.append(_Section(start, end, heading))
    return sections


def _heading_only(section_text: str) -> bool:
    return all(_HEADING.match(line) for line in section_text.splitlines() if line.strip())


class Chunker:
    """Splits documents with the embedding model's own tokenizer and length limit."""

    def __init__(self, tokenizer: WordPieces, max_tokens: int, overlap_tokens: int = 32) -> None:
        if max_tokens < 8 or not 0 <= overlap_tokens < max_tokens // 2:
            raise ValueError("need max_tokens >= 8 and 0 <= overlap_tokens < max_tokens / 2")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    @property
    def fingerprint(self) -> str:
        """Equal fingerprints cut equal chunks (the splitting rules' version is part of it)."""
        return f"{CHUNKING_VERSION}|{self.tokenizer.name_or_path}|{self.max_tokens}|{self.overlap_tokens}"

    @classmethod
    def for_provider(cls, provider: Any, max_tokens: int | None = None, overlap_tokens: int = 32) -> Chunker:
        """Sized to the provider's model; a provider without a local tokenizer (a remote one) is measured
        with the bundled MiniLM word pieces and its 256-piece limit, a conservative stand-in."""
        tokenizer = getattr(provider, "tokenizer", None) or _bundled_tokenizer()
        limit = int(getattr(provider, "max_seq_length", 256))
        room = limit - tokenizer.num_special_tokens_to_add()
        return cls(tokenizer, min(max_tokens or room, room), overlap_tokens)

    def split(self, text: str, markdown: bool = True) -> list[Span]:
        return self.split_many([text], [markdown])[0]

    def split_many(self, texts: Sequence[str], markdown: Sequence[bool]) -> list[list[Span]]:
        """Chunks of each text; the tokenizer runs once over every section of every text."""
        sections = []
        for doc, (text, is_md) in enumerate(zip(texts, markdown, strict=True)):
            found = markdown_sections(text) if is_md else [_Section(0, len(text), "")]
            for s in found:
                start, end = _strip(text, s.start, s.end)
                if start < end:
                    sections.append((doc, _Section(start, end, s.heading)))
        spans: list[list[Span]] = [[] for _ in texts]
        if not sections:
            return spans
        encoded = self.tokenizer.pieces([texts[d][s.start:s.end] for d, s in sections])
        for pieces, (doc, section) in zip(encoded, sections, strict=True):
            offsets = [(section.start + a, section.start + b) for a, b in pieces.offsets]
            spans[doc].extend(self._windows(texts[doc], section, offsets, pieces.word_ids))
        return spans

    def _windows(self, text: str, section: _Section, offsets: list[tuple[int, int]],
                 words: list[int | None]) -> list[Span]:
        n = len(offsets)
        if n <= self.max_tokens:
            return [Span(section.start, section.end, section.heading, n)]
        spans, i = [], 0
        while True:
            if n - i <= self.max_tokens:
                start, _ = _strip(text, offsets[i][0] if i else section.start, section.end)
                spans.append(Span(start, section.end, section.heading, n - i))
                return spans
            cut = self._cut(text, offsets, words, i)
            start = offsets[i][0] if i else section.start
            _, end = _strip(text, start, offsets[cut][0])  # up to the next token: no character is left out
            spans.append(Span(start, end, section.heading, cut - i))
            i = self._next_start(words, i, cut)

    def _cut(self, text: str, offsets: list[tuple[int, int]], words: list[int | None], i: int) -> int:
        """Where the window starting at token ``i`` ends (exclusive): a sentence end in its second half,
        else the last word boundary, else (one word longer than the window) the window's end."""
        limit = i + self.max_tokens
        word_cut = None
        for k in range(limit, i, -1):
            if not _word_boundary(words, k):
                continue
            if k > i + self.max_tokens // 2 and _sentence_boundary(text, offsets, k):
                return k
            word_cut = word_cut or k
        return word_cut or limit

    def _next_start(self, words: list[int | None], i: int, cut: int) -> int:
        """The next window starts ``overlap_tokens`` before the cut, moved forward to a word start."""
        k = max(cut - self.overlap_tokens, i + 1)
        while k < cut and not _word_boundary(words, k):
            k += 1
        return k


def _word_boundary(words: list[int | None], k: int) -> bool:
    """Token ``k`` begins a new word (the tokenizer's pre-tokenizer split there)."""
    return k == 0 or k >= len(words) or words[k] is None or words[k] != words[k - 1]


def _sentence_boundary(text: str, offsets: list[tuple[int, int]], k: int) -> bool:
    prev_end, next_start = offsets[k - 1][1], offsets[k][0]
    return "\n" in text[prev_end:next_start] or text[offsets[k - 1][0]:prev_end].endswith(_SENTENCE_END)


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


@lru_cache(maxsize=1)
def _bundled_tokenizer() -> WordPieces:
    from nexus_query.embeddings.local import resolve_model_path

    return WordPieces.from_model_dir(resolve_model_path("all-MiniLM-L6-v2"))
