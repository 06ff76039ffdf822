"""Evaluation of a trained checkpoint, single-recording prediction and plots (issue 5).

One tiny run is trained per module (synthetic data, 3 epochs of a 4-channel CNN: enough for
non-trivial predictions) and evaluated once; the checks compare against computations done here
by hand from the model's own outputs.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data import build_dataloaders, read_dataset, write_dataset
from pfdtrain.evaluation.evaluate import (EvaluationError, _check_compatible, add_evaluate_parser,
                                          evaluate_checkpoint, expected_calibration_error,
                                          soft_vote)
from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.evaluation.plots import plot_confusion_matrix, plot_history
from pfdtrain.evaluation.predict import add_predict_parser, predict_recording
from pfdtrain.errors import PfdtrainError
from tests.helpers import TINY_EVAL_CONFIG, train_tiny_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATE = 6400.0
WINDOW = TINY_EVAL_CONFIG["data"]["window_length"]

TINY = TINY_EVAL_CONFIG


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run: ``(run_dir, checkpoint, dataset file)``."""
    return train_tiny_run(tmp_path_factory.mktemp("evalrun"))


@pytest.fixture(scope="module")
def evaluated(run):
    """``evaluate_checkpoint`` with its defaults (training data, test split, run folder)."""
    _, checkpoint, _ = run
    return evaluate_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def manual(run):
    """The test windows, their record indices and the model's probabilities, computed here."""
    _, checkpoint, _ = run
    model, meta = load_model_for_evaluation(checkpoint, device="cpu")
    dataset = build_dataloaders(TrainingConfig.from_dict(meta["config"])).test_loader.dataset
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=1).numpy()
    return {"dataset": dataset, "probs": probs, "labels": np.asarray(dataset.labels),
            "class_names": meta["class_names"]}


def _handler(add_parser, argv):
    parser = argparse.ArgumentParser(prog="pfdtrain")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _assert_png(path: Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5000, (path, len(data))


# --------------------------------------------------------------------------------- evaluate

def test_evaluate_writes_metrics_report_and_plot(run, evaluated):
    run_dir, checkpoint, data_path = run
    for name in ("metrics.json", "report.md", "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    _assert_png(run_dir / "confusion_matrix.png")
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored == json.loads(json.dumps(evaluated))
    assert {"checkpoint", "data", "dataset_hash", "split", "num_windows", "num_recordings",
            "class_names", "accuracy", "macro_f1", "loss", "per_class", "confusion_matrix",
            "recording_accuracy", "recording", "ece", "calibration", "robustness",
            "robustness_noise_seed", "same_data_as_training", "files"} <= set(stored)
    assert stored["data"] == str(data_path) and stored["split"] == "test"
    assert stored["same_data_as_training"] is True
    assert set(stored["per_class"]["healthy"]) == {"precision", "recall", "f1", "support"}
    assert len(stored["calibration"]["bins"]) == 15
    report = (run_dir / "report.md").read_text()
    for text in (str(data_path), stored["dataset_hash"], "| healthy |", "## Robustness",
                 "| 10 |", "ECE", "![Confusion matrix](confusion_matrix.png)", "**test**"):
        assert text in report, text
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_accuracy_and_confusion_match_the_model_outputs(evaluated, manual):
    predictions = manual["probs"].argmax(axis=1)
    assert evaluated["num_windows"] == len(manual["labels"])
    assert evaluated["accuracy"] == pytest.approx(100.0 * np.mean(predictions == manual["labels"]))
    matrix = np.zeros((11, 11), int)
    for t, p in zip(manual["labels"], predictions):
        matrix[t, p] += 1
    assert evaluated["confusion_matrix"] == matrix.tolist()
    assert len(set(predictions.tolist())) > 1  # a non-trivial model: the checks mean something


def test_recording_soft_vote_matches_a_per_record_loop(evaluated, manual):
    ds, probs = manual["dataset"], manual["probs"]
    correct, predicted = [], []
    for r, label in enumerate(ds.record_labels):
        mean = probs[ds.window_record == r].mean(axis=0)
        predicted.append(manual["class_names"][int(mean.argmax())])
        correct.append(int(mean.argmax()) == int(label))
    assert evaluated["num_recordings"] == len(ds.record_labels)
    assert evaluated["recording_accuracy"] == pytest.approx(100.0 * np.mean(correct))
    assert [p["predicted"] for p in evaluated["recording"]["predictions"]] == predicted


def test_soft_vote_unit():
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9], [0.3, 0.7]])
    out = soft_vote(probs, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(out, [[0.6, 0.4], [0.2, 0.8]])


def test_ece_matches_the_textbook_formula():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (500, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = rng.integers(0, 4, 500)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    expected = 0.0
    for m in range(15):
        lo, hi = m / 15, (m + 1) / 15
        members = (conf > lo) & (conf <= hi)
        if members.any():
            expected += members.mean() * abs((pred[members] == targets[members]).mean()
                                             - conf[members].mean())
    result = expected_calibration_error(probs, targets)
    assert result["ece"] == pytest.approx(expected, abs=1e-12)
    assert sum(b["count"] for b in result["bins"]) == 500
    # Two hand-checked samples: |1 - 0.9| / 2 + |0 - 0.6| / 2.
    two = expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
    assert two["ece"] == pytest.approx(0.35)
    # Perfectly calibrated one-hot predictions: zero error.
    assert expected_calibration_error(np.eye(3), np.arange(3))["ece"] == 0.0


def test_robustness_per_snr_and_reproducible(run, evaluated, tmp_path, capsys):
    assert set(evaluated["robustness"]) == {"20", "10", "5"}
    for row in evaluated["robustness"].values():
        assert 0.0 <= row["accuracy"] <= 100.0
        # Noise should not help; a few windows may flip by chance, so not an exact bound.
        assert row["accuracy"] <= evaluated["accuracy"] + 10.0
    _, checkpoint, _ = run
    code = _handler(add_evaluate_parser, ["evaluate", str(checkpoint), "--snr", "10",
                                          "--out", str(tmp_path), "--json"])
    assert code == 0
    again = json.loads(capsys.readouterr().out)
    assert again["robustness"] == {"10": evaluated["robustness"]["10"]}  # fixed noise seed
    assert again["accuracy"] == evaluated["accuracy"]
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "report.md").is_file()


def test_evaluate_handler_prints_a_summary(run, tmp_path, capsys):
    _, checkpoint, data_path = run
    code = _handler(add_evaluate_parser, ["evaluate", str(checkpoint), "--data", str(data_path),
                                          "--split", "val", "--snr", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "recording accuracy" in out and "(val:" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["robustness"] == {}


def _modified_copy(source: Path, target: Path, **changes) -> Path:
    data = read_dataset(source)
    kwargs = {"class_names": data.class_names, "sampling_rate": data.sampling_rate,
              "source": "modified copy", **changes}
    write_dataset(target, data.splits, **kwargs)
    return target


def test_other_class_names_fail_clearly(run, tmp_path):
    _, checkpoint, data_path = run
    names = [f"fault_{i}" for i in range(11)]
    other = _modified_copy(data_path, tmp_path / "renamed.h5", class_names=names)
    with pytest.raises(EvaluationError) as info:
        evaluate_checkpoint(checkpoint, data=other, out_dir=tmp_path / "out")
    message = str(info.value)
    assert "fault_0" in message and "healthy" in message and "renamed.h5" in message
    assert isinstance(info.value, PfdtrainError)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_other_sampling_rate_fails_clearly(run, tmp_path):
    _, checkpoint, data_path = run
    other = _modified_copy(data_path, tmp_path / "fast.h5", sampling_rate=12800.0)
    with pytest.raises(EvaluationError, match=r"6400 Hz.*12800 Hz"):
        evaluate_checkpoint(checkpoint, data=other, out_dir=tmp_path)


def test_other_window_length_and_bad_split_fail_clearly(run):
    meta = {"class_names": ["a"], "sampling_rate": RATE, "input_length": WINDOW}
    with pytest.raises(EvaluationError, match="1024 samples.*512"):
        _check_compatible(meta, ["a"], RATE, 512, Path("d.h5"), Path("c.pth"))
    _, checkpoint, _ = run
    with pytest.raises(EvaluationError, match="unknown split 'holdout'"):
        evaluate_checkpoint(checkpoint, split="holdout")


# --------------------------------------------------------------------------------- predict

def _test_record(manual, r=0) -> np.ndarray:
    ds = manual["dataset"]
    return ds.signals[ds.record_offsets[r]:ds.record_offsets[r + 1]].astype(np.float64)


def test_predict_matches_the_evaluated_windows(run, manual, tmp_path):
    _, checkpoint, _ = run
    np.save(tmp_path / "rec.npy", _test_record(manual))
    result = predict_recording(checkpoint, tmp_path / "rec.npy", sampling_rate=RATE,
                               device="cpu")
    expected = manual["probs"][manual["dataset"].window_record == 0]
    assert result["num_windows"] == len(expected) == (3200 - WINDOW) // 512 + 1
    assert sum(result["votes"].values()) == result["num_windows"]
    assert result["class"] in manual["class_names"]
    # Same windows, same normalisation as training: the same probabilities.
    mean = expected.mean(axis=0)
    assert result["class"] == manual["class_names"][int(mean.argmax())]
    assert result["probability"] == pytest.approx(mean.max(), abs=1e-5)
    assert [w["probability"] for w in result["window_predictions"]] == \
        pytest.approx(expected.max(axis=1).tolist(), abs=1e-5)
    assert result["sampling_rate_source"] == "argument" and result["notes"] == []


def test_predict_handler_json_and_text(run, manual, tmp_path, capsys):
    _, checkpoint, _ = run
    np.save(tmp_path / "rec.npy", _test_record(manual, 1))
    assert _handler(add_predict_parser, ["predict", str(checkpoint), str(tmp_path / "rec.npy"),
                                         "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sampling_rate_source"] == "assumed" and "assumed" in result["notes"][0]
    assert sum(result["votes"].values()) == result["num_windows"] == 5
    assert _handler(add_predict_parser, ["predict", str(checkpoint), str(tmp_path / "rec.npy"),
                                         "--sampling-rate", "6400"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(result["class"]) and "votes:" in out and "5 windows" in out
    # A two-column CSV through the importer, the column picked by name: the same diagnosis.
    signal = _test_record(manual, 1)
    np.savetxt(tmp_path / "rec.csv", np.column_stack([np.arange(signal.size) / RATE, signal]),
               delimiter=",", header="time,accel", comments="", fmt="%.9g")
    assert _handler(add_predict_parser, ["predict", str(checkpoint), str(tmp_path / "rec.csv"),
                                         "--column", "accel", "--json"]) == 0
    from_csv = json.loads(capsys.readouterr().out)
    assert from_csv["class"] == result["class"] and from_csv["votes"] == result["votes"]


def test_predict_refuses_short_recordings_and_other_rates(run, tmp_path):
    _, checkpoint, _ = run
    np.save(tmp_path / "short.npy", np.random.default_rng(0).normal(size=WINDOW - 1))
    with pytest.raises(EvaluationError, match="1023 samples.*fewer than one model window"):
        predict_recording(checkpoint, tmp_path / "short.npy", device="cpu")
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).normal(size=4 * WINDOW))
    with pytest.raises(EvaluationError, match="12000 Hz.*6400 Hz.*[Rr]esample"):
        predict_recording(checkpoint, tmp_path / "ok.npy", sampling_rate=12000, device="cpu")
    with pytest.raises(EvaluationError, match="does not exist"):
        predict_recording(checkpoint, tmp_path / "missing.npy", device="cpu")


# --------------------------------------------------------------------------------- plots

def test_plot_history_and_confusion_matrix_write_pngs(tmp_path):
    history = {"train_loss": [2.0, 1.2, 0.8], "val_loss": [2.1, 1.4, 1.1],
               "train_acc": [20.0, 55.0, 70.0], "val_acc": [18.0, 50.0, 61.0],
               "lr": [1e-2, 1e-3, 1e-4]}
    assert plot_history(history, tmp_path / "sub" / "history.png") == tmp_path / "sub" / "history.png"
    _assert_png(tmp_path / "sub" / "history.png")
    plot_history({"train_loss": [1.0, 0.5]}, tmp_path / "train_only.png")  # no val, no lr
    _assert_png(tmp_path / "train_only.png")
    matrix = [[5, 1, 0], [0, 6, 2], [0, 0, 0]]  # an empty row must not produce NaN
    for normalize in (True, False):
        path = plot_confusion_matrix(matrix, ["healthy", "wear", "cavitation"],
                                     tmp_path / f"cm-{normalize}.png", normalize=normalize)
        _assert_png(path)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix([[1, 2]], ["a", "b"], tmp_path / "bad.png")
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_uses_the_rate_the_file_states(run, manual, tmp_path, capsys):
    """Issue 9 item 6: a .mat that states fs is read at that rate; another rate than the
    model's is refused unless --resample (or an explicit --sampling-rate) says what to do."""
    import scipy.io
    from scipy.signal import resample_poly

    _, checkpoint, _ = run
    signal = _test_record(manual)
    scipy.io.savemat(tmp_path / "same.mat", {"acc": signal[:, None], "fs": RATE})
    same = predict_recording(checkpoint, tmp_path / "same.mat", device="cpu")
    assert same["sampling_rate_source"] == "file" and same["notes"] == []
    fast = resample_poly(signal, 2, 1)  # the same vibration recorded at 12,800 Hz
    scipy.io.savemat(tmp_path / "fast.mat", {"acc": fast[:, None], "fs": 2 * RATE})
    with pytest.raises(EvaluationError, match=r"12800 Hz \(the file states it in 'fs'\).*"
                                              r"6400 Hz.*--resample"):
        predict_recording(checkpoint, tmp_path / "fast.mat", device="cpu")
    from pfdtrain.cli import main

    assert main(["predict", str(checkpoint), str(tmp_path / "fast.mat"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("pfdtrain: error:")
    assert main(["predict", str(checkpoint), str(tmp_path / "fast.mat"), "--device", "cpu",
                 "--resample"]) == 0
    assert "note: resampled from 12800 Hz to the model's 6400 Hz" in capsys.readouterr().out
    resampled = predict_recording(checkpoint, tmp_path / "fast.mat", device="cpu", resample=True)
    assert resampled["resampled_from"] == 2 * RATE and resampled["sampling_rate"] == RATE
    assert resampled["num_windows"] == same["num_windows"]
    assert resampled["class"] == same["class"]
    assert resampled["probability"] == pytest.approx(same["probability"], abs=0.05)
    # A ratio that needs approximating (MFPT's 48,828 Hz) is resampled and says so.
    scipy.io.savemat(tmp_path / "mfpt.mat", {"bearing": {"gs": np.random.default_rng(1).normal(
        size=(8000, 1)), "sr": 48828.0}})
    odd = predict_recording(checkpoint, tmp_path / "mfpt.mat", variable="bearing.gs",
                            device="cpu", resample=True)
    assert odd["sampling_rate_source"] == "file" and odd["resampled_from"] == 48828.0
    assert "approximated as" in odd["notes"][-1] and odd["num_windows"] >= 1
    # An explicit rate overrides the file's statement, with a note.
    told = predict_recording(checkpoint, tmp_path / "same.mat", device="cpu",
                             sampling_rate=RATE)
    assert told["notes"] == []
    scipy.io.savemat(tmp_path / "wrong.mat", {"acc": signal[:, None], "fs": 48000.0})
    fixed = predict_recording(checkpoint, tmp_path / "wrong.mat", device="cpu",
                              sampling_rate=RATE)
    assert fixed["sampling_rate_source"] == "argument"
    assert "the file states 48000 Hz ('fs'); used the given 6400 Hz" in fixed["notes"]
    assert fixed["probabilities"] == pytest.approx(same["probabilities"])
