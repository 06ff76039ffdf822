// pfdtrain dashboard: helpers shared by the four pages (plain JS, no build step).
"use strict";
const pfd = {
  esc(text) {
    return String(text ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;"}[c]));
  },
  num(v, digits = 2) { return (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(digits); },
  pct(v) { return (v === null || v === undefined) ? "–" : Number(v).toFixed(2) + " %"; },
  secs(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  },
  ago(epochSeconds) {
    if (!epochSeconds) return "–";
    return pfd.secs(Date.now() / 1000 - epochSeconds) + " ago";
  },
  badge(status) {
    const label = (status || "unknown").replace("_", " ");
    return `<span class="badge ${pfd.esc(status)}" data-status="${pfd.esc(status)}">${pfd.esc(label)}</span>`;
  },
  runLink(name) { return `/run?name=${encodeURIComponent(name)}`; },
  async get(url) {
    const response = await fetch(url, {cache: "no-store"});
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${response.status}: ${detail}`);
    }
    return response.json();
  },
  // Poll fn every `every(result)` ms; paused while the tab is hidden (no work for nobody).
  poll(fn, every, errorDelay = 3000) {
    let timer = null;
    const tick = async () => {
      clearTimeout(timer);
      let delay = 5000;
      try { delay = every(await fn()); pfd.error(null); } catch (e) { pfd.error(e); delay = errorDelay; }
      timer = setTimeout(() => { if (!document.hidden) tick(); }, delay);
    };
    document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
    tick();
  },
  error(e) {
    const box = document.getElementById("error");
    if (box) box.textContent = e ? "Dashboard: " + e.message : "";
  },
  table(columns, rows) {
    // columns: [{key, label, num, fmt}], rows: objects; returns HTML
    const head = columns.map(c => `<th class="${c.num ? "num" : ""}">${pfd.esc(c.label)}</th>`).join("");
    const body = rows.map(r => "<tr>" + columns.map(c => {
      const v = c.fmt ? c.fmt(r[c.key], r) : pfd.esc(r[c.key]);
      return `<td class="${c.num ? "num" : ""}">${v}</td>`;
    }).join("") + "</tr>").join("");
    return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  },
  layout(title, extra = {}) {
    return Object.assign({title: {text: title, font: {size: 14}}, margin: {l: 55, r: 15, t: 36, b: 70},
      legend: {orientation: "h", y: -0.32}, xaxis: {title: {text: "epoch"}},
      paper_bgcolor: "#fff", plot_bgcolor: "#fff"}, extra);
  },
  plotConfig: {displaylogo: false, responsive: true},
};
