// Run page: curves that gain a point as each epoch_complete event arrives (polled every 1 s
// while the run is running), the progress of the running epoch, and the run's files.
"use strict";
(() => {
  const name = new URLSearchParams(location.search).get("name") || "";
  document.getElementById("name").textContent = name;
  document.title = name + " · pfdtrain dashboard";
  const KEYS = ["train_loss", "val_loss", "train_acc", "val_acc", "lr"];
  let generation = -1, next = 0, status = null, detailWanted = true, lastDetail = 0;
  let hist = {}, progress = null, summary = null;
  // what the page has shown, in order (read by the browser test)
  const seen = window.pfdSeen = {points: [], statuses: []};
  const reset = () => { hist = {epoch: []}; for (const k of KEYS) hist[k] = []; progress = null; };
  reset();

  function line(key, label, dash) {
    // copies: Plotly.react redraws only for new arrays, not for the same ones grown in place
    // markers only while they can be told apart (1,000 SVG markers per curve cost a second)
    return {x: hist.epoch.slice(), y: hist[key].slice(), name: label,
            mode: hist.epoch.length <= 150 ? "lines+markers" : "lines", marker: {size: 4},
            line: {dash: dash || "solid"}};
  }
  function drawCurves() {
    const hasVal = hist.val_loss.some(v => v !== null);
    Plotly.react("chart-loss", [line("train_loss", "train"), ...(hasVal ? [line("val_loss", "val")] : [])],
      pfd.layout("Loss"), pfd.plotConfig);
    Plotly.react("chart-acc", [line("train_acc", "train"), ...(hasVal ? [line("val_acc", "val")] : [])],
      pfd.layout("Accuracy (%)"), pfd.plotConfig);
    Plotly.react("chart-lr", [line("lr", "learning rate")], pfd.layout("Learning rate",
      {yaxis: {exponentformat: "e"}}), pfd.plotConfig);
    document.body.dataset.points = String(hist.epoch.length);
    seen.points.push(hist.epoch.length);
  }

  function fact(k, v) { return `<div class="fact"><div class="k">${pfd.esc(k)}</div><div class="v">${v}</div></div>`; }
  function drawHeadline() {
    if (!summary) return;
    const s = summary;
    document.getElementById("status").innerHTML = pfd.badge(s.status);
    document.body.dataset.status = s.status;
    if (seen.statuses[seen.statuses.length - 1] !== s.status) seen.statuses.push(s.status);
    const eta = s.status === "running" ? pfd.secs(progress ? progress.eta : s.eta) : "–";
    document.getElementById("headline").innerHTML = [
      fact("Model", pfd.esc(s.model ?? "–")), fact("Data", pfd.esc(s.data ?? "–")),
      fact("Trainer", pfd.esc(s.trainer ?? "–")),
      fact("Epochs", `<span id="epochs">${s.epochs_done} / ${s.total_epochs ?? "?"}</span>`),
      fact("Best val acc", pfd.pct(s.best_val_acc)), fact("Test acc", pfd.pct(s.test_acc)),
      fact("Duration", pfd.secs(s.duration)), fact("ETA", eta),
      fact("Last event", pfd.ago(s.last_update)),
    ].join("");
    const box = document.getElementById("progress-box");
    if (progress && s.status === "running") {
      const p = progress;
      box.hidden = false;
      document.getElementById("progress-bar").style.width = (100 * p.batch / Math.max(p.batches, 1)).toFixed(1) + "%";
      document.getElementById("progress-text").textContent =
        `Epoch ${p.epoch} / ${p.total_epochs}: batch ${p.batch} / ${p.batches} · ` +
        `${Math.round(p.samples_per_sec)} samples/s · epoch ETA ${pfd.secs(p.epoch_eta)} · run ETA ${pfd.secs(p.eta)}`;
    } else {
      box.hidden = true;
    }
  }

  function heatmap(id, matrix, names, title) {
    const norm = matrix.map(row => { const n = row.reduce((a, b) => a + b, 0); return row.map(v => n ? v / n : 0); });
    Plotly.react(id, [{z: norm, x: names, y: names, type: "heatmap", colorscale: "Blues", reversescale: true, zmin: 0, zmax: 1,
      text: matrix.map((row, i) => row.map((v, j) => `${v} (${(100 * norm[i][j]).toFixed(1)} %)`)),
      hovertemplate: "true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"}],
      pfd.layout(title, {xaxis: {title: {text: "predicted"}, tickangle: -40}, yaxis: {title: {text: "true"}, autorange: "reversed"},
        margin: {l: 110, r: 10, t: 36, b: 110}}), pfd.plotConfig);
  }

  function drawEvaluation(d) {
    const m = d.evaluation || d.test_metrics;
    const out = document.getElementById("evaluation");
    if (!m) { out.innerHTML = ""; return; }
    const full = !!d.evaluation;
    const names = m.class_names || Object.keys(m.per_class || {});
    let html = `<h2>Evaluation <span class="muted">(${full ? "metrics.json of pfdtrain evaluate" : "test_metrics.json of the run"}, split ${pfd.esc(typeof m.split === "string" ? m.split : "test")})</span></h2>`;
    html += `<div class="facts">` + [
      ["Accuracy", pfd.pct(m.accuracy)], ["Macro F1", pfd.num(m.macro_f1, 4)],
      ["Loss", pfd.num(m.loss ?? m.test_loss, 4)],
      ...(full ? [["Recording accuracy", pfd.pct(m.recording_accuracy)], ["ECE", pfd.num(m.ece, 4)]] : []),
      ["Windows", pfd.esc(m.num_windows ?? m.num_samples ?? "–")],
    ].map(([k, v]) => fact(k, v)).join("") + `</div>`;
    html += `<div class="cols"><div class="chart" id="chart-cm" style="width:520px;height:480px"></div><div>`;
    html += `<h2>Per class</h2>` + pfd.table([
      {key: "cls", label: "Class"}, {key: "precision", label: "Precision", num: true, fmt: v => pfd.num(v, 3)},
      {key: "recall", label: "Recall", num: true, fmt: v => pfd.num(v, 3)},
      {key: "f1", label: "F1", num: true, fmt: v => pfd.num(v, 3)}, {key: "support", label: "Support", num: true}],
      Object.entries(m.per_class || {}).map(([cls, r]) => Object.assign({cls}, r)));
    html += `</div></div>`;
    if (full && m.robustness && Object.keys(m.robustness).length) {
      html += `<h2>Noise robustness</h2><div class="cols"><div>` + pfd.table([
        {key: "snr", label: "SNR (dB)"}, {key: "accuracy", label: "Accuracy", num: true, fmt: v => pfd.pct(v)},
        {key: "accuracy_drop", label: "Drop", num: true, fmt: v => pfd.num(v, 2)},
        {key: "macro_f1", label: "Macro F1", num: true, fmt: v => pfd.num(v, 4)}],
        [{snr: "clean", accuracy: m.accuracy, accuracy_drop: null, macro_f1: m.macro_f1},
         ...Object.entries(m.robustness).map(([snr, r]) => Object.assign({snr}, r))]) +
        `</div><div class="chart" id="chart-robust" style="width:440px;height:280px"></div></div>`;
    }
    if (full && m.calibration && m.calibration.bins) {
      html += `<h2>Calibration</h2><div class="chart" id="chart-cal" style="width:440px;height:300px"></div>`;
    }
    if (full && m.by_group && Object.keys(m.by_group).length) {
      for (const [key, rows] of Object.entries(m.by_group)) {
        html += `<h2>By operating condition: ${pfd.esc(key)}</h2>` + pfd.table([
          {key: "value", label: key}, {key: "num_windows", label: "Windows", num: true},
          {key: "num_recordings", label: "Recordings", num: true},
          {key: "accuracy", label: "Accuracy", num: true, fmt: v => pfd.pct(v)},
          {key: "recording_accuracy", label: "Recording accuracy", num: true, fmt: v => pfd.pct(v)}], rows);
      }
    }
    out.innerHTML = html;
    if (m.confusion_matrix) heatmap("chart-cm", m.confusion_matrix, names, "Confusion matrix (row-normalised)");
    if (document.getElementById("chart-robust")) {
      const entries = Object.values(m.robustness);
      Plotly.react("chart-robust", [{x: entries.map(r => r.snr_db), y: entries.map(r => r.accuracy),
        mode: "lines+markers", name: "accuracy"}], pfd.layout("Accuracy vs SNR",
        {xaxis: {title: {text: "SNR (dB)"}}, yaxis: {title: {text: "%"}}}), pfd.plotConfig);
    }
    if (document.getElementById("chart-cal")) {
      const bins = m.calibration.bins.filter(b => b.count);
      Plotly.react("chart-cal", [
        {x: bins.map(b => b.confidence), y: bins.map(b => b.accuracy), mode: "lines+markers", name: "model"},
        {x: [0, 1], y: [0, 1], mode: "lines", name: "perfect", line: {dash: "dot", color: "#999"}}],
        pfd.layout(`Reliability (ECE ${pfd.num(m.ece, 4)})`, {xaxis: {title: {text: "confidence"}, range: [0, 1]},
          yaxis: {title: {text: "accuracy"}, range: [0, 1]}}), pfd.plotConfig);
    }
  }

  function drawDetail(d) {
    const ended = d.summary.error ? [`training ended with ${d.summary.error}`] : [];
    document.getElementById("problems").innerHTML = ended.concat(d.problems).map(p => `<div>⚠ ${pfd.esc(p)}</div>`).join("");
    document.getElementById("config").textContent = d.config ? JSON.stringify(d.config, null, 2) : "no configuration found";
    document.getElementById("facts").innerHTML = d.facts ? pfd.table([{key: "k", label: "Fact"}, {key: "v", label: "Value"}],
      Object.entries(d.facts).map(([k, v]) => ({k, v: String(v)}))) : `<p class="muted">not recorded (no train_begin event)</p>`;
    document.getElementById("checkpoints").innerHTML = d.checkpoints.length ? pfd.table([
      {key: "file", label: "File"}, {key: "kind", label: "Kind"}, {key: "epoch", label: "Epoch", num: true},
      {key: "value", label: "Monitor", num: true, fmt: (v, r) => v === null || v === undefined ? "–" : `${pfd.esc(r.monitor)} ${pfd.num(v, 4)}`},
      {key: "bytes", label: "Size", num: true, fmt: v => (v / 1e6).toFixed(2) + " MB"},
      {key: "modified", label: "Written", fmt: v => pfd.esc(new Date(v * 1000).toLocaleString())}], d.checkpoints)
      : `<p class="muted">none yet</p>`;
    drawEvaluation(d);
  }

  async function refresh() {
    let changed = false;
    for (;;) {
      const r = await pfd.get(`/api/events?name=${encodeURIComponent(name)}&after=${next}&generation=${generation}`);
      if (r.reset) { reset(); changed = true; detailWanted = true; }
      generation = r.generation;
      next = r.next;
      summary = r.summary;
      for (const e of r.events) {
        if (e.event === "epoch_complete") {
          hist.epoch.push(e.epoch);
          for (const k of KEYS) hist[k].push(e[k] ?? null);
          changed = true;
          detailWanted = true;  // its checkpoints
        } else if (["evaluation_complete", "train_end", "resumed", "train_begin"].includes(e.event)) {
          detailWanted = true;
        }
      }
      progress = r.progress;
      if (!r.more) break;
    }
    if (changed || next === 0) drawCurves();
    if (summary && summary.status !== status) { status = summary.status; detailWanted = true; }
    drawHeadline();
    if (detailWanted || Date.now() - lastDetail > 15000) {
      detailWanted = false;
      lastDetail = Date.now();
      drawDetail(await pfd.get(`/api/run?name=${encodeURIComponent(name)}`));
    }
    return status === "running" ? 1000 : 5000;
  }
  // a run that does not exist yet (about to start) is asked for again every second
  pfd.poll(refresh, delay => delay, 1000);
})();
