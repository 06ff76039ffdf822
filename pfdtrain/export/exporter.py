"""``pfdtrain export``: a checkpoint to a deployable file, checked against PyTorch on real windows.

    pfdtrain export runs/<name>/checkpoints/best_model.pth                 # ONNX, fp32
    pfdtrain export runs/<name>/checkpoints/best_model.pth --quantize int8  # ONNX, int8
    pfdtrain export runs/<name>/checkpoints/best_model.pth --format torchscript

The export is written only when it gives PyTorch's answers on real windows of the run's
data (its test split; ``--data`` another dataset file, ``--windows`` an array of model
inputs): fp32 logits within :data:`PARITY_ATOL` at batch sizes 64 and 1 (the batch axis is
dynamic), and with ``--quantize int8`` the predicted class on at least
:data:`INT8_MIN_AGREEMENT` of the windows. A failed check leaves no file behind (and an
earlier export at that path as it was).

Example:
    >>> report = export_checkpoint("runs/x/checkpoints/best_model.pth", quantize="int8")
    >>> report["file"], report["parity"]["class_agreement"]
    ('runs/x/export/best_model.int8.onnx', 0.998)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from pfdtrain.errors import EvaluationError
from pfdtrain.export.formats import EXPORT_FORMATS
from pfdtrain.export.runtime import deployment_metadata
from pfdtrain.utils.io import atomic_path

PathLike = Union[str, Path]

#: fp32 export: the largest |logit difference| from PyTorch allowed on any parity window.
PARITY_ATOL = 1e-4
#: Quantized export: the fraction of parity windows whose predicted class must match PyTorch's.
INT8_MIN_AGREEMENT = 0.99
#: Parity windows taken from the data at most (evenly spaced over the split).
DEFAULT_MAX_WINDOWS = 2048
_BATCH = 64
_SPLITS = ("test", "val", "train")  # the first that has windows is used


def _default_out(checkpoint: Path, suffix: str, quantize: Optional[str]) -> Path:
    from pfdtrain.evaluation.evaluate import checkpoint_run_folder

    name = checkpoint.stem + (f".{quantize}" if quantize else "") + suffix
    return checkpoint_run_folder(checkpoint) / "export" / name


def _spaced(n: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices spread evenly over ``range(n)`` (all of them when fewer)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, limit)).round().astype(np.int64))


def parity_windows(checkpoint: PathLike, metadata: dict[str, Any], data: Optional[PathLike],
                   windows: Optional[PathLike], max_windows: int
                   ) -> tuple[np.ndarray, Optional[np.ndarray], str]:
    """``(model inputs float32 [N, C, L], labels [N] or None, where they came from)``.

    Args:
        checkpoint: the checkpoint being exported.
        metadata: its evaluation metadata.
        data: another ``.h5`` dataset file: all its recordings' windows.
        windows: a ``.npy`` array of model inputs ``[N, L]`` or ``[N, C, L]``, already
            normalised and transformed as in training.
        max_windows: windows kept at most, evenly spaced.

    Raises:
        EvaluationError: no windows, a ``--windows`` array of the wrong shape, or the run's
            data no longer found (the fix: ``--data`` or ``--windows``).
    """
    from pfdtrain.evaluation.evaluate import checkpoint_windows

    if windows is not None:
        path = Path(windows)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise EvaluationError(f"--windows {path}: not a readable .npy array ({exc}); save "
                                  f"the model inputs with numpy.save") from None
        if array.ndim == 2:
            array = array[:, None, :]
        length = int(metadata.get("input_length") or 0)
        if array.ndim != 3 or array.shape[0] == 0 or array.shape[-1] != length \
                or not np.issubdtype(array.dtype, np.floating):
            raise EvaluationError(f"--windows {path} holds a {array.dtype} array of shape "
                                  f"{list(array.shape)}; give float model inputs of shape "
                                  f"[N, {length}] or [N, channels, {length}], normalised and "
                                  f"transformed as in training")
        if not np.isfinite(array).all():
            raise EvaluationError(f"--windows {path} holds NaN or inf values; give finite "
                                  f"model inputs")
        keep = _spaced(array.shape[0], max_windows)
        return array[keep].astype(np.float32), None, f"{len(keep)} windows of {path}"

    # another file: all its windows; the training file itself (whose "all" evaluate
    # refuses, to keep training windows out of scores) or none: the run's splits
    splits = (("all",) if data is not None else ()) + _SPLITS
    failures = []
    for split in splits:
        try:
            rebuilt = checkpoint_windows(checkpoint, metadata, data, split)
        except EvaluationError as exc:
            failures.append(str(exc))
            continue
        dataset = rebuilt.target.dataset
        keep = _spaced(len(dataset), max_windows)
        inputs, labels = [], []
        for batch in DataLoader(Subset(dataset, keep.tolist()), batch_size=256):
            inputs.append(batch[0].numpy())
            labels.append(batch[1].numpy())
        where = (f"{len(keep)} windows of the {split} split of {rebuilt.target.path}"
                 if split != "all" else f"{len(keep)} windows of {rebuilt.target.path}")
        return (np.concatenate(inputs).astype(np.float32), np.concatenate(labels), where)
    raise EvaluationError(f"no windows to check the export on: {failures[-1]} Pass windows "
                          f"to check it on with --data FILE.h5 (a dataset file) or --windows "
                          f"FILE.npy (model inputs)")


def _batched_logits(run: Any, inputs: np.ndarray) -> np.ndarray:
    """``run`` (float32 ``[B, C, L]`` -> logits) over ``inputs`` in batches of 64."""
    return np.concatenate([run(np.ascontiguousarray(inputs[i:i + _BATCH]))
                           for i in range(0, len(inputs), _BATCH)])


def _torch_logits(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return _batched_logits(lambda x: model(torch.from_numpy(x)).float().numpy(), inputs)


def _accuracy(logits: np.ndarray, labels: Optional[np.ndarray]) -> Optional[float]:
    if labels is None:
        return None
    known = labels >= 0
    return float(100.0 * (logits[known].argmax(1) == labels[known]).mean()) if known.any() else None


def check_parity(reference: np.ndarray, run: Any, inputs: np.ndarray,
                 labels: Optional[np.ndarray], quantized: bool) -> dict[str, Any]:
    """Compare an exported model with PyTorch's logits on the same inputs.

    Args:
        reference: PyTorch's logits ``[N, K]``.
        run: the exported model's ``float32 [B, C, L] -> logits`` function.
        inputs: the model inputs ``[N, C, L]``.
        labels: their labels (for the accuracies) or None.
        quantized: judge by class agreement (>= :data:`INT8_MIN_AGREEMENT`) instead of the
            logit tolerance :data:`PARITY_ATOL`.

    Returns:
        ``{"windows", "batch_sizes", "max_abs_logit_diff", "class_agreement", "passed",
        "tolerance" or "required_agreement", "accuracy_pytorch", "accuracy_export"}``.

    Example:
        >>> check_parity(ref, exported.logits, x, y, quantized=False)["passed"]
        True
    """
    batched = _batched_logits(run, inputs)
    single = run(np.ascontiguousarray(inputs[:1]))  # the dynamic batch axis at batch 1
    diff = float(max(np.abs(batched - reference).max(), np.abs(single - reference[:1]).max()))
    agreement = float((batched.argmax(1) == reference.argmax(1)).mean())
    result: dict[str, Any] = {"windows": int(len(inputs)), "batch_sizes": [_BATCH, 1],
                              "max_abs_logit_diff": diff, "class_agreement": agreement}
    if quantized:
        result.update(required_agreement=INT8_MIN_AGREEMENT,
                      passed=bool(agreement >= INT8_MIN_AGREEMENT))
    else:
        result.update(tolerance=PARITY_ATOL, passed=bool(diff <= PARITY_ATOL))
    result.update(accuracy_pytorch=_accuracy(reference, labels),
                  accuracy_export=_accuracy(batched, labels))
    return result


def export_checkpoint(checkpoint: PathLike, format: str = "onnx", quantize: Optional[str] = None,
                      out: Optional[PathLike] = None, data: Optional[PathLike] = None,
                      windows: Optional[PathLike] = None,
                      max_windows: int = DEFAULT_MAX_WINDOWS) -> dict[str, Any]:
    """Export a checkpoint and check it against PyTorch on real windows.

    Args:
        checkpoint: a pfdtrain checkpoint (``runs/<name>/checkpoints/best_model.pth``).
        format: a name of :data:`~pfdtrain.export.formats.EXPORT_FORMATS` (``onnx``,
            ``torchscript``).
        quantize: ``None`` or a kind the format offers (``int8`` for ONNX).
        out: the file to write (default ``<run>/export/<checkpoint>[.int8].<suffix>``).
        data: check on every window of this ``.h5`` dataset instead of the run's test split.
        windows: check on these model inputs (``.npy``) instead.
        max_windows: parity windows at most (evenly spaced over the split).

    Returns:
        ``{"file", "files", "format", "quantization", "parity" (see :func:`check_parity`;
        a quantized export also has ``"fp32"``, the check of the graph it was quantized
        from), "windows_from", "size_bytes", "metadata" (the stored strings)}``.

    Raises:
        EvaluationError: an unknown format or quantization, a model or operator that cannot
            be exported (the reason), a parity check that fails (the figures), or no windows.
        CheckpointError: the checkpoint cannot be loaded.
        OutputError: the file cannot be written (nothing half-written is left).

    Example:
        >>> export_checkpoint("runs/x/checkpoints/best_model.pth")["parity"]["max_abs_logit_diff"]
        2.4e-07
    """
    from pfdtrain.evaluation.loading import load_model_for_evaluation

    if format not in EXPORT_FORMATS:
        raise EvaluationError(f"unknown export format {format!r}; choose one of "
                              f"{', '.join(EXPORT_FORMATS)}")
    fmt = EXPORT_FORMATS[format]
    if quantize is not None and quantize not in fmt.quantizations:
        offered = [f"--format {n} --quantize {q}" for n, f in EXPORT_FORMATS.items()
                   for q in f.quantizations]
        raise EvaluationError(f"--quantize {quantize} is not offered for --format {format}; "
                              f"available: {', '.join(offered) or 'none'}")
    if max_windows < 1:
        raise EvaluationError(f"--max-windows {max_windows}: give at least 1 window")
    checkpoint = Path(checkpoint)
    model, metadata = load_model_for_evaluation(checkpoint, device="cpu")
    if not metadata.get("class_names") or metadata.get("sampling_rate") is None \
            or metadata.get("input_length") is None:
        raise EvaluationError(f"{checkpoint} does not record its class names, sampling rate and "
                              f"input length, which an exported model must carry; export a "
                              f"checkpoint saved by pfdtrain's trainer")
    out = Path(out) if out is not None else _default_out(checkpoint, fmt.suffix, quantize)
    if out.suffix.lower() != fmt.suffix:
        raise EvaluationError(f"--out {out}: a {format} export is a {fmt.suffix} file; give a "
                              f"name ending in {fmt.suffix}")
    inputs, labels, where = parity_windows(checkpoint, metadata, data, windows, max_windows)
    reference = _torch_logits(model, inputs)
    example = torch.from_numpy(inputs[:2].copy())

    with tempfile.TemporaryDirectory(prefix="pfdtrain-export-") as tmp:
        staged = Path(tmp) / f"model{fmt.suffix}"
        fmt.write(model, example, staged)
        parity = check_parity(reference, fmt.runner(staged), inputs, labels, quantized=False)
        if not parity["passed"]:
            raise EvaluationError(
                f"the {format} export of {checkpoint} gives logits up to "
                f"{parity['max_abs_logit_diff']:.3g} away from PyTorch's on {where} (allowed: "
                f"{PARITY_ATOL:g}); nothing was written. An operator is exported with "
                f"different numerics: try --format "
                f"{'torchscript' if format == 'onnx' else 'onnx'}")
        quantization, report_parity = "none", parity
        if quantize is not None:
            # Plans from the most compressed on; the first that keeps the agreement is kept.
            attempts = []
            for number, plan in enumerate(fmt.quantize_plans(quantize)):
                quantized = Path(tmp) / f"model.{quantize}.{number}{fmt.suffix}"
                quantization = fmt.quantize(staged, quantized, quantize, plan)
                report_parity = check_parity(reference, fmt.runner(quantized), inputs, labels,
                                             quantized=True)
                attempts.append({"plan": plan, "class_agreement": report_parity["class_agreement"],
                                 "size_bytes": quantized.stat().st_size})
                if report_parity["passed"]:
                    break
            report_parity["attempts"] = attempts
            report_parity["fp32"] = {k: parity[k] for k in ("max_abs_logit_diff", "passed")}
            if not report_parity["passed"]:
                tried = "; ".join(f"{a['plan']}: {100 * a['class_agreement']:.2f} %"
                                  for a in attempts)
                raise EvaluationError(
                    f"the {quantize} model agrees with PyTorch's predicted class on too few of "
                    f"{where} ({tried}; required {100 * INT8_MIN_AGREEMENT:g} %); nothing was "
                    f"written. Export without --quantize (fp32 passes), or train the model "
                    f"longer: confident logits survive quantization better")
            staged = quantized
        props = deployment_metadata(metadata, checkpoint, tuple(inputs.shape[1:]), quantization,
                                    {**report_parity, "windows_from": where})
        fmt.set_metadata(staged, props)
        # Only a checked export reaches its final name, each file atomically (the model
        # before its sidecar, so a reader never finds new metadata beside an old model).
        for source, target in zip(fmt.files(staged), fmt.files(out)):
            with atomic_path(target) as final:
                final.write_bytes(source.read_bytes())
    return {"file": str(out), "files": [str(p) for p in fmt.files(out)], "format": format,
            "quantization": quantization, "parity": report_parity, "windows_from": where,
            "size_bytes": out.stat().st_size, "metadata": props}


# --------------------------------------------------------------------------------------------
# CLI hook
# --------------------------------------------------------------------------------------------

def _cmd_export(args: argparse.Namespace) -> int:
    report = export_checkpoint(args.checkpoint, format=args.format, quantize=args.quantize,
                               out=args.out, data=args.data, windows=args.windows,
                               max_windows=args.max_windows)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    parity = report["parity"]
    print(f"wrote {', '.join(report['files'])} ({report['size_bytes'] / 1024:.1f} KiB, "
          f"{report['format']}, quantization: {report['quantization']})")
    if "fp32" in parity:
        print(f"fp32 graph: max |logit diff| {parity['fp32']['max_abs_logit_diff']:.2g} "
              f"(allowed {PARITY_ATOL:g})")
        attempts = parity["attempts"]
        for attempt, following in zip(attempts[:-1], attempts[1:]):
            print(f"{args.quantize} of {attempt['plan']}: predicted class agrees on "
                  f"{100 * attempt['class_agreement']:.2f} %, below the required "
                  f"{100 * INT8_MIN_AGREEMENT:g} %; quantized {following['plan']} instead")
        print(f"{args.quantize} ({parity['attempts'][-1]['plan']}): predicted class agrees with "
              f"PyTorch on "
              f"{100 * parity['class_agreement']:.2f} % of {report['windows_from']} (required "
              f"{100 * INT8_MIN_AGREEMENT:g} %); max |logit diff| "
              f"{parity['max_abs_logit_diff']:.3g}")
    else:
        print(f"parity: max |logit diff| {parity['max_abs_logit_diff']:.2g} on "
              f"{report['windows_from']} at batch sizes 64 and 1 (allowed {PARITY_ATOL:g})")
    if parity.get("accuracy_pytorch") is not None:
        print(f"accuracy on those windows: PyTorch {parity['accuracy_pytorch']:.2f} %, export "
              f"{parity['accuracy_export']:.2f} %")
    return 0


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export <checkpoint> [--format onnx|torchscript] [--quantize int8] [--out FILE]
    [--data FILE.h5 | --windows FILE.npy] [--max-windows N] [--json]``.

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``export`` sub-parser (its handler is set with ``set_defaults(func=...)``).

    Example:
        >>> sub = parser.add_subparsers(dest="command", required=True)
        >>> add_export_parser(sub)  # then: args = parser.parse_args(); args.func(args)
    """
    quantizations = sorted({q for f in EXPORT_FORMATS.values() for q in f.quantizations})
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX or TorchScript, checked against PyTorch",
        description="Write a deployable model file carrying what is needed to feed it (class "
                    "names, sampling rate, window, normalisation, input transform), after "
                    "checking it against PyTorch on real windows of the run's data.")
    p.add_argument("checkpoint", type=Path, help="e.g. runs/<name>/checkpoints/best_model.pth")
    p.add_argument("--format", default="onnx", choices=list(EXPORT_FORMATS),
                   help="file format (default: onnx)")
    p.add_argument("--quantize", choices=quantizations,
                   help="int8: dynamic quantization for ONNX Runtime (the predicted class must "
                        f"agree with PyTorch on >= {100 * INT8_MIN_AGREEMENT:g} %% of windows)")
    p.add_argument("--out", type=Path,
                   help="the file to write (default: <run>/export/<checkpoint>[.int8].onnx)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path,
                     help="check parity on every window of this dataset file (default: the "
                          "run's test split)")
    src.add_argument("--windows", type=Path,
                     help="check parity on these model inputs (.npy, [N, L] or [N, C, L])")
    p.add_argument("--max-windows", type=int, default=DEFAULT_MAX_WINDOWS,
                   help=f"parity windows at most, evenly spaced (default {DEFAULT_MAX_WINDOWS})")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=_cmd_export)
    return p
