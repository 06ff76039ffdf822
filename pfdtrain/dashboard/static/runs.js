// Runs page: every run folder under RUNS_DIR; sortable, filterable; polled every 2 s.
"use strict";
(() => {
  const STATUSES = ["running", "finished", "stopped_early", "crashed", "interrupted", "killed",
                    "not_started", "unknown"];
  const columns = [
    {key: "name", label: "Run"}, {key: "status", label: "Status"}, {key: "model", label: "Model"},
    {key: "data", label: "Data"}, {key: "trainer", label: "Trainer"},
    {key: "epochs_done", label: "Epochs", num: true}, {key: "best_val_acc", label: "Best val acc", num: true},
    {key: "test_acc", label: "Test acc", num: true}, {key: "duration", label: "Duration", num: true},
    {key: "started", label: "Started"},
  ];
  let runs = [];
  let sortKey = "started", sortDir = -1;
  const selected = new Set();
  const filter = document.getElementById("filter");
  const statusFilter = document.getElementById("status-filter");
  const compareButton = document.getElementById("compare");
  for (const s of STATUSES) statusFilter.insertAdjacentHTML("beforeend",
    `<option value="${s}">${s.replace("_", " ")}</option>`);

  function cell(key, r) {
    switch (key) {
      case "name": return `<a href="${pfd.runLink(r.name)}">${pfd.esc(r.name)}</a>` +
        (r.problems ? ` <span title="problems: see the run page" style="color:#c9372c">⚠</span>` : "");
      case "status": return pfd.badge(r.status) + (r.status === "running" && r.last_update ?
        ` <span class="muted" title="time since its last event (heartbeat)">${pfd.ago(r.last_update)}</span>` : "");
      case "epochs_done": {
        const total = r.total_epochs || 0;
        const frac = total ? Math.min(1, r.epochs_done / total) : 0;
        return `${r.epochs_done} / ${total || "?"}<span class="mini"><span style="width:${(100 * frac).toFixed(0)}%"></span></span>`;
      }
      case "best_val_acc": case "test_acc": return pfd.pct(r[key]);
      case "duration": return pfd.secs(r.duration);
      default: return pfd.esc(r[key] ?? "–");
    }
  }

  function render() {
    const text = filter.value.trim().toLowerCase();
    const status = statusFilter.value;
    let shown = runs.filter(r => (!status || r.status === status) && (!text ||
      [r.name, r.model, r.data, r.trainer, r.status].some(v => String(v ?? "").toLowerCase().includes(text))));
    shown.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      if (x === y) return a.name < b.name ? -1 : 1;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    document.getElementById("count").textContent = `${shown.length} of ${runs.length} runs`;
    if (!runs.length) {
      document.getElementById("runs").innerHTML = `<div class="empty">No run folders yet. Train one with
        <code>pfdtrain train</code>; it appears here without a reload.</div>`;
      return;
    }
    const head = "<th></th>" + columns.map(c => `<th class="sortable ${c.num ? "num" : ""}" data-key="${c.key}">${c.label}${
      c.key === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""}</th>`).join("");
    const body = shown.map(r => `<tr data-run="${pfd.esc(r.name)}"><td><input type="checkbox" data-name="${pfd.esc(r.name)}" ${
      selected.has(r.name) ? "checked" : ""}></td>` + columns.map(c =>
      `<td class="${c.num ? "num" : ""}">${cell(c.key, r)}</td>`).join("") + "</tr>").join("");
    document.getElementById("runs").innerHTML = `<table id="runs-table"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  document.getElementById("runs").addEventListener("click", e => {
    const th = e.target.closest("th.sortable");
    if (th) {
      const key = th.dataset.key;
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      render();
    }
    const box = e.target.closest("input[type=checkbox]");
    if (box) {
      if (box.checked) selected.add(box.dataset.name); else selected.delete(box.dataset.name);
      compareButton.disabled = selected.size < 2;
    }
  });
  compareButton.addEventListener("click", () => {
    location.href = "/compare?" + [...selected].map(n => "runs=" + encodeURIComponent(n)).join("&");
  });
  filter.addEventListener("input", render);
  statusFilter.addEventListener("change", render);

  pfd.poll(async () => {
    const data = await pfd.get("/api/runs");
    document.getElementById("root").textContent = data.root;
    runs = data.runs;
    render();
    return runs.some(r => r.status === "running") ? 2000 : 5000;
  }, delay => delay);
})();
