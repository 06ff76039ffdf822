"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` package, driven
by playwright; no downloaded browser) watches a tiny training that runs in another process.

Skipped, with the reason, where Chromium or playwright is missing; ``.ci/run`` installs
Chromium so CI runs it. Screenshots go to the test's tmp folder, and also to
``$PFDTRAIN_SCREENSHOTS`` when set (how README's docs/img/ pictures were made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_dashboard import DASH_CONFIG

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


def _start_dashboard(runs: Path) -> tuple[subprocess.Popen, str]:
    """``pfdtrain dashboard RUNS --port 0``, as a user starts it; its URL from its first line."""
    proc = subprocess.Popen([sys.executable, "-m", "pfdtrain", "dashboard", str(runs), "--port",
                             "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("pfdtrain dashboard: http://127.0.0.1:"), (line, proc.stderr.read()
                                                                       if proc.poll() else "")
    return proc, line.split()[2]


def test_run_page_follows_a_live_training_in_chromium(tmp_path):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    config = {**DASH_CONFIG, "name": "live", "num_epochs": 4, "logging": {}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    runs.mkdir()
    train = subprocess.Popen([sys.executable, "-m", "pfdtrain", "train", "--config", "tiny.yaml",
                              "--no-progress"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    dashboard, url = _start_dashboard(runs)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # The runs page shows the new run without a reload.
            page.goto(url)
            page.wait_for_selector('tr[data-run="live"]', timeout=60_000)
            page.goto(f"{url}run?name=live")
            page.wait_for_function("document.body.dataset.status === 'running'", timeout=60_000)
            first = int(page.evaluate("document.body.dataset.points"))
            assert first < 4, "the training ended before the page could watch it"
            # The curves gain points while it runs, then the status turns to finished.
            page.wait_for_function(f"Number(document.body.dataset.points) > {first}",
                                   timeout=60_000)
            page.wait_for_function("document.body.dataset.status === 'finished'", timeout=90_000)
            assert page.evaluate("document.body.dataset.points") == "4"
            assert page.inner_text("#epochs") == "4 / 4"
            page.wait_for_selector("#chart-cm .main-svg", timeout=20_000)  # test confusion matrix
            assert page.locator("#chart-loss .scatterlayer .trace").count() == 2  # train, val
            _screenshot(page, tmp_path, "dashboard-run.png")
            page.goto(url)
            page.wait_for_selector('tr[data-run="live"] .badge.finished', timeout=20_000)
            _screenshot(page, tmp_path, "dashboard-runs.png")
            page.goto(f"{url}compare?runs=live")
            page.wait_for_selector("#metrics-table", timeout=20_000)
            assert page.locator("#chart-val-acc .scatterlayer .trace").count() == 1
            assert errors == []
            browser.close()
        assert train.wait(timeout=60) == 0, train.stderr.read()[-2000:]
    finally:
        for proc in (train, dashboard):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
    assert (tmp_path / "dashboard-run.png").stat().st_size > 10_000
