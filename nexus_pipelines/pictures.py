"""Pictures in Dagster metadata: a matplotlib figure as PNG bytes, PNG bytes as inline markdown."""

from __future__ import annotations

import base64
import io
from typing import Any


def figure_png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """The image inline (the Dagster UI renders markdown metadata; nothing to host)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
