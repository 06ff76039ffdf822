"""CNNTrainer: history contract, sample weighting, accumulation, schedulers, AMP, determinism."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.config.training_config import OptimizerConfig, SchedulerConfig
from pfdtrain.models import build_model
from pfdtrain.training.cnn_callbacks import Callback
from pfdtrain.training.cnn_trainer import REQUIRED_HISTORY_KEYS, CNNTrainer, TrainingError
from pfdtrain.training.optimization import (PER_STEP_SCHEDULERS, create_optimizer,
                                            create_scheduler, optimizer_steps_per_epoch)
from pfdtrain.utils.reproducibility import set_seed


def _data(n=11, features=6, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, features, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return x, y


def _linear(features=6, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes))


def _loader(x, y, batch_size, shuffle=False):
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def test_history_has_exactly_the_guide_keys():
    x, y = _data()
    trainer = CNNTrainer(_linear(), _loader(x, y, 4), _loader(x, y, 4), progress_bar=False)
    history = trainer.fit(2)
    assert set(history) == set(REQUIRED_HISTORY_KEYS)
    assert all(len(v) == 2 for v in history.values())
    assert all(0.0 <= a <= 100.0 for a in history["train_acc"] + history["val_acc"])
    assert trainer.best_val_acc == max(history["val_acc"])
    assert trainer.best_val_loss == min(history["val_loss"])
    assert trainer.current_epoch == 1 and trainer.epochs_completed == 2


def test_no_validation_loader_means_no_val_keys():
    x, y = _data()
    history = CNNTrainer(_linear(), _loader(x, y, 4), progress_bar=False).fit(1)
    assert set(history) == {"train_loss", "train_acc", "lr"}


def test_metrics_are_weighted_by_batch_size_with_uneven_last_batch():
    x, y = _data(n=11)
    model = _linear()
    # lr = 0 keeps the model fixed, so the epoch's train loss must equal the full-data mean.
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = CNNTrainer(model, _loader(x, y, 4), _loader(x, y, 3), optimizer=opt,
                         progress_bar=False)
    history = trainer.fit(1)
    with torch.no_grad():
        logits = model(x)
        expected_loss = nn.functional.cross_entropy(logits, y).item()
        expected_acc = 100.0 * (logits.argmax(1) == y).float().mean().item()
    assert history["train_loss"][0] == pytest.approx(expected_loss, rel=1e-6)
    assert history["val_loss"][0] == pytest.approx(expected_loss, rel=1e-6)
    assert history["train_acc"][0] == pytest.approx(expected_acc)
    # An unweighted mean of the batch means would differ with batches of 4, 4 and 3.
    batch_means = [nn.functional.cross_entropy(model(x[i:i + 4]), y[i:i + 4]).item()
                   for i in (0, 4, 8)]
    assert abs(sum(batch_means) / 3 - expected_loss) > 1e-4


def test_accumulation_with_partial_window_matches_full_batch_gradients():
    """11 samples, batches of 2, 4 micro-batches per step: windows of 8 and 3 samples."""
    x, y = _data(n=11)
    model = _linear(seed=1)
    reference = _linear(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    trainer = CNNTrainer(model, _loader(x, y, 2), optimizer=opt, gradient_accumulation_steps=4,
                         progress_bar=False)
    trainer.fit(1)
    assert trainer.global_step == 2  # the partial last window is stepped
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    for window in (slice(0, 8), slice(8, 11)):
        ref_opt.zero_grad()
        nn.functional.cross_entropy(reference(x[window]), y[window]).backward()
        ref_opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_clipping_happens_after_unscale_and_before_step():
    x, y = _data(n=8)
    model = _linear()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = CNNTrainer(model, _loader(x, y, 8), optimizer=opt, max_grad_norm=1e-3,
                         progress_bar=False)
    trainer.fit(1)
    step = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert step.item() == pytest.approx(1e-3, rel=1e-3)  # lr 1 x clipped norm
    assert trainer.last_grad_norm.item() > 1e-3  # the norm before clipping is reported


def test_plateau_scheduler_receives_val_loss():
    x, y = _data()
    model = _linear()
    # The model's group has lr 0, so val_loss never improves; the second group's LR shows
    # each reduction the plateau scheduler makes from the val_loss it is given.
    marker = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": model.parameters(), "lr": 0.0},
                           {"params": [marker], "lr": 0.1}])
    sched = create_scheduler(opt, SchedulerConfig(name="plateau", patience=0, factor=0.5), 3, 3)
    trainer = CNNTrainer(model, _loader(x, y, 4), _loader(x, y, 4), optimizer=opt,
                         lr_scheduler=sched, progress_bar=False)
    trainer.fit(3)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.025)  # reduced after epochs 2 and 3


def test_plateau_without_validation_fails_clearly():
    x, y = _data()
    model = _linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = create_scheduler(opt, SchedulerConfig(name="plateau"), 3, 3)
    trainer = CNNTrainer(model, _loader(x, y, 4), optimizer=opt, lr_scheduler=sched,
                         progress_bar=False)
    with pytest.raises(TrainingError, match="ReduceLROnPlateau needs 'val_loss'"):
        trainer.fit(1)


@pytest.mark.parametrize("name", ["none", "step", "exponential", "cosine", "cosine_warmup",
                                  "onecycle", "plateau"])
def test_every_scheduler_runs_a_whole_run(name):
    x, y = _data(n=20)
    model = _linear()
    opt = create_optimizer(model, OptimizerConfig(name="sgd", lr=0.1))
    loader = _loader(x, y, 4)
    steps = optimizer_steps_per_epoch(len(loader), 2)
    sched = create_scheduler(opt, SchedulerConfig(name=name, warmup_epochs=1), 3, steps)
    trainer = CNNTrainer(model, loader, loader, optimizer=opt, lr_scheduler=sched,
                         gradient_accumulation_steps=2, progress_bar=False,
                         scheduler_interval="step" if name in PER_STEP_SCHEDULERS else "epoch")
    history = trainer.fit(3)  # onecycle raises if stepped past total_steps
    assert trainer.global_step == 3 * steps
    assert all(math.isfinite(v) for v in history["lr"])
    if name == "cosine_warmup":
        assert history["lr"][0] > history["lr"][-1]


def test_no_weight_decay_on_biases_and_norm_layers():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.LayerNorm(16),
                          nn.Linear(16, 3))
    for name in ("adamw", "adam", "sgd", "rmsprop"):
        opt = create_optimizer(model, OptimizerConfig(name=name, weight_decay=0.05))
        decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
        assert decayed == {id(model[0].weight), id(model[4].weight)}
        assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_bf16_autocast_on_cpu_trains():
    x, y = _data(n=16, features=300)
    set_seed(0)
    model = build_model("cnn1d", num_classes=3, base_channels=4)
    x = torch.randn(16, 1, 300)
    seen = []

    class DtypeProbe(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["loss"].dtype)

    trainer = CNNTrainer(model, _loader(x, y, 8), _loader(x, y, 8), mixed_precision=True,
                         callbacks=[DtypeProbe()], progress_bar=False)
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    with trainer._autocast():
        assert model(x[:2]).dtype == torch.bfloat16
    history = trainer.fit(2)
    assert all(math.isfinite(v) for v in history["train_loss"] + history["val_loss"])
    assert seen and all(p.dtype == torch.float32 for p in model.parameters())


def _seeded_run(seed):
    set_seed(seed, deterministic=True)
    model = build_model("cnn1d", num_classes=3, base_channels=4)
    x = torch.randn(24, 1, 300)
    y = torch.randint(0, 3, (24,))
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=gen)
    trainer = CNNTrainer(model, loader, _loader(x, y, 8), progress_bar=False)
    return trainer.fit(3), model


def test_same_seed_gives_identical_history_and_weights():
    h1, m1 = _seeded_run(7)
    h2, m2 = _seeded_run(7)
    h3, _ = _seeded_run(8)
    assert h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(),
                                                 m2.state_dict().values()))
    assert h1 != h3


def test_callbacks_get_the_hooks_in_order_and_can_stop_training():
    x, y = _data()
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", dict(logs)))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, logs["batch_size"]))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))
            assert self.trainer.history["train_loss"][-1] == logs["train_loss"]
            if epoch == 1:
                self.trainer.stop_training = True

        def on_train_end(self, logs=None):
            events.append(("train_end", sorted(logs)))

    trainer = CNNTrainer(_linear(), _loader(x, y, 4), _loader(x, y, 4), callbacks=[Recorder()],
                         progress_bar=False)
    history = trainer.fit(5)
    assert len(history["train_loss"]) == 2  # stopped after the second epoch
    assert events[0] == ("train_begin", {})
    assert events[1:5] == [("epoch_begin", 0), ("batch_end", 0, 4), ("batch_end", 1, 4),
                           ("batch_end", 2, 3)]
    assert events[5] == ("epoch_end", 0, sorted(REQUIRED_HISTORY_KEYS))
    assert events[-1] == ("train_end", sorted(REQUIRED_HISTORY_KEYS))


def test_plateau_can_monitor_a_training_metric_without_validation():
    x, y = _data()
    model = _linear()
    marker = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": model.parameters(), "lr": 0.0},
                           {"params": [marker], "lr": 0.1}])
    sched = create_scheduler(opt, SchedulerConfig(name="plateau", patience=0), 3, 3)
    trainer = CNNTrainer(model, _loader(x, y, 4), optimizer=opt, lr_scheduler=sched,
                         plateau_monitor="train_loss", progress_bar=False)
    trainer.fit(3)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.025)


def test_distributed_sampler_shards_without_repeating_samples():
    from pfdtrain.data.sampler import EpochShuffleSampler

    shards = [EpochShuffleSampler(45, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    for shard in shards:
        shard.set_epoch(1)
    orders = [shard.order() for shard in shards]
    assert len(orders[0]) == len(orders[1]) == 22
    assert not set(orders[0]) & set(orders[1])  # no sample counted twice
    single = EpochShuffleSampler(45, seed=3)
    single.set_epoch(1)
    assert sorted(orders[0] + orders[1]) == sorted(single.order()[:44])
