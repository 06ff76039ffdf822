"""Exact resume, in a new process: at an epoch boundary and from a mid-epoch checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from pfdtrain.training.checkpoint import load_checkpoint_file

JOB = Path(__file__).with_name("resume_job.py")


def _run(*args: str, expect_rc: int = 0) -> None:
    proc = subprocess.run([sys.executable, str(JOB), *args], capture_output=True, text=True)
    assert proc.returncode == expect_rc, proc.stderr[-3000:]


def _result(prefix: Path):
    weights = torch.load(prefix.with_suffix(".pt"), weights_only=True)
    return json.loads(prefix.with_suffix(".json").read_text()), weights


def _assert_identical(a, b):
    history_a, weights_a = a
    history_b, weights_b = b
    assert history_a == history_b
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


def test_resume_at_epoch_boundary_and_mid_epoch_is_bitwise_identical(tmp_path):
    _run("--dir", str(tmp_path / "full"), "--epochs", "4", "--out", str(tmp_path / "full"))
    full = _result(tmp_path / "full")
    assert len(full[0]["train_loss"]) == 4 and "gradient_norm" in full[0]

    # stop after 2 epochs, resume to 4 in a new process
    part = tmp_path / "part"
    _run("--dir", str(part), "--epochs", "2", "--out", str(tmp_path / "first"))
    _run("--dir", str(part), "--epochs", "4", "--resume", "--out", str(tmp_path / "resumed"))
    _assert_identical(full, _result(tmp_path / "resumed"))

    # crash in the middle of epoch 3 (step 15 of 24); the recovery save at step 14 resumes
    crash = tmp_path / "crash"
    _run("--dir", str(crash), "--epochs", "4", "--every-n-steps", "7", "--crash-at-step", "15",
         "--out", str(tmp_path / "never"), expect_rc=3)
    recovery = load_checkpoint_file(crash / "latest_model.pth")
    assert recovery["global_step"] == 14 and recovery["data_state"]["batches_done"] == 4
    assert recovery["epochs_completed"] == 2 and recovery["data_state"]["epoch"] == 2
    _run("--dir", str(crash), "--epochs", "4", "--every-n-steps", "7", "--resume",
         "--out", str(tmp_path / "recovered"))
    _assert_identical(full, _result(tmp_path / "recovered"))


def test_recovery_checkpoint_at_the_last_step_of_an_epoch_resumes_exactly(tmp_path):
    """45 samples in batches of 4: the epoch's last step has a 1-sample batch; a recovery
    save right there records every batch as done (more than 45 samples' worth)."""
    _run("--dir", str(tmp_path / "full"), "--epochs", "4", "--out", str(tmp_path / "full"))
    crash = tmp_path / "crash"
    _run("--dir", str(crash), "--epochs", "4", "--every-n-steps", "6", "--crash-at-step", "12",
         "--out", str(tmp_path / "never"), expect_rc=3)
    recovery = load_checkpoint_file(crash / "latest_model.pth")
    assert recovery["data_state"]["batches_done"] == 12 and recovery["epochs_completed"] == 1
    _run("--dir", str(crash), "--epochs", "4", "--every-n-steps", "6", "--resume",
         "--out", str(tmp_path / "recovered"))
    _assert_identical(_result(tmp_path / "full"), _result(tmp_path / "recovered"))
