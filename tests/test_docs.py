"""The README stays a ten-minute read that leads to every docs/ page, and no link in the docs is dead (a
moved section or a renamed page fails here); the asset-graph picture is drawn from the definitions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", page.read_text(), re.M)}


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 220
    linked = {Path(target.split("#")[0]).name for target in LINK.findall(readme) if target.startswith("docs/")}
    assert {page.name for page in DOCS} <= linked


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not followed offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} names no file"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: {target} names no heading"


def test_the_asset_graph_picture_shows_every_asset_of_the_code_location():
    from nexus_pipelines.definitions import defs
    from nexus_pipelines.graph_picture import asset_graph_png, asset_layers

    depth, edges, groups = asset_layers(defs)
    assert {"raw_docs", "space_table", "kpi_fact_docs", "haze_projection", "cognition_artifacts"} <= set(depth)
    assert ("embeddings", "space_table") in edges and depth["space_table"] > depth["raw_docs"]
    assert groups["haze_projection"] == "haze"
    assert asset_graph_png(defs).startswith(b"\x89PNG")
