"""Diagnose one recording with a trained checkpoint (``pfdtrain predict``).

The recording is cut into the model's windows with its training stride and normalised exactly
as in training (the same :class:`~pfdtrain.data.windows.WindowDataset` code path); the
diagnosis is the class of highest mean probability over the windows (soft vote), with the
per-window hard votes alongside so a mixed recording is visible.

Example:
    >>> result = predict_recording(Path("runs/x/checkpoints/best_model.pth"), Path("pump7.mat"),
    ...                            variable="DE_time", sampling_rate=12000)
    >>> result["class"], result["probability"], result["votes"]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from pfdtrain.errors import PfdtrainError
from pfdtrain.evaluation.evaluate import (EvaluationError, model_takes_metadata, predict_logits,
                                          softmax)

PathLike = Union[str, Path]


def _read_recording(path: Path, variable: Optional[str], column: Optional[Union[str, int]]
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """``(signal float64 1-D, info)`` via :func:`pfdtrain.data.importers.readers.read_signal`.

    Imported lazily: the .mat/.csv readers (scipy) are only needed when predicting.
    """
    from pfdtrain.data.importers.readers import read_signal

    if not path.is_file():
        raise EvaluationError(f"recording {path} does not exist; pass the path of a .mat, .npy "
                              f"or .csv file")
    signal, info = read_signal(path, variable=variable, column=column)
    return np.asarray(signal, dtype=np.float64), dict(info or {})


def _json_safe(value: Any) -> Any:
    """Reader info made printable as JSON (numpy scalars, paths, arrays)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def predict_recording(checkpoint: Optional[PathLike], recording: PathLike,
                      variable: Optional[str] = None,
                      column: Optional[Union[str, int]] = None,
                      sampling_rate: Optional[float] = None,
                      device: Union[str, torch.device] = "auto",
                      resample: bool = False, adapt_bn: bool = False,
                      rpm: Optional[float] = None,
                      model: Optional[PathLike] = None) -> dict[str, Any]:
    """Classify one vibration recording with a trained checkpoint or an exported model.

    Args:
        checkpoint: a pfdtrain checkpoint (``runs/<name>/checkpoints/best_model.pth``), or
            None with ``model``.
        recording: a ``.mat``, ``.npy`` or ``.csv`` file holding one channel.
        variable: the ``.mat`` variable to read (default: the reader's choice).
        column: the ``.csv`` column (name or index) to read.
        sampling_rate: the recording's sampling rate in Hz. Without it the rate the file
            states is used (a ``.mat`` variable ``fs``/``sr``/..., or the signal's struct
            field such as MFPT's ``bearing.sr``); given, it overrides the file's statement
            (the result notes the disagreement). When neither is known, the model's rate is
            assumed and the result says so (``sampling_rate_source == "assumed"``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        resample: a recording at another rate than the model's is resampled to the model's
            rate (``scipy.signal.resample_poly``, as the importer does) instead of refused.
        adapt_bn: re-estimate the model's batch-norm statistics on this recording's windows
            before predicting (AdaBN, test-time adaptation on unlabeled target data). With a
            single recording the statistics also absorb its own fault signature; adapting on
            many recordings of the new machine (``pfdtrain evaluate --adapt-bn``) is safer.
        rpm: the recording's shaft speed in rpm, for a model trained with ``data.transform:
            order`` (it resamples the windows per revolution); ignored (with a note) by
            other transforms.
        model: instead of ``checkpoint``, a file written by ``pfdtrain export`` (``.onnx``
            run by ONNX Runtime, ``.pt`` TorchScript); its metadata gives the windowing, so
            the result is the checkpoint's (same windows, voting and fields) up to the
            export's numerics.

    Returns:
        ``{"class", "class_index", "probability" (mean softmax of that class over the
        windows), "probabilities" ({class: mean softmax}), "votes" ({class: windows whose
        top class it is}, every class listed), "window_predictions" ([{"window",
        "start_sample", "start_s", "class", "probability"}]), "num_windows",
        "window_length", "window_stride", "normalization", "transform" ({"name",
        "params", "output_length"}), "rpm", "sampling_rate",
        "sampling_rate_source" ("argument", "file" or "assumed"), "resampled_from" (the
        recording's rate when it was resampled, else None), "duration_s", "notes",
        "recording", "checkpoint", "model" (the exported file or None), "runtime"
        ("pytorch", "onnx", "torchscript"), "model_class", "source_info", "adapt_bn" (None,
        or ``{"method", "windows", "layers", "batch_size", "seed",
        "uses_unlabeled_target_data"}``)}``.

    Raises:
        EvaluationError: missing file, a sampling rate other than the model's (without
            ``resample``), a recording shorter than one window, ``adapt_bn`` on a model
            without batch norm or on an exported model, an ``order`` model without ``rpm``
            (the fix: ``--rpm``), both or neither of ``checkpoint`` and ``model``, or an
            exported file without pfdtrain's metadata.
        RecordingError: (a ``DataError``, from
            :func:`pfdtrain.data.importers.readers.read_signal`) unreadable file, unknown format,
            missing/ambiguous variable or column, NaN/inf samples.
        CheckpointError: the checkpoint cannot be loaded.

    Example:
        >>> r = predict_recording("runs/x/checkpoints/best_model.pth", "bearing.npy",
        ...                       sampling_rate=6400)
        >>> print(r["class"], f"{r['probability']:.2f}", r["votes"])
        outer_race 0.91 {'healthy': 0, ..., 'outer_race': 5, ...}
    """
    from pfdtrain.data.importers.core import resample_signal
    from pfdtrain.data.transforms import TransformError, transform_from_metadata
    from pfdtrain.data.windows import NORMALIZATIONS, WindowDataset, attach_transform
    from pfdtrain.evaluation.loading import load_model_for_evaluation

    if (checkpoint is None) == (model is None):
        raise EvaluationError("give either a checkpoint or an exported model (--model FILE), "
                              "not both" if checkpoint is not None else
                              "give a checkpoint (runs/<name>/checkpoints/best_model.pth) or an "
                              "exported model (--model FILE.onnx)")
    recording = Path(recording)
    exported, net = None, None
    if model is not None:
        from pfdtrain.export.formats import load_exported
        exported = load_exported(model)
        source, metadata = Path(model), exported.metadata
        if adapt_bn:
            raise EvaluationError(f"--adapt-bn re-estimates batch-norm statistics, which needs "
                                  f"the PyTorch model; an exported file ({source}) is frozen. "
                                  f"Predict with the checkpoint instead")
    else:
        source = Path(checkpoint)
        net, metadata = load_model_for_evaluation(source, device=device)
        if adapt_bn:
            from pfdtrain.evaluation.adaptation import require_batchnorm
            require_batchnorm(net)  # before reading the recording: the fix comes first
    class_names = list(metadata.get("class_names") or [])
    model_rate = metadata.get("sampling_rate")
    window = metadata.get("input_length")
    data_cfg = (metadata.get("config") or {}).get("data") or {}
    if not class_names or model_rate is None or window is None:
        raise EvaluationError(f"{source} does not record its class names, sampling rate and "
                              f"input length, so a recording cannot be prepared for it; use a "
                              f"checkpoint saved by pfdtrain's trainer")
    # input_length is the model input, the transform's output; the window is cut at
    # window_length (checkpoints from before transforms: the two are the same).
    window = int(metadata.get("window_length") or data_cfg.get("window_length") or window)
    model_rate = float(model_rate)
    try:
        transform = transform_from_metadata(metadata, model_rate, window)
    except TransformError as exc:
        raise EvaluationError(f"{source}: {exc}") from None
    if transform.needs_speed and rpm is None:
        raise EvaluationError(f"{source} was trained with data.transform: "
                              f"{transform.name}, which resamples each window by the shaft "
                              f"speed; pass the recording's speed with --rpm RPM (rpm=... in "
                              f"Python)")
    if rpm is not None and not (math.isfinite(float(rpm)) and float(rpm) > 0):
        raise EvaluationError(f"--rpm {rpm!r}: the shaft speed must be a positive number of "
                              f"revolutions per minute, e.g. --rpm 1797")
    stride = int(data_cfg.get("window_stride") or window)
    normalization = data_cfg.get("normalization", "zscore")
    if normalization not in NORMALIZATIONS:
        raise EvaluationError(f"{source} was trained with an unknown normalisation "
                              f"{normalization!r}")

    signal, info = _read_recording(recording, variable, column)
    notes: list[str] = []
    file_rate = info.get("sampling_rate")
    stated_in = info.get("sampling_rate_variable") or "the file"
    if sampling_rate is not None:
        rate, rate_source = float(sampling_rate), "argument"
        if file_rate is not None and not math.isclose(rate, float(file_rate), rel_tol=1e-6):
            notes.append(f"the file states {float(file_rate):g} Hz ('{stated_in}'); used the "
                         f"given {rate:g} Hz")
    elif file_rate is not None:
        rate, rate_source = float(file_rate), "file"
    else:
        rate, rate_source = model_rate, "assumed"
        notes.append(f"the recording's sampling rate is unknown; assumed the model's "
                     f"{model_rate:g} Hz (pass the sampling rate to have it checked)")
    resampled_from = None
    if not math.isclose(rate, model_rate, rel_tol=1e-6):
        said = (f"the file states it in '{stated_in}'" if rate_source == "file"
                else "as given")
        if not resample:
            raise EvaluationError(
                f"{recording} is sampled at {rate:g} Hz ({said}), but {source} was trained "
                f"at {model_rate:g} Hz; fault frequencies would be misread. Pass --resample to "
                f"resample it to {model_rate:g} Hz, or --sampling-rate HZ if that rate is "
                f"wrong.")
        # read_signal returns 1-D, finite signals only, so the filter sees clean input.
        signal, reached = resample_signal(signal, rate, model_rate)
        notes.append(f"resampled from {rate:g} Hz to the model's {model_rate:g} Hz"
                     + ("" if math.isclose(reached, model_rate, rel_tol=1e-9) else
                        f" (approximated as {reached:.8g} Hz: the ratio is limited to "
                        f"denominators <= 1000, as on import)"))
        resampled_from, rate = rate, model_rate

    if signal.ndim != 1:
        raise EvaluationError(f"{recording} gave an array of shape {signal.shape}; pick one "
                              f"channel (variable/column)")
    bad = int(np.count_nonzero(~np.isfinite(signal)))
    if bad:
        raise EvaluationError(f"{recording} has {bad} non-finite samples (NaN/inf); clean or "
                              f"cut them out before predicting")
    if signal.shape[0] < window:
        raise EvaluationError(
            f"{recording} has {signal.shape[0]} samples ({signal.shape[0] / rate:g} s), fewer "
            f"than one model window of {window} samples ({window / rate:g} s at "
            f"{model_rate:g} Hz); record at least {window / rate:g} s")

    # Training stores signals as float32 and normalises each float32 window; doing the same
    # here (through the same class) gives bit-identical model inputs.
    samples = signal.astype(np.float32)
    dataset = WindowDataset(samples, np.array([0, samples.shape[0]], dtype=np.int64),
                            np.zeros(1, dtype=np.int64), window, stride, normalization,
                            record_ids=[recording.name])
    if rpm is not None and not transform.needs_speed:
        notes.append(f"--rpm is not used: this model's input transform "
                     f"({transform.name}) does not depend on the speed")
    try:
        attach_transform(dataset, transform,
                         {"rpm": np.array([float(rpm)])} if rpm is not None else {},
                         str(recording), fix="pass --rpm")
    except PfdtrainError as exc:  # the windows cannot hold the revolutions at this speed
        raise EvaluationError(f"{recording}: {exc}") from None
    batch_size = int(data_cfg.get("batch_size") or 32)
    if net is not None and model_takes_metadata(net) \
            and (metadata.get("config") or {}).get("trainer") == "pinn":
        notes.append("this model was trained with the operating conditions (speed, load, "
                     "temperature); a bare recording gives it none, so it uses its learned "
                     "'missing' inputs and may be less accurate than in evaluation")
    adaptation = None
    if adapt_bn:
        from pfdtrain.evaluation.adaptation import adapt_batchnorm
        adaptation = {**adapt_batchnorm(net, dataset, batch_size),
                      "uses_unlabeled_target_data": True}
        notes.append(f"AdaBN: batch-norm statistics re-estimated on this recording's "
                     f"{adaptation['windows']} windows (unlabeled target data); one "
                     f"recording's statistics also absorb its own fault signature, so adapt on "
                     f"many recordings of the machine (pfdtrain evaluate --adapt-bn) when you "
                     f"can")
    logits, _ = (exported.predict_logits(dataset, batch_size) if exported is not None
                 else predict_logits(net, dataset, batch_size))
    probs = softmax(logits)
    top = probs.argmax(axis=1)
    mean = probs.mean(axis=0)
    best = int(mean.argmax())
    votes = np.bincount(top, minlength=len(class_names))
    if int(votes.argmax()) != best:
        notes.append(f"the window majority ({class_names[int(votes.argmax())]}) differs from "
                     f"the mean-probability diagnosis; the recording may be mixed or "
                     f"borderline")
    starts = dataset.window_starts
    return {
        "class": class_names[best],
        "class_index": best,
        "probability": float(mean[best]),
        "probabilities": {name: float(mean[i]) for i, name in enumerate(class_names)},
        "votes": {name: int(votes[i]) for i, name in enumerate(class_names)},
        "window_predictions": [
            {"window": i, "start_sample": int(starts[i]), "start_s": float(starts[i] / rate),
             "class": class_names[int(top[i])], "probability": float(probs[i, top[i]])}
            for i in range(dataset.num_windows)],
        "num_windows": int(dataset.num_windows),
        "window_length": window,
        "window_stride": stride,
        "normalization": normalization,
        "transform": transform.describe(),
        "rpm": float(rpm) if rpm is not None else None,
        "sampling_rate": rate,
        "sampling_rate_source": rate_source,
        "resampled_from": resampled_from,
        "duration_s": float(signal.shape[0] / rate),
        "notes": notes,
        "recording": str(recording),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "model": str(model) if model is not None else None,
        "runtime": exported.format if exported is not None else "pytorch",
        "model_class": metadata.get("model_class"),
        "source_info": _json_safe(info),
        "adapt_bn": adaptation,
    }


# --------------------------------------------------------------------------------------------
# CLI hook
# --------------------------------------------------------------------------------------------

def _column(value: str) -> Union[str, int]:
    """A CSV column given on the command line: an index when it is a number, else a name."""
    return int(value) if value.lstrip("-").isdigit() else value


def _cmd_predict(args: argparse.Namespace) -> int:
    # argparse cannot place an optional positional before a required one when an option
    # sits between them (CHECKPOINT --model X RECORDING), so the two are read as a list.
    if len(args.paths) > 2:
        raise EvaluationError(f"predict takes a checkpoint and one recording (or --model FILE "
                              f"and one recording), got {len(args.paths)} paths: "
                              f"{' '.join(map(str, args.paths))}")
    checkpoint, recording = args.paths if len(args.paths) == 2 else (None, args.paths[0])
    result = predict_recording(checkpoint, recording,
                               variable=args.variable, column=args.column,
                               sampling_rate=args.sampling_rate, device=args.device,
                               resample=args.resample, adapt_bn=args.adapt_bn, rpm=args.rpm,
                               model=args.model)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['class']}  (probability {result['probability']:.3f})")
    votes = sorted(((n, c) for c, n in result["votes"].items() if n), reverse=True)
    print("votes: " + ", ".join(f"{c} {n}" for n, c in votes)
          + f"  ({result['num_windows']} windows of {result['window_length']} samples at "
          f"{result['sampling_rate']:g} Hz)")
    for note in result["notes"]:
        print(f"note: {note}")
    return 0


def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``predict [<checkpoint>] <recording> [--model EXPORTED] [--variable X]
    [--column C] [--sampling-rate HZ] [--resample] [--rpm RPM] [--adapt-bn] [--json]``.

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``predict`` sub-parser (its handler is set with ``set_defaults(func=...)``).

    Example:
        >>> sub = parser.add_subparsers(dest="command", required=True)
        >>> add_predict_parser(sub)  # then: args = parser.parse_args(); args.func(args)
    """
    p = subparsers.add_parser(
        "predict", help="diagnose one recording (.mat, .npy, .csv) with a checkpoint or an "
                        "exported model",
        description="Cut a recording into the model's windows, classify each and print the "
                    "diagnosis (highest mean probability) with the per-window votes. The "
                    "model is a checkpoint (first argument) or a file of `pfdtrain export` "
                    "(--model, run by ONNX Runtime or TorchScript).",
        usage="pfdtrain predict [-h] (CHECKPOINT | --model EXPORTED) RECORDING [options]")
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                   help="CHECKPOINT RECORDING, e.g. runs/<name>/checkpoints/best_model.pth "
                        "pump7.mat; or RECORDING alone with --model. The recording: .mat, "
                        ".npy or .csv")
    p.add_argument("--model", type=Path, metavar="EXPORTED",
                   help="an exported model instead of a checkpoint: .onnx (ONNX Runtime) or "
                        ".pt with its .json (TorchScript), as `pfdtrain export` wrote it")
    p.add_argument("--variable", help=".mat: the variable holding the signal")
    p.add_argument("--column", type=_column, help=".csv: the column (name or 0-based index)")
    p.add_argument("--sampling-rate", type=float, metavar="HZ",
                   help="the recording's sampling rate (default: the rate the file states, "
                        "e.g. a .mat variable fs; overrides it when given); checked against "
                        "the model's")
    p.add_argument("--resample", action="store_true",
                   help="resample a recording at another rate to the model's (else refused)")
    p.add_argument("--rpm", type=float, metavar="RPM",
                   help="the recording's shaft speed; needed by models trained with "
                        "data.transform: order (windows resampled per revolution)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--adapt-bn", action="store_true",
                   help="re-estimate the batch-norm statistics on this recording's windows "
                        "before predicting (AdaBN test-time adaptation; no labels needed)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=_cmd_predict)
    return p
