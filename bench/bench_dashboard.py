"""Dashboard benchmark (issue 13 §2): 50 runs of 1,000 epochs each.

    python bench/bench_dashboard.py [--runs 50] [--epochs 1000] [--idle 20]
                                    [--out bench/results/dashboard.json]

Writes a runs folder of ``--runs`` finished runs with ``--epochs`` epochs each (the events a
real run writes per epoch: one ``epoch_progress``, the ``epoch_complete``, two
``checkpoint_saved``; a real ``config.yaml`` and ``test_metrics.json``), starts
``pfdtrain dashboard`` on it as a user does, and measures:

* the HTTP time of each page and of the API calls it makes, cold (the server's first read
  of the 50 event files) and warm (median of 10; what every later poll costs);
* in headless Chromium (Debian's package, driven by playwright): the time from navigation
  until the runs table shows every run, and until the run page has drawn all its points
  (first visit: plotly.min.js, 4.6 MB, loaded and compiled; then a reload, from cache);
* the server's CPU while idle with the browser open on the run page and on the runs page
  (user + system time from ``/proc/<pid>/stat`` over ``--idle`` seconds, as % of one core);
* how long after an ``epoch_complete`` reaches a running run's events file its point is on
  the open run page (the page polls every second while the run's lock is held).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_info, write_results  # noqa: E402

from pfdtrain.config.training_config import TrainingConfig  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CLASSES = ["healthy", "misalignment", "imbalance", "clearance", "lubrication", "cavitation",
           "wear", "oil_whirl", "mixed_misalign_imbalance", "mixed_wear_lube",
           "mixed_cavit_clearance"]


def make_runs(root: Path, runs: int, epochs: int) -> None:
    """``runs`` finished run folders of ``epochs`` epochs, with the events a real run writes."""
    for r in range(runs):
        config = TrainingConfig.from_dict({"name": f"run-{r:02d}", "num_epochs": epochs,
                                           "seed": r, "optimizer": {"lr": 1e-3 * (1 + r % 5)}})
        run = root / config.name
        (run / "checkpoints").mkdir(parents=True)
        config.to_yaml(run / "config.yaml")
        for name in ("best_model.pth", "latest_model.pth", "final_model.pth"):
            (run / "checkpoints" / name).write_bytes(b"\0" * 1024)
        lines = [{"event": "train_begin", "total_epochs": epochs, "start_epoch": 1,
                  "timestamp": "2026-12-02T09:00:00", "config": config.to_dict(),
                  "facts": {"seed": r, "model": "CNN1D", "device": "cpu"}}]
        for e in range(1, epochs + 1):
            acc = 100 * (1 - 0.9 * 0.995 ** e)
            lines += [
                {"event": "epoch_progress", "epoch": e, "total_epochs": epochs, "batch": 50,
                 "batches": 110, "samples_per_sec": 900.0, "epoch_eta": 2.0, "eta": 3000.0,
                 "elapsed_time": 3.0 * e - 1.5, "timestamp": "2026-12-02T09:00:00"},
                {"event": "epoch_complete", "epoch": e, "total_epochs": epochs,
                 "train_loss": 2.4 * 0.995 ** e, "train_acc": acc, "val_loss": 2.5 * 0.995 ** e,
                 "val_acc": acc - 1, "lr": 1e-3, "elapsed_time": 3.0 * e},
                {"event": "checkpoint_saved", "file": "latest_model.pth", "kind": "latest",
                 "epoch": e, "monitor": "val_acc", "value": acc - 1,
                 "timestamp": "2026-12-02T09:00:00"},
                {"event": "checkpoint_saved", "file": "best_model.pth", "kind": "best",
                 "epoch": e, "monitor": "val_acc", "value": acc - 1,
                 "timestamp": "2026-12-02T09:00:00"}]
        lines.append({"event": "train_end", "epochs_completed": epochs, "total_epochs": epochs,
                      "stopped_early": False, "best_val_acc": acc - 1, "best_val_loss": 0.1,
                      "elapsed_time": 3.0 * epochs, "timestamp": "2026-12-02T10:00:00",
                      "status": "finished"})
        (run / "events.jsonl").write_text("".join(json.dumps({**x, "schema": 1}) + "\n"
                                                  for x in lines))
        n = len(CLASSES)
        (run / "test_metrics.json").write_text(json.dumps({
            "accuracy": 95.0, "macro_f1": 0.95, "test_loss": 0.2, "class_names": CLASSES,
            "confusion_matrix": [[10 if i == j else 0 for j in range(n)] for i in range(n)],
            "per_class": {c: {"precision": 1, "recall": 1, "f1": 1, "support": 10}
                          for c in CLASSES}}))


def timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        size = len(response.read())
    return time.perf_counter() - start, size


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _epoch_to_point(page, url: str, root: Path, samples: int = 8) -> dict:
    """Seconds from an ``epoch_complete`` line reaching the events file of a running run (its
    lock held, as by a training process) to the run page having drawn that point."""
    from pfdtrain.training.run_folder import RunFolderLock
    from pfdtrain.utils.events import append_event

    run = root / "zz-live"
    config = TrainingConfig.from_dict({"name": "zz-live", "num_epochs": samples})
    run.mkdir()
    config.to_yaml(run / "config.yaml")
    events = run / "events.jsonl"
    delays = []
    with RunFolderLock(run):
        append_event(events, {"event": "train_begin", "total_epochs": samples, "start_epoch": 1,
                              "timestamp": "2026-12-02T09:00:00", "config": config.to_dict()})
        page.goto(f"{url}run?name=zz-live")
        page.wait_for_function("document.body.dataset.status === 'running'", timeout=60_000)
        for epoch in range(1, samples + 1):
            time.sleep(0.37 * epoch % 1.0)  # land at different moments of the page's 1 s poll
            append_event(events, {"event": "epoch_complete", "epoch": epoch,
                                  "total_epochs": samples, "train_loss": 1.0 / epoch,
                                  "train_acc": 50.0 + epoch, "val_loss": 1.1 / epoch,
                                  "val_acc": 49.0 + epoch, "lr": 1e-3, "elapsed_time": epoch})
            written = time.perf_counter()
            page.wait_for_function(f"document.body.dataset.points === '{epoch}'", timeout=30_000,
                                   polling=20)
            delays.append(time.perf_counter() - written)
    return {"samples": samples, "median": round(statistics.median(delays), 3),
            "max": round(max(delays), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU sampling")
    parser.add_argument("--out", default="bench/results/dashboard.json")
    args = parser.parse_args()

    results: dict = {"benchmark": "dashboard", "runs": args.runs, "epochs": args.epochs,
                     "machine": machine_info()}
    root = Path(tempfile.mkdtemp(prefix="pfdtrain-dash-bench-"))
    server = None
    try:
        started = time.perf_counter()
        make_runs(root, args.runs, args.epochs)
        size = sum(p.stat().st_size for p in root.rglob("events.jsonl"))
        results["events_bytes_total"] = size
        results["events_lines_per_run"] = 4 * args.epochs + 2
        results["write_runs_s"] = round(time.perf_counter() - started, 2)

        server = subprocess.Popen([sys.executable, "-m", "pfdtrain", "dashboard", str(root),
                                   "--port", "0"], stdout=subprocess.PIPE, text=True)
        url = server.stdout.readline().split()[2]
        run = f"run-{args.runs // 2:02d}"
        http: dict = {}
        for label, path in (("api_runs", "api/runs"), ("runs_page_html", ""),
                            ("run_page_html", f"run?name={run}"),
                            ("api_run", f"api/run?name={run}"),
                            ("api_events_all", f"api/events?name={run}"),
                            ("api_events_poll", f"api/events?name={run}&after=999999&generation=1"),
                            ("api_compare_2", f"api/compare?runs=run-00&runs={run}")):
            cold, nbytes = timed_get(url + path)
            warm = [timed_get(url + path)[0] for _ in range(10)]
            http[label] = {"cold_s": round(cold, 4), "warm_median_s": round(statistics.median(warm), 4),
                           "warm_max_s": round(max(warm), 4), "bytes": nbytes}
        results["http"] = http

        chromium = shutil.which("chromium")
        if chromium is None:
            results["browser"] = "skipped: no chromium on PATH"
        else:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                browser_s = {}
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function(f"document.querySelectorAll('#runs-table tbody tr').length "
                                       f"=== {args.runs}", timeout=120_000)
                browser_s["runs_page_all_rows_s"] = round(time.perf_counter() - t, 3)
                idle = {}
                time.sleep(3)
                before, t0 = cpu_seconds(server.pid), time.perf_counter()
                time.sleep(args.idle)
                idle["runs_page_cpu_percent"] = round(
                    100 * (cpu_seconds(server.pid) - before) / (time.perf_counter() - t0), 3)
                t = time.perf_counter()
                page.goto(f"{url}run?name={run}")
                page.wait_for_function(f"document.body.dataset.points === '{args.epochs}'",
                                       timeout=120_000)
                browser_s["run_page_all_points_s"] = round(time.perf_counter() - t, 3)
                t = time.perf_counter()  # again, plotly.min.js now in the browser's cache
                page.reload()
                page.wait_for_function(f"document.body.dataset.points === '{args.epochs}'",
                                       timeout=120_000)
                browser_s["run_page_reload_all_points_s"] = round(time.perf_counter() - t, 3)
                time.sleep(3)
                before, t0 = cpu_seconds(server.pid), time.perf_counter()
                time.sleep(args.idle)
                idle["run_page_cpu_percent"] = round(
                    100 * (cpu_seconds(server.pid) - before) / (time.perf_counter() - t0), 3)
                idle["seconds_sampled"] = args.idle
                results["epoch_to_point_s"] = _epoch_to_point(page, url, root)
                browser.close()
            results["browser_load"] = browser_s
            results["idle_server_cpu"] = idle
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
