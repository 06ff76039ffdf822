"""The run folder under attack: damaged checkpoints, double starts, kills before the first
checkpoint and in the middle of a save, a full disk, a read-only folder, a wrong ``--out``.

Each case runs the real CLI in its own process. Faults are real where the machine allows
it without root: SIGKILL, a file-size limit (RLIMIT_FSIZE, the same failed ``write`` as a
full disk), and, where unprivileged user namespaces exist, a real full tmpfs and a real
read-only bind mount (skipped with the reason elsewhere).
"""

import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfdtrain.training.checkpoint import CheckpointError, load_checkpoint_file
from tests.helpers import LIFECYCLE_EVENTS, TINY_CLI_CONFIG, lifecycle, tiny_cli_workdir
from tests.helpers import run_cli as _run_cli


def run_cli(*args, **kwargs):
    """The CLI with its stderr unwrapped (error paragraphs are wrapped at 100 columns)."""
    proc = _run_cli(*args, **kwargs)
    proc.stderr = proc.stderr.replace("\n  ", " ")
    return proc

JOB = Path(__file__).with_name("fault_job.py")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


UNSHARE = _unshare_works()
NEEDS_UNSHARE = pytest.mark.skipif(
    not UNSHARE, reason="needs `unshare -rm` (unprivileged user and mount namespaces) to "
                        "mount a tmpfs or a read-only bind without root")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tiny_cli_workdir(tmp_path_factory, "faults")


@pytest.fixture(scope="module")
def reference(workdir):
    """An uninterrupted 2-epoch run: what every recovered run must equal."""
    run_cli("train", "--config", "tiny.yaml", "--set", "name=ref", cwd=workdir)
    return workdir / "runs" / "ref"


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _epochs_completed(run: Path) -> list[int]:
    return [e["epoch"] for e in _events(run) if e["event"] == "epoch_complete"]


def _temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*.tmp")]


def _damage_inside(path: Path) -> None:
    """Zero 64 bytes in the middle of a tensor's data: the archive stays readable."""
    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename),
                    key=lambda i: i.file_size)
    offset = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)
    data = bytearray(path.read_bytes())
    start = offset + entry.file_size // 2
    assert any(data[start:start + 64]), "picked bytes that are already zero"
    data[start:start + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _copy_run(src: Path, name: str) -> Path:
    dst = src.parent / name
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------------------------
# 1. integrity
# --------------------------------------------------------------------------------------------

def test_damage_inside_a_checkpoint_is_refused_on_every_load(workdir, reference):
    run = _copy_run(reference, "damaged")
    latest = run / "checkpoints" / "latest_model.pth"
    _damage_inside(latest)
    torch.load(latest, weights_only=True)  # torch alone does not notice

    proc = run_cli("inspect", str(latest), cwd=workdir, expect=2)
    assert "is damaged" in proc.stderr and "latest_model.pth" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("evaluate", str(latest), cwd=workdir, expect=2)
    assert "is damaged" in proc.stderr and not (run / "metrics.json").exists()

    from pfdtrain.evaluation.loading import load_model_for_evaluation
    from pfdtrain.training.knowledge_distillation import load_teacher
    with pytest.raises(CheckpointError, match="is damaged"):
        load_model_for_evaluation(latest, device="cpu")
    with pytest.raises(CheckpointError, match="is damaged"):
        load_teacher(latest, ["x"], torch.device("cpu"))

    # resume falls back to the newest good checkpoint beside it, and says so
    proc = run_cli("resume", str(run), "--epochs", "3", cwd=workdir)
    assert "is damaged" in proc.stderr and "Resuming from" in proc.stderr
    assert len(json.loads((run / "history.json").read_text())["train_loss"]) == 3


def test_predict_refuses_a_damaged_checkpoint(workdir, reference, tmp_path):
    run = _copy_run(reference, "damaged-predict")
    best = run / "checkpoints" / "best_model.pth"
    _damage_inside(best)
    np.save(tmp_path / "rec.npy", np.random.default_rng(0).normal(size=4096).astype(np.float32))
    proc = run_cli("predict", str(best), str(tmp_path / "rec.npy"), "--sampling-rate", "6400",
                   cwd=workdir, expect=2)
    assert "is damaged" in proc.stderr and "best_model.pth" in proc.stderr


def test_a_checkpoint_written_before_digests_loads_with_a_note(reference, tmp_path, caplog):
    old = torch.load(reference / "checkpoints" / "best_model.pth", weights_only=True)
    del old["integrity"]
    torch.save(old, tmp_path / "old.pth")
    with caplog.at_level("WARNING", logger="pfdtrain"):
        loaded = load_checkpoint_file(tmp_path / "old.pth")
    assert loaded["epoch"] == old["epoch"]
    assert "no content digest" in caplog.text


# --------------------------------------------------------------------------------------------
# 2. one process per run folder
# --------------------------------------------------------------------------------------------

def test_a_second_process_is_refused_while_the_first_trains(workdir, tmp_path):
    run = workdir / "runs" / "busy"
    with open(tmp_path / "first.log", "w") as log:  # a file: a full pipe would block it
        # far more epochs than the test lasts: it is still training when the others come
        first = subprocess.Popen([sys.executable, "-m", "pfdtrain", "train", "--config",
                                  "tiny.yaml", "--set", "name=busy", "--set", "num_epochs=100000",
                                  "--set", "callbacks.early_stopping.enabled=false",
                                  "--no-progress"], cwd=workdir, stdout=subprocess.DEVNULL,
                                 stderr=log)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the lock names its holder once it is held
                text = (run / ".lock").read_text() if (run / ".lock").exists() else ""
                if text and json.loads(text)["pid"] == first.pid:
                    break
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                time.sleep(0.01)
            else:
                pytest.fail("the first train never took the lock")
            proc = run_cli("resume", str(run), "--epochs", "50", cwd=workdir, expect=2)
            assert f"PID {first.pid} on host {socket.gethostname()}" in proc.stderr
            assert "in use by another pfdtrain process" in proc.stderr
            proc = run_cli("train", "--config", "tiny.yaml", "--set", "name=busy", cwd=workdir,
                           expect=2)
            assert f"PID {first.pid}" in proc.stderr
            assert first.poll() is None  # both were refused while it held the folder
        finally:
            first.kill()
            first.wait()
    # the refused processes wrote nothing: one run's log, one start, consecutive epochs
    assert (run / "train.log").read_text().count("Run folder:") == 1
    assert [e["event"] for e in _events(run)].count("train_begin") == 1
    completed = _epochs_completed(run)
    assert completed == list(range(1, len(completed) + 1))


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pfdtrain.training.run_folder import "
         "RunFolderLock; RunFolderLock(sys.argv[1]).acquire(); print('held', flush=True); "
         "time.sleep(120)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from pfdtrain.training.run_folder import RunFolderBusyError, RunFolderLock
    with pytest.raises(RunFolderBusyError, match=f"PID {holder.pid}"):
        RunFolderLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunFolderLock(tmp_path):  # the kernel released it with the process
        pass


# --------------------------------------------------------------------------------------------
# 3. no dead ends
# --------------------------------------------------------------------------------------------

def test_failed_validation_writes_nothing_and_keeps_the_name_free(workdir):
    proc = run_cli("train", "--config", "tiny.yaml", "--set", "name=short",
                   "--set", "data.window_length=4096", "--set", "data.window_stride=4096",
                   cwd=workdir, expect=2)
    assert "window_length" in proc.stderr
    assert not (workdir / "runs" / "short").exists()


def test_a_kill_before_the_first_checkpoint_is_no_dead_end(workdir):
    # an epoch long enough (about a second) for the kill to land inside it
    slow = dict(TINY_CLI_CONFIG, synthetic={"record_duration": 0.5, "records_per_class": 36})
    (workdir / "slow.yaml").write_text(yaml.safe_dump(slow))
    # generate the data first, so the kill lands in the first epoch, not in generation
    run_cli("train", "--config", "slow.yaml", "--set", "name=warm", "--set", "num_epochs=1",
            cwd=workdir)
    run = workdir / "runs" / "early"
    proc = subprocess.Popen([sys.executable, "-m", "pfdtrain", "train", "--config", "slow.yaml",
                             "--set", "name=early", "--no-progress"], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (run / "config.yaml").exists() and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(run.glob("checkpoints/*.pth")), "killed too late: a checkpoint exists"
    again = _copy_run(run, "early-again")
    (again / "config.yaml").write_text((again / "config.yaml").read_text()
                                       .replace("name: early", "name: early-again"))

    proc = run_cli("resume", str(run), cwd=workdir)
    assert "holds no checkpoint" in proc.stderr and "starting the run again" in proc.stderr
    assert _epochs_completed(run) == [1, 2]
    assert [e["event"] for e in _events(run)].count("train_begin") == 1

    proc = run_cli("train", "--config", "slow.yaml", "--set", "name=early-again", cwd=workdir)
    assert "Reusing run folder" in proc.stderr
    assert _epochs_completed(again) == [1, 2]
    assert json.loads((again / "history.json").read_text()) == \
        json.loads((run / "history.json").read_text())


# --------------------------------------------------------------------------------------------
# 4. a kill in the middle of a save
# --------------------------------------------------------------------------------------------

def test_a_kill_during_the_end_of_epoch_save_resumes_cleanly_and_exactly(workdir, reference):
    proc = subprocess.run([sys.executable, str(JOB), "--kill-before-replace",
                           "latest_model.pth:2", "--", "train", "--config", "tiny.yaml",
                           "--set", "name=killsave", "--no-progress"],
                          cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run = workdir / "runs" / "killsave"
    assert _temp_files(run), "the killed save should leave its temp file"
    assert _epochs_completed(run) == [1, 2]  # epoch 2's event came before its save
    assert load_checkpoint_file(run / "checkpoints" / "latest_model.pth")["epochs_completed"] == 1

    proc = run_cli("resume", str(run), cwd=workdir)
    assert "Removed 1 temporary file" in proc.stderr
    assert _temp_files(run) == []
    events = [e for e in _events(run) if e["event"] in LIFECYCLE_EVENTS]
    assert _epochs_completed(run) == [1, 2]
    assert lifecycle(events) == ["train_begin", "epoch_complete", "resumed", "epoch_complete",
                                 "train_end"]
    assert events[2]["epoch"] == 2 and events[2]["batches_done"] == 0
    assert json.loads((run / "history.json").read_text()) == \
        json.loads((reference / "history.json").read_text())
    ours = load_checkpoint_file(run / "checkpoints" / "final_model.pth")["model_state_dict"]
    theirs = load_checkpoint_file(reference / "checkpoints" / "final_model.pth")["model_state_dict"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


# --------------------------------------------------------------------------------------------
# 5. full disk, read-only folder, a folder where a file should go
# --------------------------------------------------------------------------------------------

def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_failing_checkpoint_write_keeps_the_previous_checkpoint(workdir):
    run_cli("train", "--config", "tiny.yaml", "--set", "name=full-disk", "--set", "num_epochs=1",
            cwd=workdir)
    run = workdir / "runs" / "full-disk"
    latest = run / "checkpoints" / "latest_model.pth"
    before = latest.read_bytes()
    proc = run_cli("resume", str(run), "--epochs", "2", cwd=workdir, expect=2,
                   preexec_fn=_file_size_limit(len(before) // 2))
    error = proc.stderr[proc.stderr.index("pfdtrain: error: "):]
    assert error.startswith("pfdtrain: error: cannot write ") and error.count("\n") == 1
    assert "_model.pth" in error and "is unchanged" in error and "Fix:" in error
    assert "Traceback" not in proc.stderr
    assert latest.read_bytes() == before
    assert _temp_files(run) == []


def test_a_failing_dataset_write_leaves_no_half_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for i in range(4):
        np.save(tmp_path / f"r{i}.npy", rng.normal(size=200_000).astype(np.float32))
        rows.append(f"r{i}.npy,{'ab'[i % 2]}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    proc = run_cli("data", "import", "--manifest", "m.csv", "--out", "data/x.h5",
                   "--sampling-rate", "12000", cwd=tmp_path, expect=2,
                   preexec_fn=_file_size_limit(500_000))
    assert "cannot write data/x.h5" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "x.h5").exists()
    assert list((tmp_path / "data").glob("*.tmp")) == []


def test_an_output_path_that_is_a_folder_is_an_error_not_a_traceback(workdir, reference, tmp_path):
    np.save(tmp_path / "r0.npy", np.zeros(20_000, dtype=np.float32))
    (tmp_path / "m.csv").write_text("path,label\nr0.npy,a\n")
    (tmp_path / "taken.h5").mkdir()
    proc = run_cli("data", "import", "--manifest", "m.csv", "--out", "taken.h5",
                   "--sampling-rate", "12000", cwd=tmp_path, expect=2)
    assert "cannot write taken.h5: a folder has that name" in proc.stderr
    (tmp_path / "a-file").write_text("x")
    proc = run_cli("evaluate", str(reference / "checkpoints" / "best_model.pth"), "--out",
                   str(tmp_path / "a-file"), cwd=workdir, expect=2)
    assert "a-file" in proc.stderr and "Traceback" not in proc.stderr


def _in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``sh -c script`` as root of a new user + mount namespace; stderr unwrapped."""
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd,
                          capture_output=True, text=True)
    proc.stderr = proc.stderr.replace("\n  ", " ")
    return proc


@NEEDS_UNSHARE
def test_a_really_full_disk_keeps_the_previous_checkpoint(workdir, reference):
    """A tmpfs sized for the first epoch's checkpoints but not the second's temp file."""
    size = (reference / "checkpoints" / "latest_model.pth").stat().st_size
    mount = workdir / "tiny-fs"
    mount.mkdir()
    check = ("import json, sys, pathlib; from pfdtrain.training.checkpoint import "
             "load_checkpoint_file as l; r = pathlib.Path(sys.argv[1]); "
             "print(json.dumps({'epochs': l(r / 'checkpoints/latest_model.pth')"
             "['epochs_completed'], 'tmp': [str(p) for p in r.rglob('*.tmp')]}))")
    script = (f"mount -t tmpfs -o size={int(2.5 * size) + 48 * 1024} tmpfs {mount} && "
              f"{sys.executable} -m pfdtrain train --config tiny.yaml --no-progress "
              f"--set output_dir={mount} --set name=x; echo rc=$?; "
              f"{sys.executable} -c \"{check}\" {mount}/x")
    proc = _in_namespace(script, workdir)
    assert "rc=2" in proc.stdout, proc.stderr[-3000:]
    assert "the disk is full" in proc.stderr and "Traceback" not in proc.stderr
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state == {"epochs": 1, "tmp": []}


@NEEDS_UNSHARE
def test_a_read_only_run_folder_gives_errors_not_tracebacks(workdir, reference):
    run = _copy_run(reference, "read-only")
    best = run / "checkpoints" / "best_model.pth"
    script = (f"mount --bind {run} {run} && mount -o remount,bind,ro {run} && "
              f"{sys.executable} -m pfdtrain resume {run} --epochs 3; echo rc=$?; "
              f"{sys.executable} -m pfdtrain evaluate {best}; echo rc=$?")
    proc = _in_namespace(script, workdir)
    assert proc.stdout.split() == ["rc=2", "rc=2"], proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pfdtrain: error")]
    assert len(errors) == 2 and all("read-only" in e for e in errors), proc.stderr
    assert "Traceback" not in proc.stderr
