"""What every embedding provider offers, and the identity a space records of the one that built it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from nexus_query.context import RequestContext


@dataclass(frozen=True)
class EmbedderInfo:
    """Vectors of two embedders never mix in one space: ``id`` is what must match."""

    model: str
    dimension: int
    provider: str = "local"

    @property
    def id(self) -> str:
        return f"{self.model}@{self.dimension}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> EmbedderInfo:
        return cls(**json.loads(raw))


@runtime_checkable
class EmbeddingProvider(Protocol):
    @property
    def info(self) -> EmbedderInfo:
        """The identity a space records of the embedder that wrote it."""
        ...

    def embed(self, texts: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text. ``ctx`` is whom to bill, if anyone."""
        ...
