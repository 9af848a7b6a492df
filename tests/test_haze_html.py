"""The static HTML map in a real browser: headless Chromium opens the file with no network and draws every
point; colour-by and search work from the page's own controls (set through the address's #fragment)."""

from __future__ import annotations

import re
import subprocess

import pytest
from matplotlib.image import imread

from nexus_pipelines.haze.projection import project_space
from nexus_query.context import RequestContext
from nexus_query.haze import HazeStore
from tests.helpers import CHROMIUM_FLAGS, chromium, load_topics

ACME = RequestContext("acme")
pytestmark = pytest.mark.slow  # every test starts headless Chromium
def browse(url: str, profile, *extra: str) -> str:
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def body_data(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))


@pytest.fixture
def html_map(store, provider, topic_corpus, tmp_path):
    rows, vectors = topic_corpus
    space = load_topics(store, provider, ACME, "main", rows, vectors)
    result = project_space(space, HazeStore.for_context(ACME), "main")
    return HazeStore.for_context(ACME).open("main").url("map.html"), result


def test_headless_chromium_draws_every_point_of_the_html_map(html_map, tmp_path):
    path, result = html_map
    dom = browse(f"file://{path}", tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    drawn = body_data(dom)
    assert int(drawn["drawn-points"]) == result.counts.rows == 200
    assert int(drawn["painted-pixels"]) > 2000
    page = open(path, encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # self-contained: nothing fetched

    screenshot = tmp_path / "map.png"
    browse(f"file://{path}", tmp_path / "profile", f"--screenshot={screenshot}")
    pixels = imread(screenshot)[45:, :, :3]  # below the toolbar
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.2  # saturated pixels: points, not text or grey
    assert coloured.sum() > 1000


def test_search_and_colour_by_type_work_in_the_page(html_map, tmp_path):
    path, _ = html_map
    searched = body_data(browse(f"file://{path}#search=campsite&color=type", tmp_path / "profile",
                                "--virtual-time-budget=10000", "--dump-dom"))
    expected = sum("campsite" in text.lower() for text in HazeStore.for_context(ACME).open("main")
                   .to_arrow(("text",)).column("text").to_pylist())
    assert int(searched["matched"]) == expected > 0
    assert int(searched["drawn-points"]) == 200
    dom = browse(f"file://{path}#color=type", tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    legend = re.search(r'<div id="legend">(.*?)</div>\s*<script', dom, re.S).group(1)
    assert re.findall(r"</span>([^<]+)</div>", legend) == ["text"]
