"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` package, driven
by playwright; no downloaded browser) watches a tiny training that runs in another process.

Skipped, with the reason, where Chromium or playwright is missing; ``.ci/run`` installs
Chromium so CI runs it. Screenshots go to the test's tmp folder, and also to
``$PFDTRAIN_SCREENSHOTS`` when set (how README's docs/img/ pictures were made).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pfdtrain.dashboard.server import bind, make_server
from tests.test_dashboard import DASH_CONFIG

EPOCHS = 3

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium inside a closed network: no sandbox (root in CI), and none of the background
# connections (updates, sync, QUIC) it would otherwise wait on.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: install Debian's chromium package "
                             "(apt-get install chromium; .ci/run does) to run the browser test")


def _screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    target = os.environ.get("PFDTRAIN_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(target) / name)


@contextmanager
def _dashboard(runs: Path):
    """The dashboard server on an ephemeral port, in a thread of this process (a second
    interpreter importing torch would cost the 2-core CI machine seconds); the command
    itself is tested in test_dashboard.py."""
    sock = bind("127.0.0.1", 0)
    server = make_server(runs, sock, "127.0.0.1")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_run_page_follows_a_live_training_in_chromium(tmp_path):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    config = {**DASH_CONFIG, "name": "live", "num_epochs": EPOCHS, "logging": {}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    (runs / "bench").mkdir(parents=True)
    # what `pfdtrain benchmark --out runs/bench` writes (its summary part)
    (runs / "bench" / "results.json").write_text(json.dumps({
        "suite": "journal", "what": "demo", "epochs": 2, "seeds": [0, 1],
        "methods": {"cnn1d": "CNN1D"}, "tasks": {"t1": {"what": "task one"}},
        "summary": {"tasks": {"t1": {"cnn1d": {"accuracy": {"mean": 91.25, "std": 1.5, "n": 2}}}},
                    "average": {"cnn1d": {"accuracy": {"mean": 91.25, "std": 1.5, "n": 2}}}}}))
    # one thread: beside the browser and the server, more would only contend for 2 cores;
    # epochs paced to 1.5 s at least, as a real training's are (tests/paced_job.py)
    train = subprocess.Popen([sys.executable, str(Path(__file__).parent / "paced_job.py"),
                              "--pace", "1.5", "--", "train", "--config", "tiny.yaml",
                              "--no-progress"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        with _dashboard(runs) as url, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # The runs page, opened before the run exists and never reloaded, must list it;
            # the run page, opened before it too, waits for it (as after typing its name).
            runs_page = browser.new_page(viewport={"width": 1400, "height": 900})
            runs_page.on("pageerror", lambda exc: errors.append(str(exc)))
            runs_page.goto(url)
            runs_page.wait_for_selector("#runs .empty")  # "No run folders yet"
            page.goto(f"{url}run?name=live")
            page.wait_for_function("document.body.dataset.status === 'finished'", timeout=120_000)
            seen = page.evaluate("window.pfdSeen")
            # it watched the run live: status running first, then finished; the curves
            # gained their points one epoch at a time, not all at once at the end
            assert seen["statuses"][0] == "running" and seen["statuses"][-1] == "finished", seen
            points = [n for n in seen["points"] if n]
            assert points[0] < EPOCHS and points[-1] == EPOCHS, seen
            assert page.evaluate("document.body.dataset.points") == str(EPOCHS)
            assert page.inner_text("#epochs") == f"{EPOCHS} / {EPOCHS}"
            page.wait_for_selector("#chart-cm .main-svg", timeout=20_000)  # test confusion matrix
            assert page.locator("#chart-loss .scatterlayer .trace").count() == 2  # train, val
            _screenshot(page, tmp_path, "dashboard-run.png")
            runs_page.wait_for_selector('tr[data-run="live"] .badge.finished', timeout=20_000)
            _screenshot(runs_page, tmp_path, "dashboard-runs.png")
            page.goto(f"{url}compare?runs=live")
            page.wait_for_selector("#metrics-table", timeout=20_000)
            assert page.locator("#chart-val-acc .scatterlayer .trace").count() == 1
            page.goto(f"{url}benchmarks")
            page.wait_for_selector("table.bench", timeout=20_000)
            assert "91.25 ± 1.50" in page.inner_text("table.bench")
            assert errors == []
            browser.close()
        assert train.wait(timeout=60) == 0, train.stderr.read()[-2000:]
    finally:
        if train.poll() is None:
            train.terminate()
            train.wait(timeout=20)
    assert (tmp_path / "dashboard-run.png").stat().st_size > 10_000
