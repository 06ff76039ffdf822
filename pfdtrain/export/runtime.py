"""An exported model as pfdtrain runs it: its deployment metadata and a logits function.

Every export format writes the same metadata (the ``DEPLOYMENT_KEYS``: what a user needs
to feed the model correctly, as strings: ONNX metadata properties, a TorchScript sidecar
JSON) and loads back as an :class:`ExportedModel`, which ``pfdtrain predict --model`` and
the export's parity check use like a checkpoint's model.

Example:
    >>> from pfdtrain.export.formats import load_exported
    >>> model = load_exported("runs/x/export/best_model.onnx")
    >>> model.metadata["class_names"], model.metadata["sampling_rate"]
    (['healthy', 'misalignment', ...], 6400.0)
    >>> logits = model.logits(windows)   # float32 [N, channels, input_length] -> [N, classes]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import numpy as np

from pfdtrain.errors import EvaluationError

PathLike = Union[str, Path]

#: Written into every export. Values are strings; lists and mappings are JSON.
DEPLOYMENT_KEYS: dict[str, str] = {
    "pfdtrain_export": "version of this metadata layout (1)",
    "class_names": "JSON list: output index -> class name",
    "sampling_rate": "Hz the model was trained at; resample recordings to it",
    "window_length": "samples per window cut from a recording",
    "window_stride": "samples between window starts in training (predict uses it too)",
    "normalization": "per-window normalisation before the transform (zscore, minmax, none)",
    "input_transform": "JSON {name, params, output_length}: applied to each normalised window",
    "input_shape": "JSON [channels, input_length]: one model input (batch axis dynamic)",
    "input_name": "the graph input: float32 [batch, channels, input_length]",
    "output_name": "the graph output: float32 logits [batch, classes] (softmax for "
                   "probabilities)",
    "batch_size": "training batch size (predict's default batch)",
    "model_class": "the pfdtrain model class",
    "model_kwargs": "JSON: its constructor arguments",
    "trainer": "the trainer it was trained with",
    "quantization": "none, or how the weights were quantized",
    "parity": "JSON: the check at export (windows, max |logit diff| or class agreement)",
    "checkpoint": "the checkpoint file it was exported from",
    "epoch": "the checkpoint's epoch",
    "dataset_hash": "content hash of the training data",
    "pfdtrain_version": "pfdtrain that exported it",
    "torch_version": "PyTorch that exported it",
}
METADATA_VERSION = "1"
#: What ``predict`` cannot do without: an export missing one is refused.
REQUIRED_KEYS = ("pfdtrain_export", "class_names", "sampling_rate", "window_length",
                 "window_stride", "normalization", "input_transform", "input_shape")
INPUT_NAME = "windows"
OUTPUT_NAME = "logits"


def deployment_metadata(metadata: Mapping[str, Any], checkpoint: PathLike, input_shape: tuple,
                        quantization: str, parity: Mapping[str, Any]) -> dict[str, str]:
    """The ``DEPLOYMENT_KEYS`` as strings, from a checkpoint's evaluation metadata.

    Args:
        metadata: what :func:`~pfdtrain.evaluation.loading.load_model_for_evaluation` returned.
        checkpoint: the exported checkpoint's path (its name is recorded).
        input_shape: one input without the batch axis, ``(channels, input_length)``.
        quantization: ``"none"`` or a description of the quantization.
        parity: the parity check's summary.

    Example:
        >>> props = deployment_metadata(meta, "best_model.pth", (1, 2048), "none", {})
        >>> json.loads(props["class_names"])[:2]
        ['healthy', 'misalignment']
    """
    import torch

    from pfdtrain import __version__

    config = metadata.get("config") or {}
    data = config.get("data") or {}
    window = int(metadata.get("window_length") or data.get("window_length")
                 or metadata["input_length"])
    transform = dict(metadata.get("transform") or {"name": "raw", "params": {},
                                                   "output_length": window})
    values: dict[str, Any] = {
        "pfdtrain_export": METADATA_VERSION,
        "class_names": list(metadata["class_names"]),
        "sampling_rate": float(metadata["sampling_rate"]),
        "window_length": window,
        "window_stride": int(data.get("window_stride") or window),
        "normalization": data.get("normalization", "zscore"),
        "input_transform": transform,
        "input_shape": [int(n) for n in input_shape],
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "batch_size": int(data.get("batch_size") or 32),
        "model_class": metadata.get("model_class"),
        "model_kwargs": metadata.get("model_kwargs") or {},
        "trainer": config.get("trainer", "cnn"),
        "quantization": quantization,
        "parity": dict(parity),
        "checkpoint": Path(checkpoint).name,
        "epoch": metadata.get("epoch"),
        "dataset_hash": metadata.get("dataset_hash"),
        "pfdtrain_version": __version__,
        "torch_version": torch.__version__,
    }
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()}


def read_deployment_metadata(props: Mapping[str, str], source: PathLike) -> dict[str, Any]:
    """The export's metadata in the shape a checkpoint's evaluation metadata has.

    So ``predict`` prepares a recording for an export exactly as for a checkpoint.

    Args:
        props: the stored strings (ONNX metadata properties or the sidecar JSON).
        source: the exported file, for the error message.

    Raises:
        EvaluationError: the file lacks pfdtrain's metadata, or holds a newer layout.

    Example:
        >>> read_deployment_metadata(props, "model.onnx")["config"]["data"]["window_stride"]
        2048
    """
    missing = [key for key in REQUIRED_KEYS if key not in props]
    if missing:
        raise EvaluationError(
            f"{source} has no pfdtrain deployment metadata (missing: {', '.join(missing)}), so "
            f"its class names, sampling rate, window length and normalisation are unknown "
            f"and a recording cannot be prepared for it; export the model with `pfdtrain "
            f"export CHECKPOINT` (it writes them), or predict with the checkpoint itself")
    if props["pfdtrain_export"] != METADATA_VERSION:
        raise EvaluationError(f"{source} holds pfdtrain export metadata version "
                              f"{props['pfdtrain_export']!r}; this pfdtrain reads version "
                              f"{METADATA_VERSION}: upgrade pfdtrain or export it again")
    try:
        values = {key: json.loads(value) if key in _JSON_KEYS else value
                  for key, value in props.items() if key in DEPLOYMENT_KEYS}
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{source}: its pfdtrain metadata is damaged ({exc}); export the "
                              f"model again") from None
    channels, input_length = values["input_shape"]
    return {
        "class_names": list(values["class_names"]),
        "sampling_rate": float(values["sampling_rate"]),
        "window_length": int(values["window_length"]),
        "input_length": int(input_length),
        "input_channels": int(channels),
        "transform": values["input_transform"],
        "model_class": values.get("model_class"),
        "model_kwargs": values.get("model_kwargs"),
        "epoch": values.get("epoch"),
        "quantization": values.get("quantization", "none"),
        "parity": values.get("parity"),
        "pfdtrain_version": values.get("pfdtrain_version"),
        "torch_version": values.get("torch_version"),
        "config": {"trainer": values.get("trainer", "cnn"),
                   "data": {"window_length": int(values["window_length"]),
                            "window_stride": int(values["window_stride"]),
                            "normalization": values["normalization"],
                            "batch_size": int(values.get("batch_size") or 32)}},
    }


_JSON_KEYS = frozenset({"class_names", "sampling_rate", "window_length", "window_stride",
                        "input_transform", "input_shape", "batch_size", "model_kwargs",
                        "parity", "epoch"})


class ExportedModel:
    """A model exported by ``pfdtrain export``, run by its runtime, with its metadata.

    Args:
        path: the exported file.
        metadata: :func:`read_deployment_metadata` of it.
        run: float32 ``[N, channels, input_length]`` -> logits ``[N, classes]``.
        format: the export format's name (``onnx``, ``torchscript``).

    Example:
        >>> model = load_exported("best_model.onnx")
        >>> logits, targets = model.predict_logits(dataset, batch_size=64)
    """

    def __init__(self, path: PathLike, metadata: dict[str, Any],
                 run: Callable[[np.ndarray], np.ndarray], format: str) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self.format = format
        self._run = run

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """Logits float32 ``[N, classes]`` of model inputs ``[N, channels, input_length]``."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        expected = (self.metadata["input_channels"], self.metadata["input_length"])
        if windows.ndim != 3 or tuple(windows.shape[1:]) != expected:
            raise EvaluationError(f"{self.path} takes inputs of shape [batch, {expected[0]}, "
                                  f"{expected[1]}], got {list(windows.shape)}")
        return np.asarray(self._run(windows), dtype=np.float32)

    def predict_logits(self, dataset: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(logits [N, K], targets [N])`` over every window of ``dataset`` in order, as
        :func:`~pfdtrain.evaluation.evaluate.predict_logits` gives for a PyTorch model."""
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        logits, targets = [], []
        for batch in loader:
            logits.append(self.logits(batch[0].numpy()))
            targets.append(batch[1].numpy())
        if not logits:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.concatenate(logits), np.concatenate(targets).astype(np.int64)
