"""Each standard callback in a real short training (guide §2)."""

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.config.training_config import SchedulerConfig
from pfdtrain.errors import TrainingError
from pfdtrain.training.checkpoint import load_checkpoint_file
from pfdtrain.training.cnn_callbacks import (Callback, CallbackList, DashboardEventWriter,
                                             EarlyStoppingCallback, GradientMonitor,
                                             LearningRateMonitor, ModelCheckpointCallback,
                                             TimingCallback)
from pfdtrain.training.optimization import create_scheduler
from pfdtrain.utils.events import EVENTS_SCHEMA
from tests.helpers import LIFECYCLE_EVENTS, lifecycle, tiny_trainer


class Snapshot(Callback):
    """Records the §6.2 attributes and the weights at every epoch end."""

    def __init__(self):
        self.seen, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        t = self.trainer
        self.seen.append((t.current_epoch, len(t.history["train_loss"]), t.best_val_acc,
                          t.best_val_loss, dict(logs)))
        self.weights.append({k: v.clone() for k, v in t.model.state_dict().items()})


def test_early_stopping_stops_at_the_right_epoch():
    stopper = EarlyStoppingCallback(monitor="val_loss", patience=2, mode="min")
    trainer = tiny_trainer([stopper], lr=0.0)  # lr 0: val_loss never improves after epoch 1
    history = trainer.fit(10)
    assert len(history["val_loss"]) == 3
    assert stopper.get_state()["stopped_epoch"] == 2 and stopper.get_state()["best_epoch"] == 0


def test_early_stopping_nan_is_never_an_improvement_and_missing_key_fails():
    stopper = EarlyStoppingCallback(monitor="val_loss", patience=3)
    callbacks = CallbackList([stopper])
    callbacks.on_train_begin()
    for epoch, value in enumerate([1.0, float("nan"), float("nan")]):
        callbacks.on_epoch_end(epoch, {"val_loss": value})
    assert stopper.get_state()["best_value"] == 1.0 and stopper.get_state()["wait"] == 2
    with pytest.raises(TrainingError, match="monitors 'val_los'.*train_acc, train_loss"):
        tiny_trainer([EarlyStoppingCallback(monitor="val_los")]).fit(3)


def test_restore_best_weights_without_stopping():
    snap = Snapshot()
    stopper = EarlyStoppingCallback(monitor="val_loss", patience=50, restore_best_weights=True)
    trainer = tiny_trainer([snap, stopper], lr=0.02, flip_val=True)
    history = trainer.fit(5)
    best = min(range(5), key=lambda e: history["val_loss"][e])
    assert best < 4  # the flipped validation labels make later epochs worse
    final = trainer.model.state_dict()
    assert all(torch.equal(final[k], snap.weights[best][k]) for k in final)


def test_lr_monitor_sees_a_plateau_reduction():
    trainer = tiny_trainer(lr=0.0)
    marker = torch.nn.Parameter(torch.zeros(1))
    trainer.optimizer.add_param_group({"params": [marker], "lr": 0.1})
    monitor = LearningRateMonitor(trainer.optimizer, verbose=True)
    trainer.callbacks.append(monitor)
    monitor.set_trainer(trainer)
    trainer.lr_scheduler = create_scheduler(trainer.optimizer,
                                            SchedulerConfig(name="plateau", patience=0), 3, 4)
    trainer.fit(3)
    changes = monitor.get_state()["changes"]
    assert [(c["epoch"], c["group"], c["new"]) for c in changes] == [(1, 1, 0.05), (2, 1, 0.025)]


def test_gradient_monitor_catches_an_injected_nan():
    monitor = GradientMonitor(None, log_interval=3, alert_threshold=1e-6)
    trainer = tiny_trainer([monitor])
    x, y = trainer.train_loader.dataset.tensors
    x = x.clone()
    x[5, 0, 10] = float("nan")
    trainer.train_loader = DataLoader(TensorDataset(x, y), batch_size=8)  # sample 5 in batch 0
    history = trainer.fit(1)
    state = monitor.get_state()
    # reported from the step of the injected batch on (the NaN then poisons the weights)
    assert state["nonfinite_steps"] == [1, 2, 3, 4]
    assert state["alerts"] == 0  # a NaN norm is an error, never a threshold alert
    assert len(history["gradient_norm"]) == 1 and math.isnan(history["gradient_norm"][0])


def test_gradient_monitor_records_finite_epoch_means_and_alerts():
    monitor = GradientMonitor(None, log_interval=2, alert_threshold=1e-6)
    trainer = tiny_trainer([monitor], max_grad_norm=1.0)
    history = trainer.fit(2)
    assert len(history["gradient_norm"]) == 2
    assert all(v > 0 and math.isfinite(v) for v in history["gradient_norm"])
    assert monitor.get_state()["alerts"] == 8  # 4 steps per epoch, all above the tiny threshold


def test_timing_adds_epoch_time_and_attributes_are_current():
    snap = Snapshot()
    trainer = tiny_trainer([TimingCallback(), snap])
    trainer.fit(2)
    for epoch, (current, length, best_acc, best_loss, logs) in enumerate(snap.seen):
        assert current == epoch and length == epoch + 1
        assert logs["epoch_time"] > 0
        assert best_acc == max(trainer.history["val_acc"][:epoch + 1])
        assert best_loss == min(trainer.history["val_loss"][:epoch + 1])
    assert "epoch_time" not in trainer.history  # timings would break run-to-run equality


def test_dashboard_events_are_whole_json_lines_with_the_guide_keys(tmp_path):
    path = tmp_path / "events.jsonl"
    trainer = tiny_trainer([TimingCallback(), EarlyStoppingCallback(patience=1),
                            DashboardEventWriter(path)], lr=0.0)
    trainer.fit(5)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(e["schema"] == EVENTS_SCHEMA for e in events)
    # (an epoch longer than 2 s also has epoch_progress events: timing, not tested here)
    events = [e for e in events if e["event"] in LIFECYCLE_EVENTS]
    assert lifecycle(events) == ["train_begin", "epoch_complete", "epoch_complete", "train_end"]
    complete = events[1]
    # the guide's keys exactly, plus the format version every line carries
    assert set(complete) == {"event", "epoch", "total_epochs", "train_loss", "train_acc",
                             "val_loss", "val_acc", "lr", "elapsed_time", "schema"}
    assert (complete["epoch"], complete["total_epochs"]) == (1, 5)
    assert complete["val_acc"] == trainer.history["val_acc"][0]
    assert events[2]["elapsed_time"] >= complete["elapsed_time"]
    assert events[-1]["stopped_early"] is True and events[-1]["epochs_completed"] == 2
    assert events[-1]["status"] == "stopped_early"
    assert events[0]["facts"]["model"] == "CNN1D" and "pytorch_version" in events[0]["facts"]


def test_model_checkpoint_writes_the_guide_files(tmp_path):
    ckpt = ModelCheckpointCallback(tmp_path, monitor="val_acc", mode="max", every_n_epochs=2)
    trainer = tiny_trainer([ckpt])
    history = trainer.fit(4)
    names = sorted(p.name for p in tmp_path.glob("*.pth"))
    periodic = [n for n in names if n.startswith("checkpoint_epoch")]
    assert {"best_model.pth", "latest_model.pth", "final_model.pth"} <= set(names)
    assert [n[:len("checkpoint_epoch002")] for n in periodic] == ["checkpoint_epoch002",
                                                                 "checkpoint_epoch004"]
    assert periodic[0] == f"checkpoint_epoch002_val_acc{history['val_acc'][1]:.4f}.pth"
    best = load_checkpoint_file(tmp_path / "best_model.pth")
    assert best["history"]["val_acc"][-1] == max(history["val_acc"])
    latest = load_checkpoint_file(tmp_path / "latest_model.pth")
    assert latest["epochs_completed"] == 4 and latest["epoch"] == 3


def test_model_checkpoint_driven_by_hand_as_in_the_guide(tmp_path):
    """Guide §2.2: a CallbackList driven by a hand-written loop, no trainer."""
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    callbacks = CallbackList([ModelCheckpointCallback(tmp_path, model=model, optimizer=optimizer,
                                                      monitor="val_acc", mode="max")])
    callbacks.on_train_begin()
    for epoch, acc in enumerate([50.0, 92.0, 80.0]):
        callbacks.on_epoch_begin(epoch)
        callbacks.on_epoch_end(epoch, {"train_loss": 0.5, "val_acc": acc})
    callbacks.on_train_end()
    best = load_checkpoint_file(tmp_path / "best_model.pth")
    assert best["epoch"] == 1 and best["best_val_acc"] == 92.0
    assert best["history"]["val_acc"] == [50.0, 92.0]
    assert load_checkpoint_file(tmp_path / "final_model.pth")["history"]["val_acc"][-1] == 80.0
