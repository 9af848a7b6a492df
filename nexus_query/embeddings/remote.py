"""An OpenAI-compatible ``/v1/embeddings`` endpoint, behind the billing gate, with backoff."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx
import numpy as np

from nexus_query.embeddings.base import EmbedderInfo
from nexus_query.embeddings.billing import BillingGate, estimate_tokens
from nexus_query.errors import ConfigError, InvalidRequest, ProviderUnavailable

if TYPE_CHECKING:
    from nexus_query.context import RequestContext

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class RemoteProvider:
    def __init__(
        self,
        base_url: str,
        model: str,
        dimension: int,
        *,
        api_key: str = "",
        gate: BillingGate | None = None,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
        batch_size: int = 256,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url or not model or dimension <= 0:
            raise ConfigError("remote embedder needs base_url, model and a positive dimension")
        self.info = EmbedderInfo(model=model, dimension=dimension, provider="remote")
        self.gate = gate
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_seconds, transport=transport
        )

    def embed(self, texts: Sequence[str], ctx: RequestContext | None = None) -> np.ndarray:
        texts = list(texts)
        if self.gate is not None and ctx is None:
            raise InvalidRequest("a billed embedding call needs the caller's RequestContext")
        chunks = [self._embed_batch(texts[i:i + self.batch_size], ctx)
                  for i in range(0, len(texts), self.batch_size)]
        if not chunks:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        return np.vstack(chunks)

    def _embed_batch(self, texts: list[str], ctx: RequestContext | None) -> np.ndarray:
        tokens = estimate_tokens(texts)
        if self.gate is not None and ctx is not None:
            self.gate.charge(ctx.tenant_id, tokens)  # refuses before any work once the budget is spent
        try:
            payload = self._post_with_retries({"model": self.info.model, "input": texts})
        except BaseException:
            if self.gate is not None and ctx is not None:
                self.gate.refund(ctx.tenant_id, tokens)
            raise
        rows = sorted(payload["data"], key=lambda d: d["index"])
        vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        if vectors.shape != (len(texts), self.info.dimension):
            raise ProviderUnavailable(
                f"remote embedder returned shape {vectors.shape}, expected {(len(texts), self.info.dimension)}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def _post_with_retries(self, body: dict) -> dict:
        delay = self.backoff_seconds
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post("/v1/embeddings", json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response.json()
                last = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE:
                    raise ProviderUnavailable(f"remote embedder refused the request: {last}",
                                              upstream_status=response.status_code)
                retry_after = response.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.max_retries:
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise ProviderUnavailable(f"remote embedder failed after {self.max_retries + 1} attempts ({last})")

    def close(self) -> None:
        self._client.close()
