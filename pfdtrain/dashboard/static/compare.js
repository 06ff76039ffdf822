// Compare page: the selected runs' curves overlaid, their test metrics side by side, and
// the configuration keys whose values differ.
"use strict";
(() => {
  const names = new URLSearchParams(location.search).getAll("runs");
  document.getElementById("names").textContent = names.join(" · ");
  const query = names.map(n => "runs=" + encodeURIComponent(n)).join("&");

  function overlay(id, key, title, curves) {
    const traces = Object.entries(curves).map(([run, h]) => ({x: h.epoch, y: h[key], name: run,
      mode: h.epoch.length <= 150 ? "lines+markers" : "lines", marker: {size: 3}}));
    Plotly.react(id, traces, pfd.layout(title), pfd.plotConfig);
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
    if (typeof v === "object") return pfd.esc(JSON.stringify(v));
    return pfd.esc(v);
  }

  async function load() {
    const d = await pfd.get("/api/compare?" + query);
    overlay("chart-val-acc", "val_acc", "Validation accuracy (%)", d.curves);
    overlay("chart-val-loss", "val_loss", "Validation loss", d.curves);
    overlay("chart-train-loss", "train_loss", "Training loss", d.curves);
    const keys = [];
    for (const row of d.metrics) for (const k of Object.keys(row)) if (!keys.includes(k) && k !== "name") keys.push(k);
    const head = `<th>Metric</th>` + d.runs.map(n => `<th><a href="${pfd.runLink(n)}">${pfd.esc(n)}</a></th>`).join("");
    const body = keys.map(k => `<tr><td>${pfd.esc(k.replace(/_/g, " "))}</td>` + d.metrics.map(r =>
      `<td class="num">${k === "status" ? pfd.badge(r[k]) : k === "duration" ? pfd.secs(r[k]) : fmt(r[k])}</td>`).join("") + "</tr>").join("");
    document.getElementById("metrics").innerHTML = `<table id="metrics-table"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
    document.getElementById("diff").innerHTML = d.config_diff.length ?
      `<table id="diff-table"><thead><tr><th>Key</th>${d.runs.map(n => `<th>${pfd.esc(n)}</th>`).join("")}</tr></thead><tbody>` +
      d.config_diff.map(r => `<tr><td><code>${pfd.esc(r.key)}</code></td>${r.values.map(v => `<td>${fmt(v)}</td>`).join("")}</tr>`).join("") +
      `</tbody></table>` : `<p class="muted">The runs' configurations are identical (apart from their names).</p>`;
    return d.metrics.some(r => r.status === "running") ? 2000 : 10000;
  }
  pfd.poll(load, delay => delay);
})();
