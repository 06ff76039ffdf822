"""Few labels (``data.label_fraction``): the stratified, seeded choice of labeled training
windows, the masked classification loss, accuracy over labeled windows, and real runs."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.data.label_fraction import apply_label_fraction, select_labeled
from pfdtrain.data.target import UNLABELED
from pfdtrain.data.windows import build_dataloaders
from pfdtrain.models import build_model
from pfdtrain.pipeline import run_training
from pfdtrain.training.cnn_losses import (FocalLoss, LabelSmoothingCrossEntropy,
                                          MaskedClassificationLoss)
from pfdtrain.training.checkpoint import save_checkpoint
from pfdtrain.training.cnn_callbacks import Callback
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.utils.reproducibility import set_seed
from tests.helpers import tiny_config, tiny_loaders

LABELS = np.array([0] * 10 + [1] * 20 + [2] * 3 + [3] * 1)


# ---------------------------------------------------------------- the choice
def test_selection_is_stratified_with_at_least_one_window_per_class():
    keep = select_labeled(LABELS, 0.2, seed=42)
    counts = [int(keep[LABELS == c].sum()) for c in range(4)]
    assert counts == [2, 4, 1, 1]  # max(1, round(0.2 n_c))
    tiny = select_labeled(LABELS, 0.001, seed=42)
    assert [int(tiny[LABELS == c].sum()) for c in range(4)] == [1, 1, 1, 1]
    assert select_labeled(LABELS, 1.0, seed=0).all()
    already = np.where(LABELS == 1, UNLABELED, LABELS)  # unlabeled windows stay unlabeled
    assert not select_labeled(already, 1.0, seed=0)[LABELS == 1].any()


def test_selection_is_deterministic_in_the_seed():
    a, b = select_labeled(LABELS, 0.3, seed=7), select_labeled(LABELS, 0.3, seed=7)
    np.testing.assert_array_equal(a, b)
    others = [select_labeled(LABELS, 0.3, seed=s) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, True])
def test_a_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        select_labeled(LABELS, fraction, seed=0)


@pytest.mark.parametrize("fraction, fragment", [
    (0.0, r"must lie in \(0, 1\]"), (1.5, "out of range"), (-0.2, "out of range"),
])
def test_label_fraction_out_of_range_is_a_config_error(fraction, fragment):
    with pytest.raises(ConfigError, match=f"data.label_fraction.*{fragment}"):
        TrainingConfig.from_dict({"data": {"label_fraction": fraction}})


def test_apply_label_fraction_unlabels_the_rest_and_reports_it():
    class Windows:
        labels = LABELS.copy()

    info = apply_label_fraction(Windows, 0.5, seed=3)
    labeled = Windows.labels >= 0
    assert set(np.unique(Windows.labels[~labeled])) == {UNLABELED}
    np.testing.assert_array_equal(Windows.labels[labeled], LABELS[labeled])
    assert info["labeled"] == {"0": 5, "1": 10, "2": 2, "3": 1}
    assert info["windows"] == {"0": 10, "1": 20, "2": 3, "3": 1}
    assert info["labeled_total"] == 18 and info["windows_total"] == 34
    assert info["fraction"] == 0.5 and info["seed"] == 3


TINY = {
    "num_epochs": 2,
    "data": {"window_length": 1024, "window_stride": 1024, "batch_size": 16,
             "val_fraction": 0.34, "test_fraction": 0.34, "label_fraction": 0.25},
    "synthetic": {"record_duration": 0.5, "records_per_class": 12},
    "model": {"name": "cnn1d", "params": {"base_channels": 4}},
    "scheduler": {"name": "none"},
}


def _config(tmp_path, **sections):
    return tiny_config(TINY, tmp_path, **sections)


def test_only_training_windows_lose_labels_stratified_and_recorded(tmp_path):
    config = _config(tmp_path)
    bundle = build_dataloaders(config)
    train = bundle.train_loader.dataset.labels
    info = bundle.split_info["label_fraction"]
    assert info["labeled_total"] == int((train >= 0).sum()) < train.size
    for cls, total in info["windows"].items():
        assert info["labeled"][cls] == max(1, round(0.25 * total))
    for loader in (bundle.val_loader, bundle.test_loader):
        assert (loader.dataset.labels >= 0).all()
    again = build_dataloaders(config).train_loader.dataset.labels
    np.testing.assert_array_equal(train, again)  # same seed, same labeled windows
    other = build_dataloaders(_config(tmp_path, seed=43)).train_loader.dataset.labels
    assert not np.array_equal(train, other)
    _, targets = next(iter(bundle.train_loader))
    assert targets.min() >= UNLABELED


# ---------------------------------------------------------------- the masked loss
@pytest.mark.parametrize("criterion", [
    torch.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5])),
    LabelSmoothingCrossEntropy(0.1), FocalLoss(gamma=2.0),
])
def test_masked_loss_is_the_criterion_over_the_labeled_rows(criterion):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=gen)
    targets = torch.tensor([0, -1, 2, -1, 1, 2])
    labeled = targets >= 0
    masked = MaskedClassificationLoss(criterion)(logits, targets)
    assert torch.equal(masked, criterion(logits[labeled], targets[labeled]))
    if type(criterion) is torch.nn.CrossEntropyLoss and criterion.weight is None:
        by_hand = -F.log_softmax(logits[labeled], dim=1).gather(
            1, targets[labeled, None]).mean()
        torch.testing.assert_close(masked, by_hand)
    full = torch.tensor([0, 1, 2, 0, 1, 2])  # fully labeled: the criterion itself
    assert torch.equal(MaskedClassificationLoss(criterion)(logits, full),
                       criterion(logits, full))


def test_a_batch_without_labels_gives_zero_loss_no_nan_and_a_valid_graph():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = MaskedClassificationLoss(torch.nn.CrossEntropyLoss())(logits, torch.full((4,), -1))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


# ---------------------------------------------------------------- the trainer
def _partially_labeled_loaders(unlabel_every=2, batch_size=8):
    train, val = tiny_loaders(batch_size=batch_size)
    x, y = train.dataset.tensors
    y = y.clone()
    y[::unlabel_every] = UNLABELED
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=train.sampler,
                       generator=train.generator)
    return train, val, x, y


def test_training_accuracy_counts_labeled_windows_only():
    sums = CNNTrainer._new_sums(type("T", (), {"device": torch.device("cpu")})())
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0, -1, -1])  # one right, one wrong, two unlabeled
    CNNTrainer._accumulate(sums, torch.tensor(0.5), logits, targets, {})
    metrics = CNNTrainer._finalize(type("T", (), {"_reduce_sums": lambda self, s, r:
                                                  {k: float(v) for k, v in s.items()}})(),
                                   sums, prefix="train_")
    assert metrics["train_acc"] == 50.0 and metrics["train_loss"] == 0.5
    # running sums saved before label_fraction existed (no "labeled"): all were labeled
    old = {k: torch.tensor(4.0, dtype=torch.float64) for k in ("loss", "correct", "count")}
    CNNTrainer._accumulate(old, torch.tensor(0.5), logits, targets, {})
    assert float(old["labeled"]) == 6.0 and float(old["count"]) == 8.0


def test_an_all_unlabeled_training_set_changes_no_weight():
    set_seed(0)
    train, val, x, _ = _partially_labeled_loaders(unlabel_every=1)
    model = build_model("cnn1d", num_classes=3, base_channels=4, dropout=0.0)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    trainer = CNNTrainer(model, train, val, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                         progress_bar=False, partial_labels=True,
                         gradient_accumulation_steps=2)
    history = trainer.fit(1)
    assert history["train_loss"] == [0.0] and np.isnan(history["train_acc"][0])
    for name, value in model.state_dict().items():
        if name in before and "running" not in name:  # batch-norm statistics still move
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_partial_labels_with_accumulation_train_on_the_labeled_windows():
    set_seed(0)
    train, val, x, y = _partially_labeled_loaders(unlabel_every=2)
    model = build_model("cnn1d", num_classes=3, base_channels=4, dropout=0.0)
    trainer = CNNTrainer(model, train, val, optimizer=torch.optim.AdamW(model.parameters(),
                                                                         lr=1e-2),
                         progress_bar=False, partial_labels=True,
                         gradient_accumulation_steps=2)
    assert isinstance(trainer.criterion, MaskedClassificationLoss)
    history = trainer.fit(4)
    assert all(np.isfinite(history["train_loss"]))
    assert history["train_loss"][-1] < history["train_loss"][0]
    with pytest.raises(Exception, match="out of bounds|Target -1"):  # unmasked: torch refuses
        CNNTrainer(build_model("cnn1d", num_classes=3, base_channels=4), train,
                   progress_bar=False).fit(1)


class _StopAfterStep(Callback):
    """Saves the trainer's state right after optimizer step ``step`` (mid-epoch), then stops
    the process's training the hard way (an exception, as a crash would)."""

    def __init__(self, step, path):
        self.step, self.path, self.saved = step, path, False

    def on_batch_end(self, batch, logs=None):
        if self.trainer.global_step == self.step and not self.saved:
            save_checkpoint(self.trainer.state_checkpoint(), self.path)
            self.saved = True
            raise KeyboardInterrupt


def _accumulating_trainer(callbacks=()):
    set_seed(0)
    # 32 windows, batches of 4, 3 per step: windows of 12, 12 and 8 samples per epoch; a
    # third of the windows unlabeled, so the batches hold different numbers of labels
    train, val, _, _ = _partially_labeled_loaders(unlabel_every=3, batch_size=4)
    model = build_model("cnn1d", num_classes=3, base_channels=4, dropout=0.2)
    return CNNTrainer(model, train, val, optimizer=torch.optim.AdamW(model.parameters(),
                                                                      lr=1e-2),
                      progress_bar=False, partial_labels=True, gradient_accumulation_steps=3,
                      callbacks=list(callbacks))


def test_a_mid_epoch_resume_with_few_labels_is_bitwise_identical(tmp_path):
    full = _accumulating_trainer()
    history = full.fit(3)
    path = tmp_path / "mid.pth"
    with pytest.raises(KeyboardInterrupt):
        _accumulating_trainer([_StopAfterStep(4, path)]).fit(3)  # epoch 2, after 1 step
    resumed = _accumulating_trainer()
    resumed.load_checkpoint(path)
    assert resumed.batches_done == 3 and "labeled" in resumed._epoch_sums
    assert resumed.fit(3) == history
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_pinn_with_few_labels_trains_and_records_the_choice(tmp_path):
    config = _config(tmp_path, trainer="pinn",
                     data={"window_length": 2048, "window_stride": 2048, "batch_size": 8,
                           "val_fraction": 0.25, "test_fraction": 0.25},
                     synthetic={"kind": "rolling_element", "records_per_class": 8},
                     physics={"term": "rolling_element", "weight": 0.5})
    result = run_training(config, progress_bar=False)
    history = result.history
    assert all(np.isfinite(history["train_loss"])) and all(np.isfinite(history["train_acc"]))
    assert all(v > 0 for v in history["train_physics_loss"])
    assert isinstance(result.trainer.criterion, MaskedClassificationLoss)
    info = result.trainer.metadata["split"]["label_fraction"]
    assert info["fraction"] == 0.25 and info["labeled_total"] < info["windows_total"]


@pytest.mark.parametrize("sections, fragment", [
    ({"loss": {"name": "supcon"}}, "loss.name: supcon pulls together"),
    ({"trainer": "distillation", "distillation": {"teacher": "x.pth"}},
     "does not support few labels"),
])
def test_trainers_that_need_every_label_refuse_few_labels(tmp_path, sections, fragment):
    with pytest.raises(ConfigError, match=fragment):
        run_training(_config(tmp_path, **sections), progress_bar=False)


def test_domain_adaptation_trains_its_source_classifier_on_the_labeled_windows(tmp_path):
    from tests.test_domain_adaptation import _write

    source = _write(tmp_path / "source.h5", [0.0, 1.0], seed=0)
    config = TrainingConfig.from_dict({
        "trainer": "domain_adaptation", "device": "cpu", "num_epochs": 1,
        "data": {"source": str(source), "window_length": 256, "window_stride": 256,
                 "batch_size": 4, "split": "group", "group_key": "load", "test_groups": [1.0],
                 "target_groups": [1.0], "val_fraction": 0.5, "label_fraction": 0.5},
        "model": {"name": "cnn1d", "params": {"base_channels": 4}},
        "scheduler": {"name": "none"}, "domain": {"method": "coral"},
        "output_dir": str(tmp_path / "runs")})
    result = run_training(config, progress_bar=False)
    assert isinstance(result.trainer.criterion, MaskedClassificationLoss)
    train_labels = result.data.train_loader.dataset.labels
    assert (train_labels == UNLABELED).any() and (train_labels >= 0).any()
    assert all(np.isfinite(result.history["train_loss"]))
    assert all(np.isfinite(result.history["train_domain_loss"]))
