"""The dashboard as a user meets it: real runs (a tiny real training), a real server on an
ephemeral port, HTTP requests; plus the event readers, the status rules and the
TensorBoard and CSV logs. The browser test is tests/test_dashboard_browser.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pfdtrain.cli import main
from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.dashboard.runs import EventLog, RunStore, lock_held, run_status
from pfdtrain.dashboard.server import bind, make_server
from pfdtrain.training.cnn_callbacks import Callback, DashboardEventWriter
from pfdtrain.training.run_folder import RunFolderLock
from tests.helpers import TINY_CLI_CONFIG, lifecycle, tiny_trainer

# TINY_CLI_CONFIG with 4x shorter windows: two epochs in a few seconds.
DASH_CONFIG = {**TINY_CLI_CONFIG, "name": "tiny",
               "data": {**TINY_CLI_CONFIG["data"], "window_length": 256, "window_stride": 256},
               "synthetic": {"record_duration": 0.25, "records_per_class": 12},
               "logging": {"tensorboard": True, "csv": True}}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These tiny models gain nothing from a second thread, and on a shared 2-core machine
    a second spinning thread costs seconds; the setting is put back for the other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder: one real finished run (evaluated), and folders in every odd state."""
    from pfdtrain.evaluation.evaluate import evaluate_checkpoint
    from pfdtrain.pipeline import run_training

    root = tmp_path_factory.mktemp("dashboard")
    folder = root / "runs"
    config = TrainingConfig.from_dict({**DASH_CONFIG, "output_dir": str(folder),
                                       "data": {**DASH_CONFIG["data"],
                                                "cache_dir": str(root / "data")}})
    run_training(config, progress_bar=False, quiet=True)
    evaluate_checkpoint(folder / "tiny" / "checkpoints" / "best_model.pth", snrs=(10,))
    events = (folder / "tiny" / "events.jsonl").read_text().splitlines(keepends=True)
    config_text = (folder / "tiny" / "config.yaml").read_text()

    def make(name: str, lines: list[str], config: bool = True) -> Path:
        run = folder / name
        run.mkdir(parents=True)
        (run / "events.jsonl").write_text("".join(lines))
        if config:
            (run / "config.yaml").write_text(config_text)
        return run

    upto_epoch = [line for line in events[:events.index(next(
        line for line in events if '"epoch_complete"' in line)) + 1]]
    make("killed", upto_epoch)  # died without train_end, nobody holds its lock
    make("crashed", upto_epoch + ['{"event": "train_end", "status": "crashed", "error": '
                                  '"RuntimeError: CUDA out of memory", "schema": 1}\n'])
    make("corrupt", upto_epoch[:1] + ["{not json\n"] + upto_epoch[1:] + ['{"event": "epo'])
    make("half-deleted", upto_epoch, config=False)
    make("nested/runs/deep", events)  # a benchmark's runs live two levels down
    live = make("live", upto_epoch)
    (folder / "bench").mkdir()
    (folder / "bench" / "results.json").write_text(json.dumps({
        "suite": "journal", "what": "demo", "epochs": 2, "seeds": [0, 1],
        "summary": {"tasks": {"t1": {"cnn1d": {"accuracy": {"mean": 90.5, "std": 1.2, "n": 2}}}},
                    "average": {"cnn1d": {"accuracy": {"mean": 90.5, "std": 1.2, "n": 2}}}}}))
    secret = root / "secret"
    secret.mkdir()
    (secret / "events.jsonl").write_text('{"event": "train_begin"}\n')
    (folder / "escape").symlink_to(secret)  # a link out of RUNS_DIR is never followed
    with RunFolderLock(live):  # a live process holds the lock: status running
        yield folder


@pytest.fixture(scope="module")
def server(runs):
    sock = bind("127.0.0.1", 0)
    srv = make_server(runs, sock, "127.0.0.1")
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield base
    srv.should_exit = True
    thread.join(timeout=10)


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def get_json(url: str) -> dict:
    status, body, _ = get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


# ----------------------------------------------------------------------------- the real run
def test_a_real_run_writes_the_events_tensorboard_and_csv(runs):
    run = runs / "tiny"
    events = _lines(run / "events.jsonl")
    assert all(e["schema"] == 1 for e in events)
    assert lifecycle(events) == ["train_begin", "epoch_complete", "epoch_complete", "train_end"]
    begin = events[0]
    assert begin["config"]["name"] == "tiny" and begin["facts"]["model"] == "CNN1D"
    assert {"seed", "pytorch_version", "device", "optimizer", "batch_size"} <= set(begin["facts"])
    saved = [e for e in events if e["event"] == "checkpoint_saved"]
    assert {e["kind"] for e in saved} >= {"best", "latest", "final"}
    assert all((run / "checkpoints" / e["file"]).is_file() for e in saved)
    end = next(e for e in events if e["event"] == "train_end")
    assert end["status"] == "finished"
    evaluations = [e for e in events if e["event"] == "evaluation_complete"]
    assert [e["source"] for e in evaluations] == ["train", "evaluate"]
    assert evaluations[0]["metrics_file"] == "test_metrics.json" and evaluations[0]["split"] == "test"
    assert evaluations[1]["metrics_file"] == "metrics.json"
    assert evaluations[1]["accuracy"] == json.loads((run / "metrics.json").read_text())["accuracy"]

    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tensorboard")).Reload()
    tags = board.Tags()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr",
            "gradient_norm"} <= set(tags["scalars"])
    assert [s.step for s in board.Scalars("loss/train")] == [1, 2]
    assert "test/confusion_matrix" in tags["images"]
    assert any((run / "tensorboard" / "hparams").iterdir())  # hyperparameters + final metrics


def test_a_crash_and_ctrl_c_end_the_event_stream_with_their_status(tmp_path):
    class Boom(Callback):
        def __init__(self, exc):
            self.exc = exc

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise self.exc

    for exc, status in ((RuntimeError("CUDA out of memory"), "crashed"),
                        (KeyboardInterrupt(), "interrupted")):
        path = tmp_path / f"{status}.jsonl"
        trainer = tiny_trainer([DashboardEventWriter(path), Boom(exc)])
        with pytest.raises(type(exc)):
            trainer.fit(3)
        end = _lines(path)[-1]
        assert (end["event"], end["status"]) == ("train_end", status)
        assert end["epochs_completed"] == 1
        if status == "crashed":
            assert end["error"] == "RuntimeError: CUDA out of memory"


def test_epoch_progress_is_throttled_by_its_interval(tmp_path):
    every, never = tmp_path / "every.jsonl", tmp_path / "never.jsonl"
    tiny_trainer([DashboardEventWriter(every, progress_interval=0.0),
                  DashboardEventWriter(never, progress_interval=3600.0)]).fit(1)
    progress = [e for e in _lines(every) if e["event"] == "epoch_progress"]
    assert [e["batch"] for e in progress] == [1, 2, 3, 4]  # 32 windows in batches of 8
    assert all(e["batches"] == 4 and e["epoch"] == 1 and e["eta"] >= e["epoch_eta"] >= 0
               for e in progress)
    assert progress[-1]["epoch_eta"] == 0 and progress[0]["samples_per_sec"] > 0
    assert not [e for e in _lines(never) if e["event"] == "epoch_progress"]


def test_csv_log_resumes_without_repeating_an_epoch(tmp_path):
    """A resume from epoch 2's checkpoint of a run that had logged 3 epochs: the CSV is cut
    back to the checkpoint, and epoch 3 is logged once, by the resumed session."""
    from pfdtrain.training.cnn_callbacks import ModelCheckpointCallback
    from pfdtrain.training.logging_callbacks import CSVLogger

    csv_path, folder = tmp_path / "metrics.csv", tmp_path / "checkpoints"
    tiny_trainer([CSVLogger(csv_path), ModelCheckpointCallback(
        folder, monitor="val_acc", save_best_only=False)]).fit(3)
    first = csv_path.read_text().splitlines()
    assert [r.split(",")[0] for r in first[1:]] == ["1", "2", "3"]
    resumed = tiny_trainer([CSVLogger(csv_path)])
    resumed.load_checkpoint(next(folder.glob("checkpoint_epoch002_*.pth")))
    resumed.fit(3)
    again = csv_path.read_text().splitlines()
    assert again[0] == first[0] and [r.split(",")[0] for r in again[1:]] == ["1", "2", "3"]
    assert again[1:3] == first[1:3]  # the rows before the checkpoint are kept as they were


# ----------------------------------------------------------------------------- readers, status
def test_event_log_reads_a_growing_file_incrementally(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    assert not log.refresh() and not log.exists
    path.write_text('{"event": "train_begin"}\n{"event": "epoch_com')
    assert log.refresh()
    assert [e["event"] for e in log.events] == ["train_begin"] and log.partial_bytes > 0
    assert not log.refresh()  # unchanged: nothing read
    with open(path, "a") as handle:  # the writer finishes its line, a corrupt one follows
        handle.write('plete", "epoch": 1}\n[1, 2]\n{"event": "epoch_complete", "epoch": 2}\n')
    assert log.refresh()
    assert [e.get("epoch") for e in log.events] == [None, 1, 2]
    assert [b["line"] for b in log.bad_lines] == [3] and log.partial_bytes == 0
    generation = log.generation
    path.write_text('{"event": "train_begin"}\n{"event": "resumed", "epoch": 2}\n'
                    '{"event": "epoch_complete", "epoch": 2}\n')  # cut back and regrown
    log.refresh()
    assert log.generation == generation + 1
    assert [e["event"] for e in log.events] == ["train_begin", "resumed", "epoch_complete"]
    assert log.bad_lines == []


def test_status_comes_from_the_lock_and_the_events(tmp_path):
    begun = [{"event": "train_begin"}, {"event": "epoch_complete", "epoch": 1}]
    assert run_status(begun, held=True) == "running"
    assert run_status(begun, held=False) == "killed"
    assert run_status([], held=False) == "not_started"
    assert run_status(begun, held=None) == "unknown"
    for status in ("finished", "stopped_early", "crashed", "interrupted"):
        assert run_status(begun + [{"event": "train_end", "status": status}], False) == status
    old = begun + [{"event": "train_end", "stopped_early": True}]  # written before schema 1
    assert run_status(old, held=False) == "stopped_early"
    resumed = begun + [{"event": "train_end", "status": "finished"}, {"event": "resumed"}]
    assert run_status(resumed, held=False) == "killed"
    assert run_status(resumed + [{"event": "train_end", "status": "finished"}], True) == "running"

    assert lock_held(tmp_path) is False  # no .lock file: never created by the probe
    assert not (tmp_path / ".lock").exists()
    with RunFolderLock(tmp_path):
        assert lock_held(tmp_path) is True
    assert lock_held(tmp_path) is False  # released (the kernel does it on any death too)


# ----------------------------------------------------------------------------- the HTTP API
def test_runs_api_lists_every_run_with_its_status(server):
    data = get_json(f"{server}/api/runs")
    rows = {r["name"]: r for r in data["runs"]}
    assert set(rows) == {"tiny", "killed", "crashed", "corrupt", "half-deleted", "live",
                         "nested/runs/deep"}
    assert (rows["crashed"]["status"], rows["crashed"]["error"]) == (
        "crashed", "RuntimeError: CUDA out of memory")
    tiny = rows["tiny"]
    assert (tiny["status"], tiny["model"], tiny["trainer"]) == ("finished", "cnn1d", "cnn")
    assert (tiny["epochs_done"], tiny["total_epochs"]) == (2, 2)
    assert tiny["test_acc"] is not None and tiny["best_val_acc"] is not None
    assert tiny["duration"] > 0 and tiny["problems"] == 0
    assert rows["killed"]["status"] == "killed" and rows["live"]["status"] == "running"
    assert rows["corrupt"]["problems"] == 2 and rows["half-deleted"]["problems"] == 1


def test_run_api_gives_the_page_its_config_facts_checkpoints_and_report(server):
    d = get_json(f"{server}/api/run?name=tiny")
    assert d["config"]["model"]["name"] == "cnn1d" and d["facts"]["optimizer"] == "AdamW"
    kinds = {c["file"]: c["kind"] for c in d["checkpoints"]}
    assert kinds["best_model.pth"] == "best" and kinds["final_model.pth"] == "final"
    report = d["evaluation"]
    assert {"confusion_matrix", "per_class", "calibration", "robustness"} <= set(report)
    assert d["test_metrics"]["confusion_matrix"] and d["problems"] == []

    corrupt = get_json(f"{server}/api/run?name=corrupt")["problems"]
    assert any("line 2 is not a valid event" in p for p in corrupt)
    assert any("unfinished line" in p for p in corrupt)
    assert any("config.yaml is missing" in p
               for p in get_json(f"{server}/api/run?name=half-deleted")["problems"])


def test_events_api_is_incremental(server):
    first = get_json(f"{server}/api/events?name=tiny")
    assert first["reset"] and first["start"] == 0 and not first["more"]
    total, generation = first["next"], first["generation"]
    assert total == len(first["events"]) > 5
    rest = get_json(f"{server}/api/events?name=tiny&after={total - 2}&generation={generation}")
    assert not rest["reset"] and rest["events"] == first["events"][-2:]
    stale = get_json(f"{server}/api/events?name=tiny&after={total}&generation={generation + 7}")
    assert stale["reset"] and len(stale["events"]) == total  # another generation: all again


def test_nothing_outside_the_runs_folder_is_served(server):
    for name in ("..", "../secret", "..%2Fsecret", "%2Fetc%2Fpasswd", "escape", "tiny/..",
                 "tiny/../../secret", ".", "tiny/checkpoints", "nested/../tiny", "%00"):
        status, body, _ = get(f"{server}/api/run?name={name}")
        assert status == 404, (name, status)
        assert b"no run folder named" in body
        assert get(f"{server}/api/events?name={name}")[0] == 404
    for path in ("/static/../runs.py", "/static/..%2Fruns.py", "/static/%2e%2e/app.py",
                 "/static/../../../../etc/passwd"):
        status, body, _ = get(server + path)
        assert status == 404 and b"RunStore" not in body and b"root:" not in body, path
    # DNS rebinding: a page from another origin reaching 127.0.0.1 under its own host name
    assert get(f"{server}/api/runs", {"Host": "attacker.example"})[0] == 400
    assert get_json(f"{server}/api/compare?runs=tiny&runs=killed")["runs"] == ["tiny", "killed"]
    assert get(f"{server}/api/compare?runs=tiny&runs=../secret")[0] == 404


def test_pages_and_the_chart_library_are_served_without_internet(server):
    for page in ("/", "/run?name=tiny", "/compare?runs=tiny", "/benchmarks"):
        status, body, kind = get(server + page)
        assert status == 200 and kind.startswith("text/html"), page
        assert b"http://" not in body and b"https://" not in body, page  # no CDN
        for script in (s.split(b'"')[0] for s in body.split(b'<script src="')[1:]):
            assert get(server + script.decode())[0] == 200, script
    status, body, kind = get(f"{server}/vendor/plotly.min.js")
    assert status == 200 and "javascript" in kind and len(body) > 1_000_000


def test_compare_and_benchmarks_api(server):
    d = get_json(f"{server}/api/compare?runs=tiny&runs=nested/runs/deep")
    assert set(d["curves"]) == {"tiny", "nested/runs/deep"}
    assert d["curves"]["tiny"]["epoch"] == [1, 2] and len(d["curves"]["tiny"]["val_acc"]) == 2
    assert d["config_diff"] == []  # the same config (names are left out)
    assert [m["name"] for m in d["metrics"]] == ["tiny", "nested/runs/deep"]
    assert d["metrics"][0]["test_acc"] is not None and "accuracy at 10 dB" in d["metrics"][0]
    assert get(f"{server}/api/compare")[0] == 400
    bench = get_json(f"{server}/api/benchmarks")["results"]
    assert [b["file"] for b in bench] == ["bench/results.json"]
    assert bench[0]["results"]["summary"]["average"]["cnn1d"]["accuracy"]["mean"] == 90.5


def test_run_store_refuses_names_that_leave_the_folder(runs):
    from pfdtrain.dashboard.runs import RunNotFound

    store = RunStore(runs)
    assert store.get("nested/runs/deep").path == runs / "nested/runs/deep"
    for name in ("", "/etc", "tiny\\..", "a/../tiny", "escape", ".hidden"):
        with pytest.raises(RunNotFound):
            store.get(name)


# ----------------------------------------------------------------------------- the command
def test_dashboard_command_names_the_problem_and_the_fix(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "nope")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the message is wrapped at 100 columns
    assert "is not a folder of run folders" in err and "pfdtrain dashboard runs/" in err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    finally:
        busy.close()
    err = " ".join(capsys.readouterr().err.split())
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port 0" in err


def test_only_the_address_served_is_answered():
    from pfdtrain.dashboard.server import _is_loopback, allowed_hosts

    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "[::1]"]
    assert allowed_hosts("192.168.1.5")[-1] == "192.168.1.5"  # a LAN address, by that address
    assert allowed_hosts("0.0.0.0") == ["*"]  # the user chose every address
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5")


def test_lock_probe_never_takes_a_free_lock_for_long(tmp_path):
    """The probe's shared flock is released at once: a train starting right after it wins."""
    with RunFolderLock(tmp_path):
        pass
    for _ in range(50):
        assert lock_held(tmp_path) is False
        with RunFolderLock(tmp_path):  # would raise RunFolderBusyError if the probe kept it
            pass
    assert os.path.getsize(tmp_path / ".lock") > 0
    shutil.rmtree(tmp_path)
