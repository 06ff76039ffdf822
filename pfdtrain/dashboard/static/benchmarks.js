// Benchmarks page: every results.json of `pfdtrain benchmark` found, as tables of
// mean ± std per task and method (generic over the file: any metric with a mean).
"use strict";
(() => {
  function stat(s) {
    if (s === null || s === undefined) return "–";
    if (typeof s === "object" && "mean" in s) return `${Number(s.mean).toFixed(2)} ± ${Number(s.std ?? 0).toFixed(2)}` +
      (s.n ? ` <span class="muted">(n=${s.n})</span>` : "");
    return pfd.esc(typeof s === "object" ? JSON.stringify(s) : s);
  }
  function metricsOf(cells) {
    const found = [];
    for (const c of cells) for (const [k, v] of Object.entries(c || {}))
      if (v && typeof v === "object" && "mean" in v && !found.includes(k)) found.push(k);
    return found;
  }
  function render(entry) {
    if (entry.error) return `<h2>${pfd.esc(entry.file)}</h2><div class="problems">cannot be read: ${pfd.esc(entry.error)}</div>`;
    const r = entry.results;
    let html = `<h2>${pfd.esc(r.suite ?? entry.file)} <span class="muted">${pfd.esc(entry.file)}</span></h2>`;
    if (r.what) html += `<p>${pfd.esc(r.what)}</p>`;
    const facts = ["command", "epochs", "seeds", "pfdtrain_version"].filter(k => k in r)
      .map(k => `<div class="fact"><div class="k">${k}</div><div class="v">${pfd.esc(Array.isArray(r[k]) ? r[k].join(", ") : r[k])}</div></div>`);
    html += `<div class="facts">${facts.join("")}</div>`;
    const summary = r.summary || {};
    const tasks = summary.tasks || {};
    const methods = [];
    for (const t of Object.values(tasks)) for (const m of Object.keys(t)) if (!methods.includes(m)) methods.push(m);
    for (const m of Object.keys(summary.average || {})) if (!methods.includes(m)) methods.push(m);
    const metrics = metricsOf([...Object.values(tasks).flatMap(t => Object.values(t)), ...Object.values(summary.average || {})]);
    if (!methods.length) return html + `<pre>${pfd.esc(JSON.stringify(r, null, 2).slice(0, 20000))}</pre>`;
    for (const metric of metrics) {
      const head = `<th>Task</th>` + methods.map(m => `<th title="${pfd.esc((r.methods || {})[m] || "")}">${pfd.esc(m)}</th>`).join("");
      const rows = Object.entries(tasks).map(([task, byMethod]) => `<tr><td title="${pfd.esc(((r.tasks || {})[task] || {}).what || "")}">${pfd.esc(task)}</td>` +
        methods.map(m => `<td class="num">${stat((byMethod[m] || {})[metric])}</td>`).join("") + "</tr>");
      if (summary.average && Object.keys(summary.average).length)
        rows.push(`<tr><td><b>average</b></td>` + methods.map(m => `<td class="num"><b>${stat((summary.average[m] || {})[metric])}</b></td>`).join("") + "</tr>");
      html += `<h2 style="font-size:14px">${pfd.esc(metric.replace(/_/g, " "))}</h2><table class="bench"><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
    }
    if ((r.skipped || []).length) html += `<p class="muted">Skipped: ${pfd.esc(r.skipped.join("; "))}</p>`;
    return html;
  }
  pfd.poll(async () => {
    const d = await pfd.get("/api/benchmarks");
    document.getElementById("results").innerHTML = d.results.length ? d.results.map(render).join("") :
      `<div class="empty">No results.json under the runs folder. Run <code>pfdtrain benchmark SUITE --out runs/bench</code>
       (or start the dashboard with <code>--benchmarks DIR</code>).</div>`;
    return 15000;
  }, delay => delay);
})();
