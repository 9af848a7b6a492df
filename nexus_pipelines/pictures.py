"""Pictures for the Dagster UI, kept out of the event log: the full PNG goes to the tenant's store and the
materialization links it (URL metadata) with at most a small thumbnail inline. Inline base64 pictures
(about 56 KB per KPI chart, a dozen per space every hour) would bloat a Postgres event log."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any

import dagster as dg

from nexus_query.paths import TenantFiles

THUMBNAIL_WIDTH = 240  # pixels; a thumbnail stays a few KB


def figure_png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def thumbnail_png(png: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A small copy (``width`` pixels wide, 64 colours) for inline display."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
        if image.width > width:
            image = image.resize((width, max(1, round(image.height * width / image.width))),
                                 Image.Resampling.LANCZOS)
        small = image.quantize(colors=64)
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$])")  # with "[" escaped, "(" and "!" start no link


def markdown_text(text: str) -> str:
    """Tenant text (labels, units, series keys, fact sentences) as literal Markdown: every character Markdown
    or its tables could read as syntax inside a line is backslash-escaped, and line breaks become spaces, so a
    label cannot add a link, an image, HTML, emphasis or a table cell to the Dagster UI."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def png_markdown(png: bytes, alt: str, link: str | None = None) -> str:
    """The image inline (the Dagster UI renders markdown metadata), linked to ``link`` when given."""
    image = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
    return f"[{image}]({link})" if link else image


@dataclass(frozen=True)
class StoredPicture:
    url: str  # where the full picture lives (a local path or s3://...)
    nbytes: int

    def metadata(self) -> dg.MetadataValue:
        return dg.MetadataValue.url(self.url)


def file_url(files: TenantFiles, *parts: str) -> str:
    """A link the UI can follow: ``file://`` for a local store, the object URL (``s3://...``) otherwise."""
    url = files.url(*parts)
    return f"file://{url}" if files.is_local else url


def store_picture(files: TenantFiles, png: bytes, *parts: str) -> StoredPicture:
    """Write ``png`` into the tenant's store at ``parts`` (atomically) and say where it is."""
    files.write_bytes_atomic(png, *parts)
    return StoredPicture(url=file_url(files, *parts), nbytes=len(png))
