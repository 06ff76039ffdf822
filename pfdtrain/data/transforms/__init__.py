"""Model-input transforms: what the model sees of each normalised window (docs/data.md §6.4).

``data.transform`` picks one of :data:`TRANSFORMS`; ``data.transform_params`` holds its
parameters. Each transform is one module here and one entry in :data:`TRANSFORMS`: the
config choices, the error hints and the README table (:func:`transforms_markdown`) are
derived from the registry. A transform runs on the whole batch ``[B, L]`` after the
per-window normalisation (the hook in :class:`~pfdtrain.data.windows.WindowDataset`), and
a window's result is bitwise the same alone or in any batch (:mod:`.base`).

Checkpoints record the transform as ``metadata["transform"] = {"name", "params",
"output_length"}`` (:meth:`InputTransform.describe`); ``pfdtrain evaluate`` and
``pfdtrain predict`` rebuild it from there, and a checkpoint without it means ``raw``.

Example:
    >>> t = make_transform("envelope", {"band_hz": [2000, 5000]}, sampling_rate=12000,
    ...                    window_length=4096)
    >>> t(torch.randn(8, 4096)).shape
    torch.Size([8, 2049])
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pfdtrain.data.records import DataError
from pfdtrain.data.transforms.base import InputTransform, TransformError
from pfdtrain.data.transforms.envelope import EnvelopeTransform
from pfdtrain.data.transforms.fft import FFTTransform
from pfdtrain.data.transforms.order import OrderTransform
from pfdtrain.data.transforms.raw import RawTransform

# Transform name -> class; the config's data.transform choices and the README table derive
# from it. The first is the default.
TRANSFORMS: dict[str, type[InputTransform]] = {
    "raw": RawTransform,
    "fft": FFTTransform,
    "envelope": EnvelopeTransform,
    "order": OrderTransform,
}
DEFAULT_TRANSFORM = next(iter(TRANSFORMS))
# Metadata columns that give a recording's shaft speed, and the factor to rev/s.
SPEED_COLUMNS: dict[str, float] = {"rpm": 1 / 60, "speed_hz": 1.0}

__all__ = ["TRANSFORMS", "DEFAULT_TRANSFORM", "InputTransform", "TransformError",
           "transform_class", "check_transform_params", "make_transform",
           "transform_from_metadata", "record_speeds_hz", "transforms_markdown"]


def transform_class(name: str) -> type[InputTransform]:
    """The class registered as ``name``.

    Raises:
        TransformError: unknown name (lists the registered ones and the closest match).

    Example:
        >>> transform_class("fft").__name__
        'FFTTransform'
    """
    if name not in TRANSFORMS:
        close = difflib.get_close_matches(str(name), list(TRANSFORMS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TransformError(f"data.transform = {name!r} is not a registered input transform; "
                             f"choose one of {', '.join(TRANSFORMS)}.{hint}")
    return TRANSFORMS[name]


def check_transform_params(name: str, params: Mapping[str, Any]) -> None:
    """The checks that need no data (config load): known name, known and valid parameters.

    Raises:
        TransformError: names the key and the fix.

    Example:
        >>> check_transform_params("envelope", {"band_hz": [5000, 2000]})
        Traceback (most recent call last):
        TransformError: data.transform_params.band_hz = [5000, 2000] is inverted or empty ...
    """
    transform_class(name).check_params(params or {})


def make_transform(name: str, params: Optional[Mapping[str, Any]], sampling_rate: float,
                   window_length: int) -> InputTransform:
    """Build transform ``name`` for windows of ``window_length`` samples at ``sampling_rate``.

    Args:
        name: a key of :data:`TRANSFORMS`.
        params: its parameters (``data.transform_params``); missing ones take the defaults.
        sampling_rate: samples per second of the dataset.
        window_length: ``data.window_length``.

    Raises:
        TransformError: unknown name or parameter, a value the data cannot support (a band
            above the Nyquist frequency).

    Example:
        >>> make_transform("order", {}, 12000, 6400).output_length
        1024
    """
    cls = transform_class(name)
    return cls(sampling_rate, window_length, **dict(params or {}))


def transform_from_metadata(metadata: Mapping[str, Any], sampling_rate: float,
                            window_length: int) -> InputTransform:
    """The transform a checkpoint was trained with (``metadata["transform"]``; ``raw`` when
    the checkpoint predates transforms).

    Example:
        >>> transform_from_metadata({}, 12000, 1024).name
        'raw'
    """
    stored = metadata.get("transform") or {}
    return make_transform(stored.get("name", DEFAULT_TRANSFORM), stored.get("params") or {},
                          sampling_rate, window_length)


def record_speeds_hz(metadata: Mapping[str, Any], record_ids: Sequence[str], where: str,
                     fix: str) -> np.ndarray:
    """float64 ``[N]``: each record's shaft speed in rev/s, from ``rpm`` or ``speed_hz``.

    Args:
        metadata: the records' metadata columns (``RecordSplit.metadata``).
        record_ids: their names (for the error message).
        where: what the records are, for the message (e.g. the dataset path).
        fix: how the user supplies a speed there (a manifest column, ``--rpm``).

    Raises:
        DataError: neither column, or a record whose speed is missing, non-finite or <= 0.

    Example:
        >>> record_speeds_hz({"rpm": np.array([1800.0])}, ["r0"], "x.h5", "")
        array([30.])
    """
    column = next((c for c in SPEED_COLUMNS if c in metadata), None)
    if column is None:
        raise DataError(f"data.transform: order resamples each window by its recording's shaft "
                        f"speed, but {where} has no speed metadata (an 'rpm' or 'speed_hz' "
                        f"column); {fix}, or use another data.transform "
                        f"({', '.join(n for n, c in TRANSFORMS.items() if not c.needs_speed)})")
    try:
        values = np.asarray(metadata[column], dtype=np.float64) * SPEED_COLUMNS[column]
    except (TypeError, ValueError):
        raise DataError(f"{where}: the '{column}' metadata is not numeric, so data.transform: "
                        f"order cannot read the shaft speed from it; {fix}") from None
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}: record {record_ids[i]} has {column} = "
                        f"{float(values[i] / SPEED_COLUMNS[column]):g} ({bad.size} record(s) "
                        f"without a usable speed), so data.transform: order cannot resample "
                        f"it; {fix}")
    return values


def transforms_markdown() -> str:
    """The README's table of input transforms, generated from :data:`TRANSFORMS`.

    Example:
        >>> print(transforms_markdown().splitlines()[0])
        | `data.transform` | model input | `data.transform_params` (default) |
    """
    rows = ["| `data.transform` | model input | `data.transform_params` (default) |",
            "| --- | --- | --- |"]
    for name, cls in TRANSFORMS.items():
        params = "; ".join(f"`{k}` (`{'null' if default is None else default!r}`): {text}"
                           for k, (default, text) in cls.defaults.items()) or "none"
        rows.append(f"| `{name}` | {cls.what} | {params} |")
    return "\n".join(rows)
