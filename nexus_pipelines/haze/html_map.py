"""A self-contained HTML map: one file, no network (data, script and style inline), canvas drawing.

Pan (drag), zoom (wheel), hover shows a point's text (cut with an ellipsis), click shows its whole text,
source and id in a side panel and rings the point, colour by cluster or type (conversation bricks apart
from documents), search by words. A click on a legend row hides or shows that cluster (or type), a
shift-click shows only it. The page also reads ``#color=type&search=word`` from its address, and records
what it drew in ``<body data-drawn-points=... data-matched=... data-hidden=... data-painted-pixels=...
data-selected=...>`` so a headless browser can check it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from nexus_pipelines.haze.plot import NOISE_COLOR, TYPE_COLORS, cluster_colors
from nexus_query.haze import ClusterSummary

HOVER_CHARS = 200  # the hover box; a click shows the whole text
TEXT_BUDGET_CHARS = 20_000_000  # of text per page: whole chunks up to 10,000 points, shorter past that
CONVERSATION_KIND = "conversation"  # text rows from chat exports (bricks), coloured apart from documents
CONVERSATION_PREFIX = "conversations/"  # where ingestion keeps conversations as source files
KIND_COLORS = {CONVERSATION_KIND: "#9467bd"}  # purple: text (blue) and kpi (green) stay apart


def point_kinds(types: Sequence[str], sources: Sequence[str]) -> list[str]:
    """What colour-by-type shows: the row type, with conversation bricks set apart from documents."""
    return [CONVERSATION_KIND if t == "text" and s.startswith(CONVERSATION_PREFIX) else t
            for t, s in zip(types, sources, strict=True)]


def text_cap(n_points: int) -> int:
    return max(HOVER_CHARS, min(2_000, TEXT_BUDGET_CHARS // max(n_points, 1)))


def render_html(points: pa.Table, clusters: Sequence[ClusterSummary], *, title: str, subtitle: str,
                total_points: int) -> str:
    kinds = point_kinds(points.column("type").to_pylist(), points.column("source").to_pylist())
    types = sorted(set(kinds))
    sources = points.column("source").dictionary_encode().combine_chunks()
    cap = text_cap(points.num_rows)
    cluster_ids = points.column("cluster").to_numpy()
    data = {
        "title": title,
        "subtitle": subtitle,
        "total": total_points,
        "x": np.round(points.column("x").to_numpy().astype(float), 4).tolist(),
        "y": np.round(points.column("y").to_numpy().astype(float), 4).tolist(),
        "c": cluster_ids.tolist(),
        "t": [types.index(t) for t in kinds],
        "types": types,
        "s": sources.indices.to_pylist(),
        "sources": sources.dictionary.to_pylist(),
        "ids": points.column("id").to_pylist(),
        "text": [t if len(t) <= cap else t[:cap] + "\u2026" for t in points.column("text").to_pylist()],
        "hoverChars": HOVER_CHARS,
        "unclustered": int((cluster_ids < 0).sum()),
        "clusters": [{"cluster": c.cluster, "label": c.label, "x": c.x, "y": c.y, "size": c.size} for c in clusters],
        "clusterColors": {str(k): v for k, v in cluster_colors(np.unique(cluster_ids)).items()},
        "typeColors": {t: KIND_COLORS.get(t) or TYPE_COLORS.get(t, "#7f7f7f") for t in types},
        "noiseColor": NOISE_COLOR,
    }
    # "<" escaped as \u003c keeps "</script>" in a document's text from ending the data block
    payload = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 html,body{margin:0;height:100%;font:13px system-ui,sans-serif;color:#222;overflow:hidden}
 #bar{position:absolute;top:0;left:0;right:0;height:40px;display:flex;gap:10px;align-items:center;padding:0 10px;
      background:#fafafa;border-bottom:1px solid #ddd;z-index:2}
 #bar h1{font-size:14px;margin:0;white-space:nowrap}
 #bar .sub{color:#777;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
 #bar input{width:200px;padding:3px 6px}
 #map{position:absolute;top:41px;left:0;width:100%;height:calc(100% - 41px);display:block;cursor:grab}
 #tip{position:absolute;display:none;max-width:360px;background:#fff;border:1px solid #bbb;border-radius:4px;
      padding:6px 8px;box-shadow:0 2px 6px rgba(0,0,0,.15);pointer-events:none;z-index:3;white-space:pre-wrap}
 #tip .meta{color:#777;font-size:11px;margin-bottom:3px}
 #legend{position:absolute;right:8px;bottom:8px;max-height:45%;overflow:auto;background:rgba(255,255,255,.9);
         border:1px solid #ddd;border-radius:4px;padding:6px 8px;z-index:2;font-size:12px}
 #legend div{cursor:pointer;user-select:none;padding:1px 0}
 #legend div.off{opacity:.35;text-decoration:line-through}
 #legend span{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px;vertical-align:middle}
 #detail{position:absolute;top:49px;left:8px;width:380px;max-height:calc(100% - 66px);overflow:auto;display:none;
         background:#fff;border:1px solid #bbb;border-radius:4px;padding:8px 10px;z-index:4;
         box-shadow:0 2px 8px rgba(0,0,0,.2)}
 #detail .meta{color:#555;font-size:12px;margin-bottom:6px;word-break:break-all}
 #detail .body{white-space:pre-wrap}
 #detail button{float:right}
</style></head>
<body>
<div id="bar"><h1 id="title"></h1><span class="sub" id="sub"></span>
 <label>colour <select id="color-by"><option value="cluster">cluster</option>
  <option value="type">type</option></select></label>
 <input id="search" type="search" placeholder="search text, source, label">
 <span id="found"></span><button id="reset" type="button">reset view</button></div>
<canvas id="map"></canvas><div id="tip"></div><div id="legend"></div>
<div id="detail" role="dialog"><button id="close" type="button" aria-label="close">×</button>
 <div class="meta" id="detail-meta"></div><div class="body" id="detail-text"></div></div>
<script id="haze-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("haze-data").textContent);
  const n = D.x.length, canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
  const tip = document.getElementById("tip"), search = document.getElementById("search");
  const colorBy = document.getElementById("color-by"), found = document.getElementById("found");
  const labelOf = {}; D.clusters.forEach(c => { labelOf[c.cluster] = c.label; });
  document.getElementById("title").textContent = D.title;
  document.getElementById("sub").textContent = D.subtitle +
    (D.total > n ? " \u00b7 showing " + n.toLocaleString() + " of " + D.total.toLocaleString() + " points" : "");
  let matched = null, selected = -1, hidden = new Set();
  let view = {s: 1, ox: 0, oy: 0}, fitScale = 1, dpr = window.devicePixelRatio || 1;
  const baseRadius = n < 500 ? 3.5 : n < 5000 ? 2.5 : n < 50000 ? 1.5 : 1;

  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, D.x[i]); x1 = Math.max(x1, D.x[i]); y0 = Math.min(y0, D.y[i]); y1 = Math.max(y1, D.y[i]);
  }
  if (!n) { x0 = y0 = -1; x1 = y1 = 1; }
  if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }

  // a uniform grid over the data, for hover lookups
  const G = Math.max(1, Math.ceil(Math.sqrt(n / 8))), cw = (x1 - x0) / G, ch = (y1 - y0) / G, grid = new Map();
  const cell = (gx, gy) => gx * 100003 + gy;
  for (let i = 0; i < n; i++) {
    const k = cell(Math.min(G - 1, Math.floor((D.x[i] - x0) / cw)), Math.min(G - 1, Math.floor((D.y[i] - y0) / ch)));
    if (!grid.has(k)) grid.set(k, []);
    grid.get(k).push(i);
  }

  function fit() {
    const w = canvas.clientWidth, h = canvas.clientHeight, pad = 24;
    view.s = Math.min((w - 2 * pad) / (x1 - x0), (h - 2 * pad) / (y1 - y0));
    view.ox = w / 2 - view.s * (x0 + x1) / 2;
    view.oy = h / 2 + view.s * (y0 + y1) / 2;
    fitScale = view.s;
  }
  const sx = x => view.ox + view.s * x, sy = y => view.oy - view.s * y;
  const dx = px => (px - view.ox) / view.s, dy = py => (view.oy - py) / view.s;
  const colorOf = i => colorBy.value === "type" ? D.typeColors[D.types[D.t[i]]]
                                                : (D.clusterColors[D.c[i]] || D.noiseColor);
  // the legend group a point belongs to in the current colouring: its type, or its cluster id
  const groupOf = i => colorBy.value === "type" ? "t" + D.t[i] : "c" + D.c[i];
  const shown = i => !hidden.has(groupOf(i));

  function draw() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, w, h);
    const r = baseRadius * Math.min(3, 1 + 0.4 * Math.log2(Math.max(1, view.s / fitScale))), drawn = [0];
    const dot = (i, size) => {
      const px = sx(D.x[i]), py = sy(D.y[i]);
      if (px < -size || py < -size || px > w + size || py > h + size) return;
      ctx.fillRect(px - size / 2, py - size / 2, size, size); drawn[0]++;
    };
    ctx.globalAlpha = matched ? 0.15 : 0.85;
    let hiddenPoints = 0;
    for (let i = 0; i < n; i++) {
      if (!shown(i)) { hiddenPoints++; continue; }
      if (!matched || !matched.has(i)) { ctx.fillStyle = matched ? "#999" : colorOf(i); dot(i, 2 * r); }
    }
    if (matched) {
      ctx.globalAlpha = 1;
      matched.forEach(i => { if (shown(i)) { ctx.fillStyle = colorOf(i); dot(i, 2 * r + 2); } });
    }
    ctx.globalAlpha = 1;
    if (selected >= 0 && shown(selected)) {  // the clicked point: its colour, larger, in a dark ring
      const px = sx(D.x[selected]), py = sy(D.y[selected]);
      ctx.fillStyle = colorOf(selected); ctx.beginPath(); ctx.arc(px, py, 2 * r + 3, 0, 2 * Math.PI); ctx.fill();
      ctx.lineWidth = 2; ctx.strokeStyle = "#111"; ctx.beginPath(); ctx.arc(px, py, 2 * r + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (colorBy.value === "cluster") {
      ctx.font = "12px system-ui,sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,.9)"; ctx.fillStyle = "#111";
      D.clusters.slice().sort((a, b) => b.size - a.size).slice(0, 30).forEach(c => {
        ctx.strokeText(c.label, sx(c.x), sy(c.y)); ctx.fillText(c.label, sx(c.x), sy(c.y));
      });
    }
    document.body.dataset.drawnPoints = drawn[0];
    document.body.dataset.matched = matched ? matched.size : "";
    document.body.dataset.hidden = hiddenPoints;
  }

  function legend() {
    const box = document.getElementById("legend"); box.textContent = "";
    const rows = colorBy.value === "type" ? D.types.map((t, k) => ["t" + k, D.typeColors[t], t])
      : D.clusters.slice().sort((a, b) => b.size - a.size).slice(0, 20)
          .map(c => ["c" + c.cluster, D.clusterColors[c.cluster], c.label + " (" + c.size + ")"])
          .concat(D.unclustered ? [["c-1", D.noiseColor, "unclustered (" + D.unclustered + ")"]] : []);
    const keys = colorBy.value === "type" ? D.types.map((t, k) => "t" + k)
      : D.clusters.map(c => "c" + c.cluster).concat(["c-1"]);
    rows.forEach(([key, color, text]) => {
      const line = document.createElement("div"), dotEl = document.createElement("span");
      line.dataset.group = key; line.className = hidden.has(key) ? "off" : "";
      line.title = "click: hide or show \u00b7 shift-click: show only this";
      dotEl.style.background = color; line.appendChild(dotEl); line.appendChild(document.createTextNode(text));
      line.addEventListener("click", e => {
        const only = keys.every(k => k === key || hidden.has(k)) && !hidden.has(key);
        if (e.shiftKey) { hidden = only ? new Set() : new Set(keys.filter(k => k !== key)); }
        else if (hidden.has(key)) { hidden.delete(key); } else { hidden.add(key); }
        if (selected >= 0 && !shown(selected)) select(-1);
        legend(); applySearch();
      });
      box.appendChild(line);
    });
  }

  function resize() {
    dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * dpr); canvas.height = Math.round(canvas.clientHeight * dpr);
    draw();
  }

  function applySearch() {
    const q = search.value.trim().toLowerCase();
    if (!q) { matched = null; found.textContent = ""; draw(); return; }
    matched = new Set();
    for (let i = 0; i < n; i++) {
      if (shown(i) && D.text[i].toLowerCase().includes(q) || D.sources[D.s[i]].toLowerCase().includes(q) ||
          (labelOf[D.c[i]] || "").toLowerCase().includes(q)) matched.add(i);
    }
    found.textContent = matched.size.toLocaleString() + " found"; draw();
  }

  function nearest(px, py) {
    const rad = 8 / view.s, x = dx(px), y = dy(py);
    let best = -1, bestD = rad * rad;
    const gx0 = Math.floor((x - rad - x0) / cw), gx1 = Math.floor((x + rad - x0) / cw);
    const gy0 = Math.floor((y - rad - y0) / ch), gy1 = Math.floor((y + rad - y0) / ch);
    if (gx1 - gx0 > 50 || gy1 - gy0 > 50) return -1;
    for (let gx = Math.max(0, gx0); gx <= Math.min(G - 1, gx1); gx++) {
      for (let gy = Math.max(0, gy0); gy <= Math.min(G - 1, gy1); gy++) {
        (grid.get(cell(gx, gy)) || []).forEach(i => {
          if (!shown(i)) return;
          const d = (D.x[i] - x) ** 2 + (D.y[i] - y) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        });
      }
    }
    return best;
  }

  const detail = document.getElementById("detail");
  function select(i) {
    selected = i;
    if (i < 0) { detail.style.display = "none"; document.body.dataset.selected = ""; draw(); return; }
    document.getElementById("detail-meta").textContent = D.sources[D.s[i]] + " \u00b7 " + D.types[D.t[i]] +
      (D.c[i] >= 0 ? " \u00b7 " + labelOf[D.c[i]] : " \u00b7 unclustered") + " \u00b7 id " + D.ids[i];
    document.getElementById("detail-text").textContent = D.text[i];
    detail.style.display = "block"; document.body.dataset.selected = D.ids[i]; draw();
  }
  document.getElementById("close").addEventListener("click", () => select(-1));
  // for scripts driving the page (and the browser tests): where a point is drawn, in page coordinates
  window.haze = {ids: D.ids, position: i => {
    const rect = canvas.getBoundingClientRect(); return [rect.left + sx(D.x[i]), rect.top + sy(D.y[i])];
  }};

  let drag = null, moved = false;
  canvas.addEventListener("mousedown", e => {
    drag = {x: e.clientX, y: e.clientY}; moved = false; canvas.style.cursor = "grabbing";
  });
  window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
  canvas.addEventListener("click", e => {  // a click, not the end of a drag, opens the point under the pointer
    if (moved) return;
    const rect = canvas.getBoundingClientRect();
    select(nearest(e.clientX - rect.left, e.clientY - rect.top));
  });
  canvas.addEventListener("mousemove", e => {
    const rect = canvas.getBoundingClientRect(), px = e.clientX - rect.left, py = e.clientY - rect.top;
    if (drag) {
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 0) moved = true;
      view.ox += e.clientX - drag.x; view.oy += e.clientY - drag.y; drag = {x: e.clientX, y: e.clientY};
      tip.style.display = "none"; draw(); return;
    }
    const i = nearest(px, py);
    if (i < 0) { tip.style.display = "none"; return; }
    tip.textContent = "";
    const meta = document.createElement("div"); meta.className = "meta";
    meta.textContent = D.sources[D.s[i]] + " \u00b7 " + D.types[D.t[i]]
      + (D.c[i] >= 0 ? " \u00b7 " + labelOf[D.c[i]] : "");
    const text = D.text[i], cut = text.length > D.hoverChars;
    tip.appendChild(meta);
    tip.appendChild(document.createTextNode(cut ? text.slice(0, D.hoverChars) + "\u2026" : text));
    if (cut) {
      const more = document.createElement("div"); more.className = "meta";
      more.textContent = "click for the whole text"; tip.appendChild(more);
    }
    tip.style.left = Math.min(e.clientX + 12, window.innerWidth - 370) + "px"; tip.style.top = (e.clientY + 12) + "px";
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect(), px = e.clientX - rect.left, py = e.clientY - rect.top;
    const x = dx(px), y = dy(py), f = Math.exp(-e.deltaY * 0.0015);
    view.s *= f; view.ox = px - view.s * x; view.oy = py + view.s * y; draw();
  }, {passive: false});
  colorBy.addEventListener("change", () => { hidden = new Set(); legend(); applySearch(); });
  search.addEventListener("input", applySearch);
  document.getElementById("reset").addEventListener("click", () => {
    hidden = new Set(); legend(); fit(); applySearch();
  });
  window.addEventListener("resize", resize);

  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("color") === "type") colorBy.value = "type";
  if (params.get("search")) search.value = params.get("search");
  canvas.width = Math.round(canvas.clientWidth * dpr); canvas.height = Math.round(canvas.clientHeight * dpr);
  fit(); legend(); applySearch(); draw();
  // how many canvas pixels differ from the white background: proof that something was painted
  const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 0; i < px.length; i += 4) { if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) painted++; }
  document.body.dataset.paintedPixels = painted;
})();
</script></body></html>
"""
