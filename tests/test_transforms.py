"""Input transforms (data.transform: raw | fft | envelope | order; docs/data.md §6.4): their
physics on known signals, the exact batch = per-window agreement, refusals, and a tiny
train → evaluate → predict run with each transform on the rolling-element simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.data.records import DataError
from pfdtrain.data.transforms import (TRANSFORMS, make_transform, record_speeds_hz,
                                      transform_from_metadata)
from pfdtrain.data.windows import WindowDataset, attach_transform, build_transform
from pfdtrain.errors import EvaluationError
from tests.helpers import TINY_CLI_CONFIG, run_cli

FS = 12000.0


def _tone(freq_hz, n, fs=FS, amplitude=1.0, phase=0.0):
    t = np.arange(n) / fs
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + phase)).astype(np.float32)


def test_fft_peaks_at_a_sinusoid_bin_with_its_amplitude():
    t = make_transform("fft", {}, FS, 1200)  # 10 Hz bins
    x = torch.from_numpy(_tone(730.0, 1200, amplitude=0.5) + _tone(2000.0, 1200, amplitude=2))
    spectrum = t(x[None])[0]
    assert spectrum.shape == (601,) == (t.output_length,)
    assert int(spectrum.argmax()) == 200
    assert spectrum[73].item() == pytest.approx(0.5, rel=1e-4)
    assert spectrum[200].item() == pytest.approx(2.0, rel=1e-4)


def test_envelope_spectrum_of_impacts_peaks_at_their_repetition_rate():
    """Impacts every 1/107 s ringing a 3.5 kHz resonance (a bearing fault's bursts): the
    plain spectrum peaks at the resonance, the envelope spectrum at 107 Hz."""
    n, rate = 12000, 107.0  # 1 Hz bins
    rng = np.random.default_rng(0)
    t = np.arange(n) / FS
    x = np.zeros(n)
    for k in range(int(rate * n / FS)):
        start = int(round(k * FS / rate))
        tail = t[:n - start]
        x[start:] += np.exp(-2 * np.pi * 0.03 * 3500 * tail) * np.sin(2 * np.pi * 3500 * tail)
    x += 0.05 * rng.standard_normal(n)
    x = torch.from_numpy(((x - x.mean()) / x.std()).astype(np.float32))[None]
    assert abs(int(make_transform("fft", {}, FS, n)(x).argmax()) - 3500) < 300
    envelope = make_transform("envelope", {"band_hz": [2500, 4500]}, FS, n)(x)[0]
    assert int(envelope.argmax()) == 107
    assert int(envelope[150:].argmax()) + 150 == 214  # its second harmonic
    # Amplitude modulation of a 3 kHz carrier at 41 Hz, default band (2.4-5.4 kHz).
    am = (1 + 0.5 * np.cos(2 * np.pi * 41 * t)) * np.sin(2 * np.pi * 3000 * t)
    out = make_transform("envelope", {}, FS, n)(torch.from_numpy(am.astype(np.float32))[None])
    assert int(out[0].argmax()) == 41
    assert out[0, 41].item() == pytest.approx(0.5, rel=0.01)  # the modulation depth


@pytest.mark.parametrize("order", [3, 5])
def test_order_transform_puts_a_shaft_order_at_its_order_at_any_speed(order):
    t = make_transform("order", {"samples_per_rev": 64, "revolutions": 8}, FS, 6000)
    outputs = []
    for rpm in (1500.0, 2400.0):
        f_r = rpm / 60
        # A shaft-order tone plus a 3.5 kHz resonance, far above order 32 at these speeds:
        # the anti-alias low-pass must remove it, not fold it onto low orders.
        x = _tone(order * f_r, 6000) + _tone(3500.0, 6000, amplitude=0.5)
        y = t(torch.from_numpy(x)[None], torch.tensor([f_r], dtype=torch.float64))[0]
        assert y.shape == (512,)
        spectrum = torch.fft.rfft(y.double()).abs() / 256
        assert int(spectrum.argmax()) == order * 8  # 8 revolutions: order k at bin 8 k
        assert spectrum[order * 8].item() == pytest.approx(1.0, abs=0.05)
        others = spectrum.clone()
        others[order * 8 - 1:order * 8 + 2] = 0
        assert others.max().item() < 0.05  # no aliased resonance
        outputs.append(y)
    # Same angle, same sample: the two speeds give the same order-domain signal (away from
    # the window's ends, where the FFT low-pass of a non-periodic window rings).
    assert torch.allclose(outputs[0][32:-32], outputs[1][32:-32], atol=0.05)


def _windows(transform, n_records=5, length=30000, window=12000, stride=2500):
    rng = np.random.default_rng(1)
    signals = rng.standard_normal(n_records * length).astype(np.float32)
    offsets = np.arange(n_records + 1, dtype=np.int64) * length
    ds = WindowDataset(signals, offsets, np.arange(n_records) % 3, window, stride, "zscore")
    rpm = np.linspace(1200, 3000, n_records).astype(np.float32)
    return attach_transform(ds, transform, {"rpm": rpm}, "test")


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_batched_windows_are_bitwise_the_single_windows(name):
    """12,000-sample windows: a length where MKL's batched FFT differs from one row alone."""
    params = {"revolutions": 12} if name == "order" else {}
    ds = _windows(make_transform(name, params, FS, 12000))
    index = [7, 0, 3, len(ds) - 1, 12, 5, 9]
    batch, labels = ds.__getitems__(index).collated
    assert batch.shape == (7, 1, ds.transform.output_length)
    for row, i in enumerate(index):
        x, y = ds[i]
        assert torch.equal(batch[row], x), (name, i)
        assert int(labels[row]) == int(y)
    assert torch.equal(ds.__getitems__(index[:3]).collated[0], batch[:3])
    assert torch.isfinite(batch).all()
    assert ds.__getitems__([]).collated[0].shape == (0, 1, ds.transform.output_length)


def test_a_transform_needing_the_speed_refuses_data_without_it():
    ds = _windows(make_transform("fft", {}, FS, 12000))
    with pytest.raises(DataError, match="no speed metadata.*'rpm' or 'speed_hz'.*manifest"):
        attach_transform(ds, make_transform("order", {}, FS, 12000), {"load": np.ones(5)},
                         "plant.h5", fix="add an rpm column to the manifest")
    with pytest.raises(DataError, match="record #2 has rpm = nan"):
        record_speeds_hz({"rpm": np.array([1800, 1800, np.nan])}, ["#0", "#1", "#2"], "x", "")
    assert record_speeds_hz({"speed_hz": np.array([30.0])}, ["a"], "x", "").tolist() == [30.0]


@pytest.mark.parametrize("overrides, message", [
    ({"transform": "envelope", "transform_params": {"band_hz": [5000, 2000]}},
     r"band_hz = \[5000, 2000\] is inverted or empty.*e\.g\. \[2000, 5000\]"),
    ({"transform": "envelope", "transform_params": {"band_hz": [-10, 2000]}}, r">= 0 Hz"),
    ({"transform": "envelope", "transform_params": {"band_hz": 3000}}, r"must be \[low, high\]"),
    ({"transform": "fft", "transform_params": {"band_hz": [1, 2]}},
     r"'band_hz', which data.transform: fft does not take"),
    ({"transform": "order", "transform_params": {"samples_per_rev": 2}}, r"whole number >= 4"),
    ({"transform": "envelop"}, r"Did you mean 'envelope'"),
])
def test_bad_transform_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig.from_dict({"data": overrides})


def test_band_above_nyquist_and_too_short_windows_are_config_errors():
    config = TrainingConfig.from_dict({"data": {"transform": "envelope", "window_length": 1024,
                                                "transform_params": {"band_hz": [2000, 7000]}}})
    with pytest.raises(ConfigError, match=r"above the Nyquist frequency \(6000 Hz.*high <= 6000"):
        build_transform(config, FS)
    order = make_transform("order", {"samples_per_rev": 64, "revolutions": 8}, FS, 2048)
    ds = WindowDataset(np.zeros(4096, np.float32), np.array([0, 4096]), np.zeros(1), 2048, 2048)
    with pytest.raises(ConfigError, match=r"covers only 3.41 revolutions.*\(r0|window_length >= "):
        attach_transform(ds, order, {"rpm": np.array([1200.0])}, "x")


def test_physics_inputs_refuse_a_transformed_input():
    from pfdtrain.pipeline import _check_transform_and_physics
    from pfdtrain.training.registry import trainer_class

    config = TrainingConfig.from_dict({"trainer": "pinn", "data": {"transform": "fft"}})
    with pytest.raises(ConfigError, match="data.transform: raw"):
        trainer_class("pinn").check_config(config)
    config = TrainingConfig.from_dict({"model": {"name": "hybrid_pinn"},
                                       "data": {"transform": "fft"}})
    with pytest.raises(ConfigError, match="data.transform: raw"):
        _check_transform_and_physics(config)


def test_a_checkpoint_without_a_transform_means_raw():
    t = transform_from_metadata({"class_names": ["a"]}, FS, 1024)
    assert t.describe() == {"name": "raw", "params": {}, "output_length": 1024}


@pytest.fixture(scope="module")
def rolling_runs(tmp_path_factory):
    """One tiny training run per transform on the rolling-element simulator (one dataset)."""
    from pfdtrain.pipeline import run_training

    root = tmp_path_factory.mktemp("transforms")
    runs = {}
    for name, params in (("fft", {}), ("envelope", {"band_hz": [2000, 5000]}),
                         ("order", {"samples_per_rev": 64, "revolutions": 2})):
        runs[name] = run_training(_rolling_config(root, name, name, params),
                                  progress_bar=False)
    return root, runs


def _rolling_config(root, run_name, transform, params, epochs=1):
    config = json.loads(json.dumps(TINY_CLI_CONFIG))
    config.update(num_epochs=epochs, name=run_name, output_dir=str(root / "runs"),
                  device="cpu")
    config["synthetic"] = {"kind": "rolling_element", "record_duration": 0.5,
                           "records_per_class": 6}
    config["data"].update(window_length=2048, window_stride=2048, transform=transform,
                          transform_params=params, cache_dir=str(root / "data"))
    return TrainingConfig.from_dict(config)


def test_a_run_with_a_transform_is_reproducible_and_resumes_exactly(rolling_runs):
    from pfdtrain.pipeline import resume_training, run_training

    root, runs = rolling_runs
    params = {"samples_per_rev": 64, "revolutions": 2}
    part = run_training(_rolling_config(root, "order-part", "order", params),
                        progress_bar=False)
    assert part.history == runs["order"].history  # the same run again: the same history
    full = run_training(_rolling_config(root, "order-full", "order", params, epochs=2),
                        progress_bar=False)
    resumed = resume_training(part.run_dir, num_epochs=2, progress_bar=False)
    assert resumed.history == full.history
    weights = full.trainer.model.state_dict()
    for key, value in resumed.trainer.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


@pytest.mark.parametrize("name", ["fft", "envelope", "order"])
def test_train_evaluate_predict_apply_the_checkpoint_transform(rolling_runs, name):
    from pfdtrain.evaluation.evaluate import evaluate_checkpoint
    from pfdtrain.evaluation.loading import load_model_for_evaluation
    from pfdtrain.evaluation.predict import predict_recording

    root, runs = rolling_runs
    result = runs[name]
    expected = {"fft": 1025, "envelope": 1025, "order": 128}[name]
    assert result.data.input_length == expected
    x, _ = next(iter(result.data.train_loader))
    assert x.shape[1:] == (1, expected)
    checkpoint = result.run_dir / "checkpoints" / "best_model.pth"
    _, metadata = load_model_for_evaluation(checkpoint, device="cpu")
    assert metadata["transform"]["name"] == name
    assert metadata["transform"]["output_length"] == expected == metadata["input_length"]
    assert metadata["window_length"] == 2048
    if name == "envelope":
        assert metadata["transform"]["params"] == {"band_hz": [2000.0, 5000.0]}
    metrics = evaluate_checkpoint(checkpoint, snrs=None, device="cpu",
                                  out_dir=root / f"eval-{name}")
    assert metrics["transform"]["name"] == name and metrics["input_length"] == expected
    assert metrics["accuracy"] == pytest.approx(result.test_metrics["accuracy"])
    assert f"input transform `{name}`" in (root / f"eval-{name}" / "report.md").read_text()

    # predict: one test recording with its speed from the dataset file.
    test = result.data.test_loader.dataset
    rpm_by_record = _rpms(result.data.path, test.record_ids)
    start, end = test.record_offsets[0], test.record_offsets[1]
    recording = root / f"{name}.npy"
    np.save(recording, np.asarray(test.signals[start:end]))
    rpm = rpm_by_record[0]
    predicted = predict_recording(checkpoint, recording, sampling_rate=12000, device="cpu",
                                  rpm=rpm)
    assert predicted["transform"]["name"] == name and predicted["num_windows"] == 2
    assert predicted["window_length"] == 2048
    # An exported model carries its transform: predict --model gives the checkpoint's result.
    from pfdtrain.export.exporter import export_checkpoint
    exported = export_checkpoint(checkpoint, out=root / f"{name}.onnx")["file"]
    via_onnx = predict_recording(None, recording, sampling_rate=12000, rpm=rpm, model=exported)
    assert via_onnx["transform"] == predicted["transform"]
    assert (via_onnx["class"], via_onnx["votes"]) == (predicted["class"], predicted["votes"])
    assert via_onnx["probabilities"] == pytest.approx(predicted["probabilities"], abs=1e-5)
    if name == "order":
        with pytest.raises(EvaluationError, match="--rpm"):
            predict_recording(checkpoint, recording, sampling_rate=12000, device="cpu")
        with pytest.raises(EvaluationError, match="--rpm"):
            predict_recording(None, recording, sampling_rate=12000, model=exported)
        # The command line passes --rpm through: the same result as the API.
        proc = run_cli("predict", str(checkpoint), str(recording), "--sampling-rate", "12000",
                       "--rpm", str(rpm), "--json", "--device", "cpu", cwd=root)
        assert json.loads(proc.stdout)["probabilities"] == pytest.approx(
            predicted["probabilities"])
        proc = run_cli("predict", str(checkpoint), str(recording), "--sampling-rate", "12000",
                       cwd=root, expect=2)
        assert "--rpm" in proc.stderr
    else:
        assert predicted["rpm"] == rpm and any("--rpm is not used" in n
                                               for n in predicted["notes"])


def _rpms(path, record_ids):
    from pfdtrain.data.records import RecordSplit
    from pfdtrain.data.storage import read_dataset

    data = read_dataset(path, verify_hash=False)
    pool = RecordSplit.concat(list(data.splits.values()))
    where = {rid: i for i, rid in enumerate(pool.record_ids)}
    return [float(pool.metadata["rpm"][where[r]]) for r in record_ids]


def test_a_distillation_teacher_must_have_the_students_transform(rolling_runs):
    from pfdtrain.training.checkpoint import CheckpointError
    from pfdtrain.training.knowledge_distillation import load_teacher

    _, runs = rolling_runs
    teacher = runs["fft"].run_dir / "checkpoints" / "best_model.pth"
    names = runs["fft"].data.class_names
    load_teacher(teacher, names, "cpu", runs["fft"].data.transform)
    with pytest.raises(CheckpointError, match="trained on data.transform fft.*envelope"):
        load_teacher(teacher, names, "cpu", runs["envelope"].data.transform)


def test_a_bad_band_on_the_command_line_is_one_error_line(tmp_path):
    proc = run_cli("train", "--set", "data.transform=envelope", "--set",
                   "data.transform_params={band_hz: [5000, 2000]}", cwd=tmp_path, expect=2)
    assert proc.stderr.startswith("pfdtrain: error: data.transform_params.band_hz = "
                                  "[5000, 2000] is inverted or empty")
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()
