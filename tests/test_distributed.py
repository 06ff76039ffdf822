"""DDP on CPU with gloo, launched the way a user would: `torchrun --nproc_per_node=2`."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.training.checkpoint import load_checkpoint_file
from tests.helpers import lifecycle

# --standalone: a local rendezvous on a free port, so parallel runs never collide
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
TINY = {
    "num_epochs": 2,
    "data": {"window_length": 1024, "window_stride": 1024, "val_fraction": 0.34,
             "test_fraction": 0.34},
    "synthetic": {"record_duration": 0.5, "records_per_class": 12},
    "model": {"name": "cnn1d", "dropout": 0.0, "params": {"base_channels": 4}},
    "scheduler": {"name": "none"},
    "distributed": {"sync_batchnorm": True},
}


def _run(args, cwd, expect=0, timeout=240):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect, _failure_text(proc.stderr)
    return proc


def _failure_text(stderr: str) -> str:
    """What a failed job said: the start of a worker's fatal error (a crashed rank prints
    its C++ reason and stack first, then a list of ~140 extension modules that would push
    them out of a plain tail) and the last lines."""
    head = ""
    for marker in ("Fatal Python error", "terminate called", "Traceback"):
        at = stderr.find(marker)
        if at >= 0:
            head = stderr[max(0, at - 1000):at + 3000] + "\n[...]\n"
            break
    return head + stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same global batch of 16: one process x 16, and two DDP processes x 8."""
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    _run([sys.executable, "-m", "pfdtrain", "train", "--config", "tiny.yaml", "--set",
          "name=single", "--set", "data.batch_size=16"], folder)
    ddp = _run(TORCHRUN + ["-m", "pfdtrain", "train", "--config", "tiny.yaml", "--set",
                           "name=ddp", "--set", "data.batch_size=8"], folder)
    return folder, ddp


def test_ddp_with_sync_batchnorm_matches_a_single_process_run(runs):
    folder, _ = runs
    single = json.loads((folder / "runs/single/history.json").read_text())
    ddp = json.loads((folder / "runs/ddp/history.json").read_text())
    assert single.keys() == ddp.keys()
    for key in single:
        assert ddp[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key
    a = load_checkpoint_file(folder / "runs/single/checkpoints/final_model.pth")
    b = load_checkpoint_file(folder / "runs/ddp/checkpoints/final_model.pth")
    assert a["model_state_dict"].keys() == b["model_state_dict"].keys()  # no "module." prefix
    for key, value in a["model_state_dict"].items():
        torch.testing.assert_close(b["model_state_dict"][key], value, rtol=1e-4, atol=1e-5)
    assert b["global_step"] == a["global_step"]


def test_only_rank_zero_writes(runs):
    folder, proc = runs
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["ddp", "single"]
    run = folder / "runs/ddp"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert lifecycle(events) == ["train_begin", "epoch_complete", "epoch_complete", "train_end"]
    assert proc.stderr.count("Epoch 2/2 - Train Loss") == 1  # rank 1 logs no epoch lines
    assert "World size: 2" in proc.stderr and "Effective batch size: 16" in proc.stderr
    log = (run / "train.log").read_text()
    assert log.count("=== Training Configuration ===") == 1


def test_ddp_resumes_a_single_process_checkpoint_and_back(runs):
    folder, _ = runs
    _run([sys.executable, "-m", "pfdtrain", "train", "--config", "tiny.yaml", "--set",
          "name=mixed", "--set", "num_epochs=1", "--set", "data.batch_size=16"], folder)
    mixed = folder / "runs/mixed"
    config = yaml.safe_load((mixed / "config.yaml").read_text())
    config["data"]["batch_size"] = 8  # the same global batch over two processes
    (mixed / "config.yaml").write_text(yaml.safe_dump(config))
    _run(TORCHRUN + ["-m", "pfdtrain", "resume", str(mixed), "--epochs", "2"], folder)
    history = json.loads((mixed / "history.json").read_text())
    single = json.loads((folder / "runs/single/history.json").read_text())
    assert history["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4)
    # and the DDP checkpoint loads in a single process, for evaluation and to resume
    model, meta = load_model_for_evaluation(mixed / "checkpoints/final_model.pth", device="cpu")
    assert meta["epochs_completed"] == 2 and type(model).__name__ == "CNN1D"
    _run([sys.executable, "-m", "pfdtrain", "resume", str(mixed), "--epochs", "3"], folder)
    history = json.loads((mixed / "history.json").read_text())
    assert len(history["train_loss"]) == 3
    assert history["train_loss"][:2] == pytest.approx(single["train_loss"], rel=1e-4)


def test_an_exception_on_rank_one_ends_the_job_promptly(tmp_path):
    started = time.perf_counter()
    job = Path(__file__).with_name("ddp_fail_job.py")
    proc = _run(TORCHRUN + [str(job)], tmp_path, expect=1, timeout=120)
    assert time.perf_counter() - started < 90
    assert "simulated failure on rank 1" in proc.stderr


def test_supcon_is_refused_under_ddp(tmp_path):
    import torch.distributed as dist

    from pfdtrain.errors import TrainingError
    from pfdtrain.models import build_model
    from pfdtrain.training.cnn_losses import SupConLoss
    from pfdtrain.training.cnn_trainer import CNNTrainer
    from tests.helpers import tiny_loaders

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(build_model("cnn1d", num_classes=3))
        with pytest.raises(TrainingError, match="bypasses DistributedDataParallel"):
            CNNTrainer(model, tiny_loaders()[0], embedding_criterion=SupConLoss())
    finally:
        dist.destroy_process_group()
