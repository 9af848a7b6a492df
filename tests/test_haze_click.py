"""The HTML map in headless Chromium, driven like a person would over the DevTools protocol: hover shows a
point's text cut with an ellipsis, a click opens its whole text, source and id; colour-by-type sets
conversation bricks apart from documents; unclustered points have a legend entry."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from websockets.sync.client import connect as websocket

from nexus_pipelines.haze.html_map import CONVERSATION_KIND, HOVER_CHARS
from nexus_pipelines.haze.projection import project_space
from nexus_query.context import RequestContext
from nexus_query.haze import HazeStore
from tests.helpers import CHROMIUM_FLAGS, chromium, free_port, load_texts, stop

ACME = RequestContext("acme")
LONG = ("The Embercore stove of batch EC-2312 must go back to the store: its valve can stick open, so stop using "
        "it, keep the receipt and the box, and bring both to any acme store within 60 days for a full refund. "
        "Staff check the serial number on the base plate before they take it in.")
BRICK_SOURCE = "conversations/chatgpt/chat-valve.json#msg-1#0"


class Page:
    """One Chromium tab over the DevTools protocol (CDP): evaluate script, dispatch real mouse events."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})

    def eval(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  clickCount=0 if kind == "mouseMoved" else 1)


@pytest.fixture
def browser(tmp_path):
    port = free_port()
    proc = subprocess.Popen([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # about 30 s for the browser to come up
            try:
                tabs = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"]
                if tabs:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        with websocket(tabs[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        stop(proc)


@pytest.fixture
def mapped_space(store, provider):
    texts = {f"doc-{i}.md": f"{topic} note {i}: " + " ".join([topic] * 5)
             for i, topic in enumerate(["tents and camping", "refunds and invoices", "parcels and couriers"] * 12)}
    texts["stove-recall.md"] = LONG
    texts[BRICK_SOURCE] = "Customer asked whether the Embercore stove from batch EC-2312 is safe to use."
    space = load_texts(store, provider, ACME, "main", texts)
    result = project_space(space, HazeStore.for_context(ACME), "main")
    ids = {r["source"]: r["id"] for r in space.table.search().select(["id", "source"]).limit(None).to_list()}
    return HazeStore.for_context(ACME).open("main"), result, ids


def test_clicking_a_point_shows_its_whole_text_and_source(browser, mapped_space):
    snapshot, _, ids = mapped_space
    long_id = ids["stove-recall.md"]
    browser.send("Page.navigate", url=f"file://{snapshot.url('map.html')}")
    for _ in range(100):
        if browser.eval("document.body && document.body.dataset.paintedPixels"):
            break
        time.sleep(0.1)
    index = browser.eval(f"window.haze.ids.indexOf({json.dumps(long_id)})")
    assert index >= 0
    x, y = browser.eval(f"window.haze.position({index})")

    browser.mouse("mouseMoved", x, y)
    hover = browser.eval("document.getElementById('tip').textContent")
    assert LONG[:HOVER_CHARS] + "\u2026" in hover and LONG not in hover  # cut, and says so

    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)
    assert browser.eval("document.body.dataset.selected") == long_id
    assert browser.eval("document.getElementById('detail-text').textContent") == LONG  # the whole text
    meta = browser.eval("document.getElementById('detail-meta').textContent")
    assert meta.startswith("stove-recall.md \u00b7 text") and meta.endswith(f"id {long_id}")

    browser.eval("document.getElementById('close').click()")
    assert browser.eval("getComputedStyle(document.getElementById('detail')).display") == "none"


def test_colour_by_type_sets_conversation_bricks_apart_and_the_legend_counts_unclustered_points(browser,
                                                                                                 mapped_space):
    snapshot, result, _ = mapped_space
    browser.send("Page.navigate", url=f"file://{snapshot.url('map.html')}#color=type")
    for _ in range(100):
        if browser.eval("document.body && document.body.dataset.paintedPixels"):
            break
        time.sleep(0.1)
    legend = browser.eval("[...document.querySelectorAll('#legend div')].map(d => d.textContent)")
    assert legend == sorted([CONVERSATION_KIND, "text"])
    colours = browser.eval("[...document.querySelectorAll('#legend span')].map(s => s.style.background)")
    assert len(set(colours)) == 2
    browser.eval("document.getElementById('color-by').value = 'cluster';"
                 "document.getElementById('color-by').dispatchEvent(new Event('change'))")
    legend = browser.eval("[...document.querySelectorAll('#legend div')].map(d => d.textContent)")
    unclustered = result.counts.unclustered
    assert (f"unclustered ({unclustered})" in legend) == (unclustered > 0)
    assert len(legend) == len(result.info.clusters) + (unclustered > 0)


def open_map(browser, snapshot, fragment: str = "") -> None:
    browser.send("Page.navigate", url=f"file://{snapshot.url('map.html')}{fragment}")
    for _ in range(100):
        if browser.eval("document.body && document.body.dataset.paintedPixels"):
            return
        time.sleep(0.1)


def legend_click(browser, row: int, *, shift: bool = False) -> None:
    browser.eval(f"document.querySelectorAll('#legend div')[{row}]"
                 f".dispatchEvent(new MouseEvent('click', {{bubbles: true, shiftKey: {str(shift).lower()}}}))")


def test_clicking_a_legend_row_hides_its_cluster_and_shift_click_shows_only_it(browser, mapped_space):
    snapshot, result, _ = mapped_space
    open_map(browser, snapshot)
    total = int(browser.eval("document.body.dataset.drawnPoints"))
    first = result.info.clusters and max(result.info.clusters, key=lambda c: c.size)
    assert first, "the fixture's three topics make clusters"

    legend_click(browser, 0)  # rows are largest first
    assert int(browser.eval("document.body.dataset.hidden")) == first.size
    assert int(browser.eval("document.body.dataset.drawnPoints")) == total - first.size
    assert browser.eval("document.querySelectorAll('#legend div')[0].className") == "off"
    legend_click(browser, 0)
    assert int(browser.eval("document.body.dataset.hidden")) == 0

    legend_click(browser, 0, shift=True)  # only this cluster
    assert int(browser.eval("document.body.dataset.drawnPoints")) == first.size
    legend_click(browser, 0, shift=True)  # again: everything back
    assert int(browser.eval("document.body.dataset.drawnPoints")) == total


def dark_pixels(browser) -> int:
    return browser.eval("""(() => { const c = document.getElementById('map'), d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data; let k = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i + 1] < 60 && d[i + 2] < 60) k++;
        return k; })()""")


def test_a_clicked_point_is_ringed_on_the_map_until_the_panel_closes(browser, mapped_space):
    snapshot, _, ids = mapped_space
    open_map(browser, snapshot, "#color=type")  # no cluster labels: nothing dark is drawn before the click
    assert dark_pixels(browser) == 0
    x, y = browser.eval(f"window.haze.position(window.haze.ids.indexOf({json.dumps(ids['stove-recall.md'])}))")
    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)
    assert dark_pixels(browser) > 10
    browser.eval("document.getElementById('close').click()")
    assert dark_pixels(browser) == 0


def test_type_colours_are_far_apart():
    from matplotlib.colors import to_rgb

    from nexus_pipelines.haze.html_map import KIND_COLORS
    from nexus_pipelines.haze.plot import TYPE_COLORS

    colours = [to_rgb(c) for c in {**TYPE_COLORS, **KIND_COLORS}.values()]
    closest = min(sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) ** 0.5
                  for i, p in enumerate(colours) for q in colours[i + 1:])
    assert closest > 0.4  # on the 0..1 RGB cube; the old text and conversation blues were 0.30 apart
