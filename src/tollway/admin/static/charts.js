// SVG charts for the dashboard, drawn from plain numbers: a pie, horizontal bars and a
// time series. No library: the page must work offline and load nothing from elsewhere.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  // Distinct, colour-blind-friendly hues (Okabe–Ito, then darker variants).
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                   "#F0E442", "#000000", "#005A8C", "#B07A00", "#007558", "#9E4F84"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function title(node, text) {
    el("title", {}, node).textContent = text;
  }

  function color(i) {
    return PALETTE[i % PALETTE.length];
  }

  // One <path class="slice"> per item with value > 0, in order, starting at 12 o'clock.
  // items: [{key, label, value, tip, color?}] (without a color: the palette's, in turn)
  function pie(svg, items) {
    clear(svg);
    const total = items.reduce((s, it) => s + it.value, 0);
    if (total <= 0) {
      el("circle", {cx: 0, cy: 0, r: 1, class: "empty"}, svg);
      const t = el("text", {x: 0, y: 0.05, "text-anchor": "middle", class: "empty-label"}, svg);
      t.textContent = "no calls";
      return;
    }
    let angle = -Math.PI / 2;
    items.forEach((it, i) => {
      if (it.value <= 0) return;
      const sweep = (it.value / total) * 2 * Math.PI;
      let d;
      if (sweep >= 2 * Math.PI - 1e-9) {
        // A full circle cannot be one arc: draw two halves.
        d = "M 0 -1 A 1 1 0 1 1 0 1 A 1 1 0 1 1 0 -1 Z";
      } else {
        const x1 = Math.cos(angle), y1 = Math.sin(angle);
        const x2 = Math.cos(angle + sweep), y2 = Math.sin(angle + sweep);
        const large = sweep > Math.PI ? 1 : 0;
        d = `M 0 0 L ${x1.toFixed(5)} ${y1.toFixed(5)} A 1 1 0 ${large} 1 ${x2.toFixed(5)} ${y2.toFixed(5)} Z`;
      }
      const fill = it.color || color(i);
      const path = el("path", {d, fill, class: "slice", "data-key": it.key, "data-value": it.value}, svg);
      title(path, it.tip);
      angle += sweep;
    });
  }

  // Horizontal stacked bars: rows [{label, parts: [{value, cls, name}], note}].
  function bars(svg, rows) {
    clear(svg);
    const rowH = 26, labelW = 150, noteW = 110, width = 640;
    const height = Math.max(rowH, rows.length * rowH);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (!rows.length) {
      const t = el("text", {x: width / 2, y: rowH / 2 + 5, "text-anchor": "middle", class: "empty-label"}, svg);
      t.textContent = "no calls";
      return;
    }
    const max = Math.max(1, ...rows.map(r => r.parts.reduce((s, p) => s + p.value, 0)));
    const span = width - labelW - noteW - 10;
    rows.forEach((r, i) => {
      const y = i * rowH;
      const label = el("text", {x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "bar-label"}, svg);
      fit(label, r.label, labelW - 12);
      title(label, r.label);
      let x = labelW;
      for (const p of r.parts) {
        const w = (p.value / max) * span;
        if (w > 0) {
          const rect = el("rect", {x, y: y + 5, width: Math.max(w, 1), height: rowH - 10, class: p.cls}, svg);
          title(rect, `${r.label} · ${p.name}: ${p.value.toLocaleString()}`);
        }
        x += w;
      }
      const note = el("text", {x: x + 6, y: y + rowH / 2 + 4, class: "bar-note"}, svg);
      note.textContent = r.note;
    });
  }

  // Sets a text to as much of ``text`` as fits in ``width`` (user units), an ellipsis
  // marking a cut: measured, since characters differ in width (a count of them clipped
  // wide names on the left). Unmeasurable (not rendered), a count of them is the guess.
  function fit(node, text, width) {
    node.textContent = text;
    if (!node.getComputedTextLength()) {
      if (text.length > 18) node.textContent = text.slice(0, 17) + "…";
      return;
    }
    let lo = 0, hi = text.length;
    if (node.getComputedTextLength() <= width) return;
    while (lo < hi) {  // the longest prefix that fits with its ellipsis
      const mid = Math.ceil((lo + hi) / 2);
      node.textContent = text.slice(0, mid) + "…";
      if (node.getComputedTextLength() <= width) lo = mid;
      else hi = mid - 1;
    }
    node.textContent = text.slice(0, lo) + "…";
  }

  // Columns over time: buckets [{label, tick, total, errors, tip}]; errors drawn on top
  // of the same column in the error colour.
  function timeline(svg, buckets) {
    clear(svg);
    const width = 960, height = 220, left = 44, bottom = 26, top = 10;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const plotH = height - bottom - top, plotW = width - left - 8;
    const max = Math.max(1, ...buckets.map(b => b.total));
    const step = niceStep(max);
    const yMax = Math.ceil(max / step) * step;
    for (let v = 0; v <= yMax; v += step) {
      const y = top + plotH - (v / yMax) * plotH;
      el("line", {x1: left, x2: width - 8, y1: y, y2: y, class: "grid"}, svg);
      el("text", {x: left - 6, y: y + 4, "text-anchor": "end", class: "axis"}, svg).textContent = String(v);
    }
    if (!buckets.length) return;
    const slot = plotW / buckets.length;
    const barW = Math.max(1, Math.min(40, slot * 0.7));
    const every = Math.ceil(buckets.length / 12);
    buckets.forEach((b, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const okH = ((b.total - b.errors) / yMax) * plotH;
      const errH = (b.errors / yMax) * plotH;
      const base = top + plotH;
      const g = el("g", {class: "bucket", "data-key": b.label, "data-total": b.total}, svg);
      if (okH > 0) el("rect", {x, y: base - okH, width: barW, height: okH, class: "ok"}, g);
      if (errH > 0) el("rect", {x, y: base - okH - errH, width: barW, height: errH, class: "err"}, g);
      el("rect", {x: left + i * slot, y: top, width: slot, height: plotH, class: "hit"}, g);
      title(g, b.tip);
      if (i % every === 0) {
        const t = el("text", {x: x + barW / 2, y: height - 8, "text-anchor": "middle", class: "axis"}, svg);
        t.textContent = b.tick;
      }
    });
  }

  function niceStep(max) {
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) {
      if (raw <= m * mag) return Math.max(1, m * mag);
    }
    return Math.max(1, 10 * mag);
  }

  // The grey of a slice that stands for many (the consumers past the palette's hues).
  const OTHERS = "#9a9a9a";
  return {pie, bars, timeline, color, distinct: PALETTE.length, OTHERS};
})();
