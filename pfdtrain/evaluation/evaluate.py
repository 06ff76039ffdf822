"""Evaluate a trained checkpoint on a dataset split: metrics, calibration, noise robustness, report.

``pfdtrain evaluate runs/<name>/checkpoints/best_model.pth`` rebuilds the data the model was
trained on (from the config stored in the checkpoint), runs the model on one split and writes
``metrics.json``, ``report.md`` and ``confusion_matrix.png`` into the run folder. ``--by KEY``
adds accuracy per value of a metadata key (:mod:`pfdtrain.evaluation.groups`), ``--split all
--data other.h5`` scores every recording of another file (the transfer test), and
``--adapt-bn`` adds the figures after AdaBN test-time adaptation
(:mod:`pfdtrain.evaluation.adaptation`), reported apart from the source-only ones.

Conventions: accuracies are percentages (0-100, as everywhere in pfdtrain); F1, precision,
recall, probabilities, confidences and the expected calibration error are fractions (0-1).

Example:
    >>> metrics = evaluate_checkpoint(Path("runs/cnn1d-x/checkpoints/best_model.pth"))
    >>> metrics["accuracy"], metrics["recording_accuracy"], metrics["ece"]
    (93.4, 97.7, 0.031)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from pfdtrain import __version__
# Re-exported here, where callers have always found them.
from pfdtrain.errors import EvaluationError, OutputError
from pfdtrain.evaluation.batches import forward_batch, model_takes_metadata
from pfdtrain.training.registry import trainer_class

PathLike = Union[str, Path]

#: Confidence bins of the expected calibration error (equal width on [0, 1]).
ECE_BINS = 15
#: Seed of the robustness noise: the same noisy windows on every rerun and every machine.
DEFAULT_NOISE_SEED = 0
#: Default signal-to-noise ratios (dB) of the robustness test.
DEFAULT_SNRS: tuple[float, ...] = (20.0, 10.0, 5.0)
#: ``--split all``: every recording of another dataset file (the transfer test).
ALL_RECORDS = "all"
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test", ALL_RECORDS)


# --------------------------------------------------------------------------------------------
# Metric helpers (pure numpy, unit-testable)
# --------------------------------------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row maximum, so large logits don't overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray,
                               num_bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected calibration error with equal-width confidence bins (Guo et al., 2017).

    Each sample's confidence is its largest probability and it is correct when that class is
    the target. Bin ``m`` holds confidences in ``((m-1)/M, m/M]``;
    ``ECE = sum_m |B_m|/n * |acc(B_m) - conf(B_m)|``.

    Args:
        probabilities: ``[N, K]`` class probabilities (rows sum to 1).
        targets: ``[N]`` true class indices.
        num_bins: ``M``, the number of bins.

    Returns:
        ``{"ece", "num_bins", "num_samples", "accuracy", "mean_confidence", "bins"}``; ``ece``,
        ``accuracy`` and ``mean_confidence`` are fractions. ``bins`` lists every bin as
        ``{"lower", "upper", "count", "accuracy", "confidence", "gap"}`` (accuracy/confidence
        None for an empty bin): the data of a reliability diagram.

    Raises:
        ValueError: shapes disagree or ``num_bins < 1``.

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))["ece"]
        0.35
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    if probs.ndim != 2 or targets.shape != (probs.shape[0],):
        raise ValueError(f"probabilities must be [N, K] and targets [N]; got {probs.shape} and "
                         f"{targets.shape}")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    n = probs.shape[0]
    confidence = probs.max(axis=1) if n else np.zeros(0)
    correct = (probs.argmax(axis=1) == targets) if n else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # side="left" on the inner edges puts a confidence equal to an edge in the lower bin:
    # exactly the (lower, upper] convention of the standard implementation.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    bins, ece = [], 0.0
    for m in range(num_bins):
        members = index == m
        count = int(members.sum())
        acc = float(correct[members].mean()) if count else None
        conf = float(confidence[members].mean()) if count else None
        gap = abs(acc - conf) if count else None
        if count:
            ece += count / n * gap
        bins.append({"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": count,
                     "accuracy": acc, "confidence": conf, "gap": gap})
    return {"ece": float(ece), "num_bins": int(num_bins), "num_samples": int(n),
            "accuracy": float(correct.mean()) if n else 0.0,
            "mean_confidence": float(confidence.mean()) if n else 0.0, "bins": bins}


def soft_vote(probabilities: np.ndarray, window_record: np.ndarray,
              num_records: int) -> np.ndarray:
    """Average the window probabilities of each recording.

    Args:
        probabilities: ``[num_windows, K]`` softmax outputs.
        window_record: ``[num_windows]`` recording index of each window
            (``WindowDataset.window_record``).
        num_records: number of recordings ``R``.

    Returns:
        ``[R, K]`` mean probabilities; a recording without windows gets a row of NaN.

    Example:
        >>> soft_vote(np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]), np.array([0, 0, 1]), 2)
        array([[0.6, 0.4],
               [0.1, 0.9]])
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    record = np.asarray(window_record, dtype=np.int64)
    sums = np.zeros((num_records, probs.shape[1]), dtype=np.float64)
    np.add.at(sums, record, probs)
    counts = np.bincount(record, minlength=num_records).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


# --------------------------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------------------------

@torch.inference_mode()
def predict_logits(model: nn.Module, dataset: Any, batch_size: int, num_workers: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over every item of ``dataset`` in order.

    Args:
        model: a classifier in eval mode.
        dataset: items ``(x, y)`` or ``(x, y, metadata)`` (a ``WindowDataset``).
        batch_size: windows per forward pass.
        num_workers: DataLoader workers (window cutting and normalisation run there).

    Returns:
        ``(logits float32 [N, K], targets int64 [N])`` on the CPU.
    """
    device = next(model.parameters()).device
    takes_metadata = model_takes_metadata(model)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    all_logits, all_targets = [], []
    for batch in loader:
        logits = forward_batch(model, batch, device, takes_metadata)
        all_logits.append(logits.detach().float().cpu())
        all_targets.append(batch[1])
    if not all_logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return torch.cat(all_logits).numpy(), torch.cat(all_targets).numpy().astype(np.int64)


def _resolve_data_path(stored: Optional[str], run_root: Optional[Path]) -> Optional[Path]:
    """A stored (maybe relative) data path as it resolves here, or None when not found.

    Relative paths in a run are relative to the folder training ran in; for a standard run
    folder ``<output_dir>/<name>`` that is usually two levels above it, so that is tried
    after the current directory.
    """
    if not stored or stored == "synthetic":
        return None
    path = Path(stored)
    candidates = [path]
    if not path.is_absolute() and run_root is not None:
        candidates.append(run_root / path)
    return next((c for c in candidates if c.is_file()), None)


def checkpoint_run_folder(checkpoint: Path) -> Path:
    """The run folder of ``runs/<name>/checkpoints/x.pth``, else the checkpoint's folder."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _check_compatible(metadata: dict, class_names: Sequence[str], sampling_rate: float,
                      input_length: int, data_path: Path, checkpoint: Path) -> None:
    """Refuse data the model's outputs or inputs do not mean the same thing on."""
    trained_names = metadata.get("class_names")
    if trained_names is not None and list(trained_names) != list(class_names):
        raise EvaluationError(
            f"{checkpoint} was trained on classes {list(trained_names)}, but {data_path} has "
            f"classes {list(class_names)}; its outputs would be read as the wrong faults. "
            f"Evaluate on data with the same class names in the same order (relabel the file "
            f"with pfdtrain.data.write_dataset) or train a model on this data.")
    trained_rate = metadata.get("sampling_rate")
    if trained_rate is not None and not math.isclose(float(trained_rate), float(sampling_rate),
                                                     rel_tol=1e-6):
        raise EvaluationError(
            f"{checkpoint} was trained on data sampled at {float(trained_rate):g} Hz, but "
            f"{data_path} is sampled at {float(sampling_rate):g} Hz; fault frequencies would "
            f"land in the wrong place. Resample the recordings to {float(trained_rate):g} Hz "
            f"(e.g. scipy.signal.resample_poly) and write the dataset again.")
    trained_length = metadata.get("input_length")
    if trained_length is not None and int(trained_length) != int(input_length):
        # With an input transform the model input is not the window; the fix is the window.
        window = int(metadata.get("window_length") or trained_length)
        raise EvaluationError(
            f"{checkpoint} was trained on model inputs of {int(trained_length)} values "
            f"(windows of {window} samples), but the evaluation inputs have "
            f"{int(input_length)}; evaluate with data.window_length = {window}.")


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Target:
    """The evaluated windows and the file they come from."""

    path: Path
    content_hash: str
    class_names: list[str]
    sampling_rate: float
    input_length: int
    dataset: Any


def _whole_file(config: Any, with_metadata: bool) -> _Target:
    """Every recording of ``config.data.source`` as one window dataset (``--split all``)."""
    from pfdtrain.data.records import RecordSplit
    from pfdtrain.data.storage import read_dataset
    from pfdtrain.data.windows import WindowDataset, attach_transform, build_transform

    data = read_dataset(config.data.source, verify_hash=True)
    pool = RecordSplit.concat(list(data.splits.values()))
    dc = config.data
    try:
        dataset = WindowDataset.from_split(pool, dc.window_length, dc.window_stride,
                                           dc.normalization, with_metadata=with_metadata)
    except ValueError as exc:  # a recording shorter than the model's window
        raise EvaluationError(f"{data.path}: {exc}") from None
    transform = build_transform(config, data.sampling_rate)
    attach_transform(dataset, transform, pool.metadata, str(data.path))
    return _Target(Path(data.path), data.content_hash, list(data.class_names),
                   float(data.sampling_rate), int(transform.output_length), dataset)


def score_predictions(logits: np.ndarray, targets: np.ndarray, dataset: Any,
                      class_names: Sequence[str],
                      group_values: Optional[dict[str, list[Any]]] = None) -> dict[str, Any]:
    """Window and recording metrics of one set of logits on ``dataset``'s windows.

    Args:
        logits: ``[N, K]`` model outputs for the windows of ``dataset``, in order.
        targets: ``[N]`` true classes.
        dataset: the windows (``record_ids``, ``record_labels``, ``window_record``).
        class_names: names by class index.
        group_values: ``{key: [value per recording]}`` for the per-group table.

    Returns:
        ``accuracy`` (%), ``macro_f1``, ``loss``, ``per_class``, ``confusion_matrix``,
        ``recording_accuracy`` (%, soft vote), ``recording`` (its macro F1, confusion matrix
        and per-recording predictions) and ``by_group`` (``{key: rows}``).

    Example:
        >>> score_predictions(logits, targets, test_ds, names)["recording_accuracy"]
        97.7
    """
    from pfdtrain.evaluation.groups import group_metrics
    from pfdtrain.evaluation.metrics import classification_report

    probs = softmax(logits)
    predictions = probs.argmax(axis=1)
    report = classification_report(targets, predictions, class_names)
    loss = float(F.cross_entropy(torch.from_numpy(logits).double(),
                                 torch.from_numpy(targets)).item())
    # Recording level: mean probability over each recording's windows (soft vote).
    num_records = len(dataset.record_ids)
    record_probs = soft_vote(probs, dataset.window_record, num_records)
    record_labels = np.asarray(dataset.record_labels, dtype=np.int64)
    record_pred = record_probs.argmax(axis=1)
    record_report = classification_report(record_labels, record_pred, class_names)
    windows_per_record = np.bincount(dataset.window_record, minlength=num_records)
    recording = {
        "accuracy": record_report["accuracy"],
        "macro_f1": record_report["macro_f1"],
        "confusion_matrix": record_report["confusion_matrix"],
        "num_recordings": num_records,
        "predictions": [
            {"record_id": str(dataset.record_ids[r]), "label": class_names[record_labels[r]],
             "predicted": class_names[record_pred[r]],
             "probability": float(record_probs[r, record_pred[r]]),
             "num_windows": int(windows_per_record[r])}
            for r in range(num_records)],
    }
    by_group = {key: group_metrics(values, dataset.window_record, targets, predictions,
                                   record_labels, record_pred)
                for key, values in (group_values or {}).items()}
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "loss": loss,
            "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
            "recording_accuracy": recording["accuracy"], "recording": recording,
            "by_group": by_group}


def _robustness(model: nn.Module, dataset: Any, snrs: Optional[Iterable[float]],
                noise_seed: int, batch_size: int, num_workers: int,
                class_names: Sequence[str], clean_accuracy: float,
                adapt: bool = False) -> dict[str, dict[str, float]]:
    """Accuracy on the same windows with white noise at each SNR (fixed seed: reproducible).

    With ``adapt`` a copy of ``model`` is batch-norm adapted on each noisy copy first (the
    noisy windows are the target domain).
    """
    from pfdtrain.evaluation.adaptation import adapt_batchnorm
    from pfdtrain.evaluation.metrics import classification_report

    robustness: dict[str, dict[str, float]] = {}
    for snr in [float(s) for s in (snrs or ())]:
        noisy_ds = dataset.with_noise(snr, noise_seed=noise_seed)
        scored = model
        if adapt:
            scored = copy.deepcopy(model)
            adapt_batchnorm(scored, noisy_ds, batch_size, num_workers)
        noisy_logits, noisy_targets = predict_logits(scored, noisy_ds, batch_size, num_workers)
        noisy = classification_report(noisy_targets, noisy_logits.argmax(axis=1), class_names)
        robustness[f"{snr:g}"] = {"snr_db": snr, "accuracy": noisy["accuracy"],
                                  "macro_f1": noisy["macro_f1"],
                                  "accuracy_drop": clean_accuracy - noisy["accuracy"]}
    return robustness


def _adapted_scores(model: nn.Module, dataset: Any, snrs: Optional[Iterable[float]],
                    noise_seed: int, batch_size: int, num_workers: int,
                    class_names: Sequence[str], group_values: dict[str, list[Any]]
                    ) -> dict[str, Any]:
    """The ``adapt_bn`` block: the figures of a copy of ``model`` adapted on ``dataset``."""
    from pfdtrain.evaluation.adaptation import ADAPTATION_NOTE, adapt_batchnorm

    adapted = copy.deepcopy(model)  # the source-only model stays as trained
    info = adapt_batchnorm(adapted, dataset, batch_size, num_workers)
    logits, targets = predict_logits(adapted, dataset, batch_size, num_workers)
    scores = score_predictions(logits, targets, dataset, class_names, group_values)
    scores["robustness"] = _robustness(model, dataset, snrs, noise_seed, batch_size,
                                       num_workers, class_names, scores["accuracy"], adapt=True)
    return {"uses_unlabeled_target_data": True, "note": ADAPTATION_NOTE, **info, **scores}



@dataclasses.dataclass
class CheckpointWindows:
    """The windows a checkpoint is scored on, made as in its training (see
    :func:`checkpoint_windows`)."""

    config: Any  # the checkpoint's TrainingConfig, augmentation off, transform as trained
    target: _Target
    run_dir: Path
    training_hash: Optional[str]
    same_data: bool


def checkpoint_windows(checkpoint: PathLike, metadata: dict[str, Any],
                       data: Optional[PathLike] = None, split: str = "test",
                       batch_size: Optional[int] = None, with_metadata: bool = False
                       ) -> CheckpointWindows:
    """Rebuild the windows of one split as the checkpoint's training made them.

    Shared by ``pfdtrain evaluate`` and ``pfdtrain export`` (its parity check), so both read
    the same windows: window length, stride, normalisation and input transform from the
    config stored in the checkpoint, augmentation off. Without ``data`` the dataset is the
    one the checkpoint was trained on (the recorded file when it still exists, else the
    one its config rebuilds), and its content hash must equal the training data's.

    Args:
        checkpoint: the checkpoint file (its folder locates the run and relative paths).
        metadata: what :func:`~pfdtrain.evaluation.loading.load_model_for_evaluation`
            returned for it.
        data: another ``.h5`` dataset file (same class names and sampling rate).
        split: ``train``, ``val``, ``test`` or ``all`` (every recording of ``data``).
        batch_size: overrides the training batch size in the returned config.
        with_metadata: the model reads operating conditions (windows carry metadata when
            its trainer also needs them).

    Returns:
        A :class:`CheckpointWindows` (config, the split's windows with their file, hash,
        class names, rate and input length, the run folder, the training data's hash and
        whether the windows come from it).

    Raises:
        EvaluationError: no stored config, an unknown or empty split, data the model's
            outputs or inputs mean something else on, or default data that no longer
            matches the training data.

    Example:
        >>> model, meta = load_model_for_evaluation("runs/x/checkpoints/best_model.pth")
        >>> windows = checkpoint_windows("runs/x/checkpoints/best_model.pth", meta)
        >>> len(windows.target.dataset), windows.target.class_names[:2]
        (132, ['healthy', 'misalignment'])
    """
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import build_dataloaders

    checkpoint = Path(checkpoint)
    if split not in SPLIT_NAMES:
        raise EvaluationError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
    stored_config = metadata.get("config")
    if not stored_config:
        raise EvaluationError(f"{checkpoint} stores no training config, so the window length, "
                              f"stride and normalisation used in training are unknown; save "
                              f"checkpoints with pfdtrain's trainer (it stores them).")
    config = TrainingConfig.from_dict(stored_config)
    # Evaluation scores the recordings as they are: training augmentation never applies,
    # not even to --split train.
    config.augment.enabled = False
    # The model input is made as in training: the transform the checkpoint records (a
    # checkpoint from before transforms records none and its config none: raw).
    stored_transform = metadata.get("transform") or {}
    if stored_transform.get("name"):
        config.data.transform = stored_transform["name"]
        config.data.transform_params = dict(stored_transform.get("params") or {})
    run_dir = checkpoint_run_folder(checkpoint)
    run_root = run_dir.parent.parent if checkpoint.parent.name == "checkpoints" else None
    training_hash = metadata.get("dataset_hash")

    if data is not None:
        config.data.source = str(data)
    else:
        found = (_resolve_data_path(metadata.get("dataset_path"), run_root)
                 or _resolve_data_path(config.data.source, run_root))
        if found is not None:
            config.data.source = str(found)
        elif config.data.source == "synthetic" and not Path(config.data.cache_dir).is_absolute() \
                and run_root is not None and not Path(config.data.cache_dir).is_dir():
            # Regenerate into the training folder's cache rather than a stray one here.
            config.data.cache_dir = str(run_root / config.data.cache_dir)
    if batch_size is not None:
        config.data.batch_size = int(batch_size)
    with_metadata = trainer_class(config.trainer).needs_metadata and with_metadata
    if split == ALL_RECORDS:
        if data is None:
            raise EvaluationError(
                "--split all scores every recording of a file, so on the training data it "
                "would score training recordings; pass another dataset file with --data "
                "(the transfer test), or evaluate --split test.")
        target = _whole_file(config, with_metadata)
    else:
        bundle = build_dataloaders(config, with_metadata=with_metadata)
        loader = {"train": bundle.train_loader, "val": bundle.val_loader,
                  "test": bundle.test_loader}[split]
        target = _Target(bundle.path, bundle.content_hash, list(bundle.class_names),
                         float(bundle.sampling_rate), int(bundle.input_length),
                         loader.dataset if loader is not None else None)
    _check_compatible(metadata, target.class_names, target.sampling_rate, target.input_length,
                      target.path, checkpoint)
    same_data = training_hash is None or training_hash == target.content_hash
    if data is None and not same_data:
        raise EvaluationError(
            f"the dataset rebuilt from {checkpoint}'s config ({target.path}, hash "
            f"{target.content_hash[:12]}) is not the one it was trained on (hash "
            f"{training_hash[:12]}), so its {split} split may hold training recordings; pass "
            f"the training data file with --data / data=.")
    if split == ALL_RECORDS and training_hash == target.content_hash:
        raise EvaluationError(
            f"{target.path} is the data {checkpoint} was trained on, so --split all would "
            f"score its training recordings; evaluate --split test, or pass another file.")
    if target.dataset is None or len(target.dataset) == 0:
        raise EvaluationError(f"{target.path} has no {split} records; evaluate another split "
                              f"(--split {'test' if split != 'test' else 'val'}).")
    return CheckpointWindows(config, target, run_dir, training_hash, same_data)


def evaluate_checkpoint(checkpoint: PathLike, data: Optional[PathLike] = None,
                        split: str = "test", out_dir: Optional[PathLike] = None,
                        snrs: Optional[Iterable[float]] = DEFAULT_SNRS,
                        device: Union[str, torch.device] = "auto",
                        batch_size: Optional[int] = None,
                        noise_seed: int = DEFAULT_NOISE_SEED, by: Sequence[str] = (),
                        adapt_bn: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint on one split and write ``metrics.json``, ``report.md`` and a plot.

    The data is cut and normalised exactly as in training (window length, stride and
    normalisation from the config stored in the checkpoint). Without ``data`` it is the
    dataset the checkpoint was trained on: the file recorded in the checkpoint when it still
    exists, otherwise the one its config rebuilds (the synthetic generator is deterministic);
    either way its content hash must equal the training data's.

    Args:
        checkpoint: a pfdtrain checkpoint (``runs/<name>/checkpoints/best_model.pth``).
        data: an ``.h5`` dataset file to evaluate on instead; it must have the training
            data's class names (same order) and sampling rate.
        split: ``"test"`` (default), ``"val"``, ``"train"``, or ``"all"``: every recording of
            ``data`` (another file than the training data: the transfer test), cut into
            windows without splitting (the training split settings then play no part).
        out_dir: folder for the outputs; default: the run folder (the parent of the
            ``checkpoints/`` folder holding ``checkpoint``), else the checkpoint's folder.
        snrs: signal-to-noise ratios (dB) of the white-noise robustness test; empty or None
            skips it.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        batch_size: windows per forward pass (default: the training batch size).
        noise_seed: seed of the robustness noise (fixed, so reruns give the same numbers).
        by: metadata keys (e.g. ``["load"]``) to report accuracy per value of, beside the
            totals (``by_group``).
        adapt_bn: also evaluate after test-time batch-norm adaptation on the evaluated
            windows (AdaBN, unlabeled target data), reported apart under ``adapt_bn``; the
            headline figures stay source-only.

    Returns:
        The metrics dict written to ``metrics.json``: ``accuracy`` (%), ``macro_f1``,
        ``loss``, ``per_class`` (precision/recall/f1/support), ``confusion_matrix``
        (``[true][predicted]`` counts), ``recording_accuracy`` (%, soft vote) and
        ``recording`` (its macro F1, confusion matrix and per-recording predictions),
        ``ece`` and ``calibration`` (reliability bins), ``robustness`` (``{"20": {"snr_db",
        "accuracy", "macro_f1", "accuracy_drop"}, ...}``), ``by_group`` (``{key: [{"value",
        "num_windows", "num_recordings", "accuracy", "recording_accuracy"}]}``), ``adapt_bn``
        (None, or the same figures after AdaBN with ``uses_unlabeled_target_data`` and a
        note; its robustness adapts on each noisy copy) and provenance (checkpoint, data
        file and hash, split, counts, files written).

    Raises:
        EvaluationError: unknown or empty split, class names / sampling rate / window length
            different from the training data's, default data that no longer matches the
            training data, a ``by`` key the data lacks, or ``adapt_bn`` on a model without
            batch norm.
        CheckpointError: the checkpoint cannot be loaded.
        DataError: the data file is missing or invalid.

    Example:
        >>> m = evaluate_checkpoint(Path("runs/x/checkpoints/best_model.pth"), snrs=(10,))
        >>> m["robustness"]["10"]["accuracy"], m["files"]["report"]
        (81.2, 'runs/x/report.md')
    """
    # Imported here: the plotting and file helpers are only needed when evaluating.
    from pfdtrain.evaluation.loading import load_model_for_evaluation
    from pfdtrain.evaluation.plots import plot_confusion_matrix
    from pfdtrain.utils.io import atomic_open, write_json

    started = time.perf_counter()
    checkpoint = Path(checkpoint)
    model, metadata = load_model_for_evaluation(checkpoint, device=device)
    rebuilt = checkpoint_windows(checkpoint, metadata, data, split, batch_size,
                                 with_metadata=model_takes_metadata(model))
    config, target, run_dir = rebuilt.config, rebuilt.target, rebuilt.run_dir
    training_hash, same_data = rebuilt.training_hash, rebuilt.same_data
    dataset = target.dataset
    class_names = target.class_names
    num_workers = config.data.num_workers
    bs = config.data.batch_size
    # Refuse a bad --by key or --adapt-bn on a model without batch norm before any work.
    group_values: dict[str, list[Any]] = {}
    if by:
        from pfdtrain.evaluation.groups import record_metadata
        group_values = record_metadata(Path(target.path), dataset.record_ids, list(by))
    if adapt_bn:
        from pfdtrain.evaluation.adaptation import require_batchnorm
        require_batchnorm(model)

    # Clean windows: the headline numbers, source-only (the model as trained).
    logits, targets = predict_logits(model, dataset, bs, num_workers)
    scores = score_predictions(logits, targets, dataset, class_names, group_values)
    calibration = expected_calibration_error(softmax(logits), targets, ECE_BINS)
    robustness = _robustness(model, dataset, snrs, noise_seed, bs, num_workers, class_names,
                             scores["accuracy"])
    adapted = (_adapted_scores(model, dataset, snrs, noise_seed, bs, num_workers, class_names,
                               group_values) if adapt_bn else None)

    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion_matrix(scores["confusion_matrix"], class_names,
                                out / "confusion_matrix.png", normalize=True,
                                title=f"Confusion matrix ({split}, row-normalised)")
    metrics: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model_class": metadata.get("model_class"),
        "epoch": metadata.get("epoch"),
        "data": str(target.path),
        "dataset_hash": target.content_hash,
        "training_dataset_hash": training_hash,
        "same_data_as_training": bool(same_data),
        "split": split,
        "class_names": class_names,
        "sampling_rate": target.sampling_rate,
        "input_length": target.input_length,
        "window_length": int(config.data.window_length),
        "transform": {"name": config.data.transform, "params": config.data.transform_params},
        "window_stride": int(config.data.window_stride),
        "normalization": config.data.normalization,
        "num_windows": int(targets.shape[0]),
        "num_recordings": scores["recording"]["num_recordings"],
        **scores,  # accuracy ... recording, by_group: source-only
        "ece": calibration["ece"],
        "calibration": calibration,
        "robustness": robustness,
        "robustness_noise_seed": int(noise_seed),
        "uses_target_data": False,  # every figure above is source-only
        "adapt_bn": adapted,
        "files": {"metrics": str(out / "metrics.json"), "report": str(out / "report.md"),
                  "confusion_matrix": str(png)},
        "pfdtrain_version": __version__,
        "timestamp": datetime.now().isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    write_json(out / "metrics.json", metrics)
    with atomic_open(out / "report.md", "w") as handle:
        handle.write(render_report(metrics))
    _announce(metrics, run_dir, out)
    return metrics


def _announce(metrics: dict[str, Any], run_dir: Path, out: Path) -> None:
    """``evaluation_complete`` in the run's ``events.jsonl``, when the checkpoint lies in a
    run folder that has one (the dashboard then shows the report)."""
    from pfdtrain.training.cnn_callbacks import evaluation_event
    from pfdtrain.utils.events import EVENTS_FILE, append_event

    events = run_dir / EVENTS_FILE
    if not events.is_file():
        return
    try:
        file = str((out / "metrics.json").resolve().relative_to(run_dir.resolve()))
    except ValueError:
        file = str((out / "metrics.json").resolve())
    try:
        append_event(events, evaluation_event({**metrics, "metrics_file": file},
                                              source="evaluate"))
    except OutputError as exc:
        # the evaluation itself is written (e.g. --out elsewhere for a read-only run folder):
        # only the dashboard's notice is missing
        print(f"pfdtrain: warning: the dashboard is not told of this evaluation: {exc}",
              file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f} %"


def _render_groups(m: dict[str, Any]) -> list[str]:
    """The "By operating condition" tables (source-only, and AdaBN beside when run)."""
    if not m.get("by_group"):
        return []
    adapted = (m.get("adapt_bn") or {}).get("by_group") or {}
    lines = ["", "## By operating condition", "",
             "Accuracy per value of each metadata key (`--by`); the totals are above."]
    for key, rows in m["by_group"].items():
        extra = adapted.get(key)
        head = f"| {key} | Windows | Recordings | Accuracy | Recording accuracy |"
        rule = "|---|---:|---:|---:|---:|"
        if extra:
            head += " AdaBN accuracy | AdaBN recording accuracy |"
            rule += "---:|---:|"
        lines += ["", head, rule]
        for i, row in enumerate(rows):
            value = row["value"]
            text = f"{value:g}" if isinstance(value, float) else str(value)
            line = (f"| {text} | {row['num_windows']} | {row['num_recordings']} | "
                    f"{_pct(row['accuracy'])} | {_pct(row['recording_accuracy'])} |")
            if extra:
                line += f" {_pct(extra[i]['accuracy'])} | {_pct(extra[i]['recording_accuracy'])} |"
            lines.append(line)
    return lines


def _render_adaptation(m: dict[str, Any]) -> list[str]:
    """The AdaBN section: adapted figures beside the source-only ones, never mixed in."""
    a = m.get("adapt_bn")
    if not a:
        return []
    lines = ["", "## Test-time adaptation (AdaBN) — uses unlabeled target data", "",
             f"{a['note'][0].upper()}{a['note'][1:]}. {a['layers']} batch-norm layers, "
             f"statistics from {a['windows']} windows (batches of {a['batch_size']}, shuffled "
             f"with seed {a['seed']}).", "",
             "| Metric | Source-only | AdaBN (target data) |", "|---|---:|---:|",
             f"| Window accuracy | {m['accuracy']:.2f} % | {a['accuracy']:.2f} % |",
             f"| Macro F1 | {m['macro_f1']:.4f} | {a['macro_f1']:.4f} |",
             f"| Recording accuracy (soft vote) | {m['recording_accuracy']:.2f} % | "
             f"{a['recording_accuracy']:.2f} % |",
             f"| Cross-entropy loss | {m['loss']:.4f} | {a['loss']:.4f} |"]
    for key, row in a.get("robustness", {}).items():
        source = m["robustness"].get(key, {}).get("accuracy")
        lines.append(f"| Accuracy at {key} dB SNR (AdaBN adapted on the noisy windows) | "
                     f"{_pct(source)} | {row['accuracy']:.2f} % |")
    return lines


def render_report(metrics: dict[str, Any]) -> str:
    """The human ``report.md`` of a metrics dict (as :func:`evaluate_checkpoint` returns).

    Example:
        >>> Path("report.md").write_text(render_report(metrics))  # doctest: +SKIP
    """
    m = metrics
    rate = m["sampling_rate"]
    # Older metrics files have no window_length / transform: their input was the raw window.
    window = m.get("window_length", m["input_length"])
    transform = (m.get("transform") or {}).get("name", "raw")
    lines = [
        f"# Evaluation: {Path(m['checkpoint']).name}",
        "",
        f"- Checkpoint: `{m['checkpoint']}` ({m['model_class']}, epoch {m['epoch']})",
        f"- Data: `{m['data']}`",
        f"- Dataset hash: `{m['dataset_hash']}`"
        + ("" if m["same_data_as_training"] else
           f" (**not** the training data, `{str(m['training_dataset_hash'])[:12]}`)"),
        f"- Split: **{m['split']}** — {m['num_windows']} windows from {m['num_recordings']} "
        f"recordings",
        f"- Windows: {window} samples ({window / rate:g} s at {rate:g} Hz), "
        f"stride {m['window_stride']}, normalisation `{m['normalization']}`, input transform "
        f"`{transform}` ({m['input_length']} model inputs)",
        f"- Evaluated: {m['timestamp']} (pfdtrain {m['pfdtrain_version']})",
        "",
        "## Headline" + (" (source-only: no target data used)" if m.get("adapt_bn") else ""),
        "",
        "| Metric | Value |",
        "|---|---|",
        f"| Window accuracy | {m['accuracy']:.2f} % |",
        f"| Macro F1 | {m['macro_f1']:.4f} |",
        f"| Recording accuracy (soft vote) | {m['recording_accuracy']:.2f} % "
        f"({m['num_recordings']} recordings) |",
        f"| Expected calibration error ({m['calibration']['num_bins']} bins) | {m['ece']:.4f} |",
        f"| Cross-entropy loss | {m['loss']:.4f} |",
        "",
        "## Per class",
        "",
        "| Class | Precision | Recall | F1 | Support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in m["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
                     f"{row['f1']:.3f} | {row['support']} |")
    lines += _render_groups(m) + _render_adaptation(m)
    lines += ["", "## Robustness to white noise", ""]
    if m["robustness"]:
        lines += [f"The same windows with Gaussian white noise added at each signal-to-noise "
                  f"ratio (noise seed {m['robustness_noise_seed']}).", "",
                  "| SNR (dB) | Accuracy | Drop | Macro F1 |", "|---|---:|---:|---:|",
                  f"| clean | {m['accuracy']:.2f} % | – | {m['macro_f1']:.4f} |"]
        for key, row in m["robustness"].items():
            lines.append(f"| {key} | {row['accuracy']:.2f} % | {row['accuracy_drop']:+.2f} | "
                         f"{row['macro_f1']:.4f} |")
    else:
        lines.append("Not run (no SNR given).")
    cal = m["calibration"]
    lines += ["", "## Calibration", "",
              f"ECE {cal['ece']:.4f} over {cal['num_bins']} equal-width confidence bins: mean "
              f"confidence {cal['mean_confidence']:.4f} vs accuracy {cal['accuracy']:.4f} "
              f"({'over' if cal['mean_confidence'] > cal['accuracy'] else 'under'}-confident "
              f"on average).", "",
              "| Confidence bin | Windows | Accuracy | Mean confidence | Gap |",
              "|---|---:|---:|---:|---:|"]
    for b in cal["bins"]:
        if b["count"]:
            lines.append(f"| ({b['lower']:.3f}, {b['upper']:.3f}] | {b['count']} | "
                         f"{_fmt(b['accuracy'], 3)} | {_fmt(b['confidence'], 3)} | "
                         f"{_fmt(b['gap'], 3)} |")
    lines += ["", "## Confusion matrix", "",
              "Rows: true class; columns: predicted class; cells: fraction of the row.", "",
              f"![Confusion matrix]({Path(m['files']['confusion_matrix']).name})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# CLI hook
# --------------------------------------------------------------------------------------------

def _cmd_evaluate(args: argparse.Namespace) -> int:
    metrics = evaluate_checkpoint(Path(args.checkpoint),
                                  data=Path(args.data) if args.data else None, split=args.split,
                                  out_dir=Path(args.out) if args.out else None,
                                  snrs=tuple(args.snr), device=args.device,
                                  batch_size=args.batch_size, by=tuple(args.by or ()),
                                  adapt_bn=args.adapt_bn)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"{metrics['checkpoint']} on {metrics['data']} ({metrics['split']}: "
          f"{metrics['num_windows']} windows, {metrics['num_recordings']} recordings)")
    print(f"  accuracy            {metrics['accuracy']:.2f} %")
    print(f"  macro F1            {metrics['macro_f1']:.4f}")
    print(f"  recording accuracy  {metrics['recording_accuracy']:.2f} % (soft vote)")
    print(f"  ECE ({ECE_BINS} bins)       {metrics['ece']:.4f}")
    for key, row in metrics["robustness"].items():
        print(f"  noise {key + ' dB':<13} {row['accuracy']:.2f} % (macro F1 {row['macro_f1']:.4f})")
    for key, rows in metrics["by_group"].items():
        for row in rows:
            value = row["value"]
            text = f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            print(f"  {text:<19} {_pct(row['accuracy'])} ({row['num_windows']} windows, "
                  f"recordings {_pct(row['recording_accuracy'])})")
    adapted = metrics["adapt_bn"]
    if adapted:
        print(f"AdaBN (batch-norm statistics from the {adapted['windows']} target windows; "
              f"unlabeled target data):")
        print(f"  accuracy            {adapted['accuracy']:.2f} %")
        print(f"  recording accuracy  {adapted['recording_accuracy']:.2f} % (soft vote)")
        for key, row in adapted["robustness"].items():
            print(f"  noise {key + ' dB':<13} {row['accuracy']:.2f} % (adapted on the noisy "
                  f"windows)")
        for key, rows in adapted["by_group"].items():
            for row in rows:
                value = row["value"]
                text = f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                print(f"  {text:<19} {_pct(row['accuracy'])}")
    files = metrics["files"]
    print(f"wrote {files['metrics']}, {files['report']}, {files['confusion_matrix']}")
    return 0


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate <checkpoint> [--data F] [--split S] [--out D] [--snr ...] [--by KEY ...]
    [--adapt-bn] [--json]``.

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``evaluate`` sub-parser (its handler is set with ``set_defaults(func=...)``).

    Example:
        >>> sub = parser.add_subparsers(dest="command", required=True)
        >>> add_evaluate_parser(sub)  # then: args = parser.parse_args(); args.func(args)
    """
    p = subparsers.add_parser(
        "evaluate", help="evaluate a checkpoint: metrics, calibration, noise robustness, report",
        description="Evaluate a checkpoint on a dataset split and write metrics.json, report.md "
                    "and confusion_matrix.png (default: into the checkpoint's run folder).")
    p.add_argument("checkpoint", type=Path, help="e.g. runs/<name>/checkpoints/best_model.pth")
    p.add_argument("--data", type=Path, help="dataset .h5 file (default: the training data)")
    p.add_argument("--split", default="test", choices=SPLIT_NAMES,
                   help="split (default: test); all = every recording of the --data file (the "
                        "transfer test: a file the model was not trained on)")
    p.add_argument("--out", type=Path, help="output folder (default: the run folder)")
    p.add_argument("--snr", type=float, nargs="*", default=list(DEFAULT_SNRS), metavar="DB",
                   help="noise levels (dB SNR) of the robustness test (default: 20 10 5; "
                        "--snr alone skips it)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, help="windows per batch (default: training's)")
    p.add_argument("--by", action="extend", nargs="+", metavar="KEY",
                   help="also report accuracy per value of these metadata keys, e.g. --by load "
                        "(several allowed: --by load rpm)")
    p.add_argument("--adapt-bn", action="store_true",
                   help="also report figures after re-estimating the batch-norm statistics on "
                        "the evaluated windows (AdaBN; uses unlabeled target data, reported "
                        "apart from the source-only figures)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=_cmd_evaluate)
    return p
