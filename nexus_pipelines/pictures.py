"""Pictures for the Dagster UI, kept out of the event log: the full PNG goes to the owner's projection store and
the materialization links it (URL metadata: a capability link that opens with a click) with at most one
thumbnail inline. Inline full pictures (a dozen KPI charts per space every hour) would bloat a Postgres
event log."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any

from nexus_query.config import NexusConfig
from nexus_query.links import issue_link, target_for
from nexus_query.paths import TenantFiles

THUMBNAIL_WIDTH = 480  # pixels: readable in the UI, and tens of KB in the event log


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
class PictureLinks:
    """Capability links (``nexus_query.links``) to files of one space owner's projection store: what a click
    in the Dagster UI opens through ``nexus serve``, without an API key, until the link expires."""

    config: NexusConfig
    environment: str
    tenant: str | None  # None: the global space
    project: str

    def url(self, *parts: str) -> str:
        return issue_link(self.config, target_for(self.environment, self.tenant, self.project, *parts))


def store_picture(files: TenantFiles, links: PictureLinks, png: bytes, *parts: str) -> str:
    """Write ``png`` into the projection store at ``parts`` (atomically); the link that opens it."""
    files.write_bytes_atomic(png, *parts)
    return links.url(*parts)
