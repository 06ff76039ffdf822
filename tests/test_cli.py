"""The command line end to end on a tiny config: train, inspect, resume, config, errors."""

import json

import pytest
import yaml

from pfdtrain.config.training_config import TrainingConfig
from tests.helpers import LIFECYCLE_EVENTS, TINY_CLI_CONFIG, lifecycle, run_cli, tiny_cli_workdir

TINY = TINY_CLI_CONFIG


def pfdtrain(*args, cwd, expect=0):
    return run_cli(*args, cwd=cwd, expect=expect)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tiny_cli_workdir(tmp_path_factory, "cli")


@pytest.fixture(scope="module")
def trained_run(workdir):
    proc = pfdtrain("train", "--config", "tiny.yaml", "--set", "name=full", cwd=workdir)
    return workdir / "runs" / "full", proc


def test_train_writes_the_run_folder(trained_run):
    run, proc = trained_run
    for name in ("config.yaml", "history.json", "test_metrics.json", "events.jsonl",
                 "train.log", "checkpoints/best_model.pth", "checkpoints/latest_model.pth",
                 "checkpoints/final_model.pth"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(history)
    assert len(history["train_loss"]) == 2
    assert "Epoch 2/2 - Train Loss: " in proc.stderr and "=== Training Configuration ===" in proc.stderr
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert len(metrics["class_names"]) == 11 and metrics["num_samples"] > 0
    assert 0.0 <= metrics["accuracy"] <= 100.0
    saved = TrainingConfig.from_yaml(run / "config.yaml")
    assert saved.num_epochs == 2 and saved.name == "full"


def test_inspect_validates_the_checkpoint_contract(trained_run, tmp_path):
    run, _ = trained_run
    proc = pfdtrain("inspect", str(run / "checkpoints/best_model.pth"), "--json", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["model_class"] == "CNN1D" and summary["problems"] == []
    assert summary["metadata"]["class_names"][0] == "healthy"
    import torch
    broken = torch.load(run / "checkpoints/best_model.pth", weights_only=True)
    del broken["history"], broken["integrity"]  # as a hand-made file without a digest
    torch.save(broken, tmp_path / "broken.pth")
    proc = pfdtrain("inspect", str(tmp_path / "broken.pth"), cwd=tmp_path, expect=1)
    assert "MISSING history (required)" in proc.stdout
    assert "not recorded" in proc.stdout and "no content digest" in proc.stderr
    assert "missing required key 'history'" in proc.stderr


def test_resume_continues_to_the_same_result(workdir, trained_run):
    run, _ = trained_run
    pfdtrain("train", "--config", "tiny.yaml", "--set", "name=part", "--set", "num_epochs=1",
             cwd=workdir)
    part = workdir / "runs" / "part"
    pfdtrain("resume", str(part), "--epochs", "2", cwd=workdir)
    assert json.loads((part / "history.json").read_text()) == \
        json.loads((run / "history.json").read_text())
    events = [json.loads(line) for line in (part / "events.jsonl").read_text().splitlines()]
    # the first session's train_end came after its last checkpoint: the stream joins there
    assert lifecycle(events) == ["train_begin", "epoch_complete", "resumed", "epoch_complete",
                                 "train_end"]
    events = [e for e in events if e["event"] in LIFECYCLE_EVENTS]
    assert events[2]["epoch"] == 2 and events[2]["batches_done"] == 0
    assert events[2]["step"] > 0 and events[2]["total_epochs"] == 2


def test_bad_config_ends_with_one_paragraph_not_a_traceback(workdir):
    proc = pfdtrain("train", "--config", "tiny.yaml", "--set", "optimizer.lrate=1", cwd=workdir,
                    expect=2)
    assert proc.stderr.startswith("pfdtrain: error: unknown config key 'lrate'")
    assert "Traceback" not in proc.stderr
    proc = pfdtrain("train", "--set", "data.source=nowhere.h5", cwd=workdir, expect=2)
    assert "nowhere.h5" in proc.stderr and "Traceback" not in proc.stderr
    proc = pfdtrain("resume", "not-a-run", cwd=workdir, expect=2)
    assert "not a pfdtrain run folder" in proc.stderr


def test_config_prints_the_commented_default(tmp_path):
    proc = pfdtrain("config", cwd=tmp_path)
    assert "# learning rate" in proc.stdout
    assert TrainingConfig.from_dict(yaml.safe_load(proc.stdout)) == TrainingConfig()


def test_own_recordings_import_train_evaluate_predict(tmp_path):
    """The README's CWRU walk-through on tiny files in CWRU's own layout."""
    import numpy as np
    import scipy.io as sio

    raw = tmp_path / "CWRU"
    raw.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(12000 * 2) / 12000
    for number, fault_hz in ((97, 0.0), (105, 162.0), (118, 141.0), (130, 107.0)):
        x = np.sin(2 * np.pi * 30 * t) + 0.1 * rng.standard_normal(t.size)
        x += 0.5 * np.sin(2 * np.pi * fault_hz * t) if fault_hz else 0.0
        sio.savemat(raw / f"{number}.mat", {f"X{number:03d}_DE_time": x[:, None],
                                            f"X{number:03d}RPM": np.array([[1797.0]])})
    (raw / "notes.txt").write_text("not a recording")
    proc = pfdtrain("data", "import", "--layout", "cwru", "--root", str(raw), "--labels",
                    "4class", "--out", "data/cwru.h5", cwd=tmp_path)
    assert "imported 4 recordings (4 classes" in proc.stdout
    pfdtrain("train", "--no-progress", "--set", "name=cwru", "--set", "data.source=data/cwru.h5",
             "--set", "data.split=time", "--set", "data.window_length=1024", "--set",
             "data.window_stride=512", "--set", "num_epochs=2", "--set",
             "model.params={base_channels: 4}", cwd=tmp_path)
    run = tmp_path / "runs" / "cwru"
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["split"]["strategy"] == "time" and metrics["class_names"][0] == "normal"
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pfdtrain("evaluate", str(run / "checkpoints/best_model.pth"), "--snr", "10", cwd=tmp_path)
    report = json.loads((run / "metrics.json").read_text())
    assert report["split"] == "test" and "10" in report["robustness"]
    proc = pfdtrain("predict", str(run / "checkpoints/best_model.pth"), str(raw / "130.mat"),
                    "--variable", "DE", "--json", cwd=tmp_path)
    prediction = json.loads(proc.stdout)
    assert prediction["class"] in metrics["class_names"]
    assert sum(prediction["votes"].values()) == prediction["num_windows"]
    proc = pfdtrain("predict", str(run / "checkpoints/best_model.pth"), str(raw / "130.mat"),
                    "--variable", "FE", cwd=tmp_path, expect=2)
    assert "130.mat" in proc.stderr and "Traceback" not in proc.stderr
