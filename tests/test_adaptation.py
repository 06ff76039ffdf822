"""Test-time batch-norm adaptation (AdaBN) and evaluation by operating condition (issue 11)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from pfdtrain.data import read_dataset, write_dataset
from pfdtrain.evaluation.adaptation import adapt_batchnorm, batchnorm_layers
from pfdtrain.evaluation.evaluate import EvaluationError, evaluate_checkpoint, predict_logits
from pfdtrain.evaluation.groups import group_metrics
from pfdtrain.evaluation.predict import predict_recording
from tests.helpers import run_cli, tiny_trainer, train_tiny_run


def tones(seed: int, n: int = 96, length: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows whose class sets the frequency of a tone (the helpers' training task)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    t = torch.linspace(0, 1, length)
    x = torch.sin(2 * torch.pi * (y[:, None] + 1) * 4 * t)[:, None, :]
    return x + 0.3 * torch.randn(n, 1, length, generator=gen), y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    logits, targets = predict_logits(model, TensorDataset(x, y), 32)
    return 100.0 * float((logits.argmax(axis=1) == targets).mean())


@pytest.fixture(scope="module")
def source_model() -> nn.Module:
    trainer = tiny_trainer(seed=0)
    trainer.fit(10)
    return trainer.model.eval()


# ---------------------------------------------------------------- AdaBN itself
def test_adabn_recovers_a_shifted_target(source_model) -> None:
    x, y = tones(seed=1)
    assert accuracy(source_model, x, y) >= 95.0
    # A weaker sensor (a quarter of the gain) on unnormalised inputs: the batch-norm layers
    # see activations at a quarter of the scale they were trained on.
    shifted = 0.25 * x
    before = accuracy(source_model, shifted, y)
    adapted = copy.deepcopy(source_model)
    info = adapt_batchnorm(adapted, TensorDataset(shifted), batch_size=32)
    after = accuracy(adapted, shifted, y)
    assert before <= 60.0 and after >= 95.0 and after - before >= 30.0, (before, after)
    assert info == {"method": "AdaBN", "windows": 96, "layers": 5, "batch_size": 32, "seed": 0}
    # The source model is untouched; the adapted one is back in eval mode, momenta restored.
    assert accuracy(source_model, shifted, y) == before
    assert not adapted.training and all(not m.training for m in adapted.modules())
    assert [m.momentum for m in batchnorm_layers(adapted)] == [0.1] * 5


def test_first_layer_statistics_are_the_target_statistics(source_model) -> None:
    # One batch holding every window: the first batch norm's running statistics are exactly
    # the per-channel mean and unbiased variance of its input over windows and time.
    x, _ = tones(seed=2, n=40)
    adapted = copy.deepcopy(source_model)
    adapt_batchnorm(adapted, TensorDataset(3.0 * x), batch_size=40)
    conv, bn = adapted.features[0][0], adapted.features[0][1]
    with torch.no_grad():
        h = conv(3.0 * x).double()
    mean = h.mean(dim=(0, 2))
    var = h.transpose(0, 1).reshape(h.shape[1], -1).var(dim=1, unbiased=True)
    torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 1


def test_labels_are_never_read(source_model) -> None:
    x, y = tones(seed=3)
    with_labels = copy.deepcopy(source_model)
    adapt_batchnorm(with_labels, TensorDataset(0.5 * x, y), batch_size=32)
    wrong_labels = copy.deepcopy(source_model)
    adapt_batchnorm(wrong_labels, TensorDataset(0.5 * x, torch.full_like(y, -7)), batch_size=32)
    inputs_only = copy.deepcopy(source_model)
    adapt_batchnorm(inputs_only, TensorDataset(0.5 * x), batch_size=32)
    for other in (wrong_labels, inputs_only):
        for (name, a), (_, b) in zip(with_labels.state_dict().items(),
                                     other.state_dict().items()):
            assert torch.equal(a, b), name


def test_a_model_without_batch_norm_is_refused_with_the_fix() -> None:
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    with pytest.raises(EvaluationError, match="no batch-norm layers.*without --adapt-bn.*"
                                              "model.name: cnn1d"):
        adapt_batchnorm(model, TensorDataset(torch.randn(4, 1, 16)), batch_size=2)


def test_group_metrics_unit() -> None:
    rows = group_metrics([0.0, 1.0, 0.0, None], np.array([0, 0, 1, 2, 3]),
                         np.array([1, 1, 2, 0, 2]), np.array([1, 0, 2, 0, 0]),
                         np.array([1, 2, 0, 2]), np.array([1, 2, 0, 0]))
    assert rows == [
        {"value": 0.0, "num_windows": 3, "num_recordings": 2, "accuracy": pytest.approx(200 / 3),
         "recording_accuracy": 100.0},
        {"value": 1.0, "num_windows": 1, "num_recordings": 1, "accuracy": 100.0,
         "recording_accuracy": 100.0},
        {"value": "unknown", "num_windows": 1, "num_recordings": 1, "accuracy": 0.0,
         "recording_accuracy": 0.0},
    ]


# ---------------------------------------------------------------- through evaluate / predict
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny journal run: ``(checkpoint, dataset file)``."""
    _, checkpoint, data_path = train_tiny_run(tmp_path_factory.mktemp("adarun"))
    return checkpoint, data_path


def test_evaluate_by_group_and_adapted_figures_apart(run, tmp_path) -> None:
    checkpoint, _ = run
    plain = evaluate_checkpoint(checkpoint, out_dir=tmp_path / "plain", snrs=(10,))
    m = evaluate_checkpoint(checkpoint, out_dir=tmp_path / "both", snrs=(10,),
                            by=["sommerfeld", "load"], adapt_bn=True)
    # Source-only figures are the plain evaluation's, whatever else was asked.
    for key in ("accuracy", "macro_f1", "loss", "recording_accuracy", "confusion_matrix",
                "robustness"):
        assert m[key] == plain[key], key
    assert plain["adapt_bn"] is None and plain["by_group"] == {}
    assert m["uses_target_data"] is False
    adapted = m["adapt_bn"]
    assert adapted["uses_unlabeled_target_data"] is True and "unlabeled" in adapted["note"]
    assert adapted["windows"] == m["num_windows"] and adapted["layers"] == 5
    assert set(adapted["robustness"]) == {"10"}
    # Per group: windows add up to the total and the window-weighted accuracy is the total.
    for block in (m, adapted):
        rows = block["by_group"]["load"]
        assert len(rows) == m["num_recordings"]  # a continuous load: one value per record
        assert sum(r["num_windows"] for r in rows) == m["num_windows"]
        weighted = sum(r["accuracy"] * r["num_windows"] for r in rows) / m["num_windows"]
        assert weighted == pytest.approx(block["accuracy"])
    report = (tmp_path / "both" / "report.md").read_text()
    assert "## By operating condition" in report and "| load | Windows |" in report
    assert "## Test-time adaptation (AdaBN) — uses unlabeled target data" in report
    assert "## Headline (source-only: no target data used)" in report
    saved = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert saved["adapt_bn"]["accuracy"] == adapted["accuracy"]


def test_transfer_to_another_file_by_group(run, tmp_path) -> None:
    # The documented transfer test: the checkpoint on another dataset file with the same
    # classes (here: the test recordings at a third of the sensor gain, at two loads).
    checkpoint, data_path = run
    data = read_dataset(data_path)
    test = data.splits["test"]
    other = tmp_path / "other.h5"
    weaker = type(test)(signals=test.signals / 3, record_offsets=test.record_offsets,
                        labels=test.labels, record_ids=test.record_ids,
                        severities=test.severities,
                        metadata={"load": np.arange(len(test)) % 2 * 1.0})
    write_dataset(other, {"records": weaker}, class_names=data.class_names,
                  sampling_rate=data.sampling_rate, source="test rig, weaker sensor",
                  split_strategy="none")
    m = evaluate_checkpoint(checkpoint, data=other, split="all", out_dir=tmp_path / "out",
                            snrs=(), by=["load"], adapt_bn=True)
    assert m["same_data_as_training"] is False and m["num_recordings"] == len(test)
    assert m["split"] == "all"
    assert [r["value"] for r in m["by_group"]["load"]] == [0.0, 1.0]
    assert m["adapt_bn"]["by_group"]["load"][0]["num_windows"] == \
        m["by_group"]["load"][0]["num_windows"]


def test_split_all_refuses_the_training_data(run, tmp_path) -> None:
    checkpoint, data_path = run
    with pytest.raises(EvaluationError, match="would score training recordings"):
        evaluate_checkpoint(checkpoint, split="all", out_dir=tmp_path, snrs=())
    with pytest.raises(EvaluationError, match="would score its training recordings"):
        evaluate_checkpoint(checkpoint, data=data_path, split="all", out_dir=tmp_path, snrs=())


def test_unknown_by_key_names_the_available_keys(run, tmp_path) -> None:
    checkpoint, _ = run
    with pytest.raises(EvaluationError, match="no metadata key 'lod'; available keys: load, "
                                              "sommerfeld, speed_hz, temperature, viscosity"
                                              ". Did you mean 'load'?"):
        evaluate_checkpoint(checkpoint, out_dir=tmp_path, snrs=(), by=["lod"])
    proc = run_cli("evaluate", str(checkpoint), "--by", "lod", "--snr", "--out", str(tmp_path),
                   cwd=tmp_path, expect=2)
    assert "\npfdtrain: error: --by 'lod'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_evaluate_and_predict_with_adapt_bn(run, tmp_path) -> None:
    checkpoint, data_path = run
    proc = run_cli("evaluate", str(checkpoint), "--by", "load", "--adapt-bn", "--snr",
                   "--out", str(tmp_path), cwd=tmp_path)
    assert "AdaBN (batch-norm statistics from the" in proc.stdout
    test = read_dataset(data_path).splits["test"]
    np.save(tmp_path / "rec.npy", test.record(0).astype(np.float64))
    result = predict_recording(checkpoint, tmp_path / "rec.npy", sampling_rate=6400,
                               adapt_bn=True)
    assert result["adapt_bn"]["windows"] == result["num_windows"]
    assert result["adapt_bn"]["uses_unlabeled_target_data"] is True
    assert any(note.startswith("AdaBN:") for note in result["notes"])
    proc = run_cli("predict", str(checkpoint), str(tmp_path / "rec.npy"), "--sampling-rate",
                   "6400", "--adapt-bn", cwd=tmp_path)
    assert "note: AdaBN:" in proc.stdout
