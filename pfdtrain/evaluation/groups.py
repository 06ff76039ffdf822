"""Accuracy by operating condition: ``pfdtrain evaluate … --by load`` (any metadata key).

The evaluated windows know their recording; the recordings' metadata (load, rpm, a bearing
code…) is read from the dataset file by record id, so every metadata column of the file
can group the results, text columns included. A piece of a recording made by a time split
(``<record_id>#test``) takes its source recording's metadata.

Example:
    >>> values = record_metadata(Path("data/cwru.h5"), ["IR007_1", "B007_1"], ["load"])
    >>> values["load"]
    [1.0, 1.0]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pfdtrain.errors import EvaluationError
from pfdtrain.utils.naming import did_you_mean

UNKNOWN = "unknown"  # the group of recordings whose value is missing (NaN / empty text)


def _value(raw: Any) -> Any:
    """A metadata value as JSON: a float, a string, or None when unknown."""
    if isinstance(raw, (float, np.floating, int, np.integer)):
        return None if math.isnan(float(raw)) else float(raw)
    text = str(raw)
    return text if text else None


def record_metadata(path: Path, record_ids: Sequence[str], keys: Sequence[str]
                    ) -> dict[str, list[Any]]:
    """The values of metadata ``keys`` for each evaluated recording, looked up by record id.

    Args:
        path: the dataset file the windows were cut from.
        record_ids: the evaluated recordings (``WindowDataset.record_ids``).
        keys: metadata columns, e.g. ``["load"]``.

    Returns:
        ``{key: [value per recording]}``; values are floats, strings or None (unknown).

    Raises:
        EvaluationError: a key the file does not have (naming the available keys), or a
            record id that is not in the file.
    """
    from pfdtrain.data.storage import read_dataset

    data = read_dataset(path, verify_hash=False)
    available = sorted({k for split in data.splits.values() for k in split.metadata})
    for key in keys:
        if key not in available:
            names = ", ".join(available) if available else "(none: the file stores no metadata)"
            raise EvaluationError(
                f"--by {key!r}: {path} has no metadata key {key!r}; available keys: {names}."
                + did_you_mean(key, available)
                + " Group by one of those, or import the recordings with that metadata "
                  "column (e.g. load or rpm in the manifest).")
    where: dict[str, tuple[Any, int]] = {}
    for split in data.splits.values():
        for i, rid in enumerate(split.record_ids):
            where[str(rid)] = (split, i)
    values: dict[str, list[Any]] = {key: [] for key in keys}
    for rid in record_ids:
        hit = where.get(str(rid)) or where.get(str(rid).rsplit("#", 1)[0])
        if hit is None:
            raise EvaluationError(f"evaluated recording {rid} is not in {path}, so its "
                                  f"metadata is unknown; evaluate on the file it comes from")
        split, i = hit
        for key in keys:
            column = split.metadata.get(key)
            values[key].append(None if column is None else _value(column[i]))
    return values


def group_metrics(record_values: Sequence[Any], window_record: np.ndarray, targets: np.ndarray,
                  predictions: np.ndarray, record_labels: np.ndarray,
                  record_predictions: np.ndarray) -> list[dict[str, Any]]:
    """Window and recording accuracy (%) per value of one metadata key.

    Args:
        record_values: the key's value for each recording (None = unknown).
        window_record: recording index of each window.
        targets: true class of each window.
        predictions: predicted class of each window.
        record_labels: true class of each recording.
        record_predictions: soft-vote class of each recording.

    Returns:
        One row per value (numbers ascending, then text, then unknown): ``{"value",
        "num_windows", "num_recordings", "accuracy", "recording_accuracy"}``.

    Example:
        >>> group_metrics([0.0, 1.0], np.array([0, 0, 1]), np.array([2, 2, 1]),
        ...               np.array([2, 0, 1]), np.array([2, 1]), np.array([2, 1]))[0]["accuracy"]
        50.0
    """
    window_record = np.asarray(window_record, dtype=np.int64)
    correct = np.asarray(targets) == np.asarray(predictions)
    record_correct = np.asarray(record_labels) == np.asarray(record_predictions)
    distinct = set(record_values)
    numbers = sorted(v for v in distinct if isinstance(v, float))
    texts = sorted(v for v in distinct if isinstance(v, str))
    rows = []
    for value in numbers + texts + ([None] if None in distinct else []):
        records = np.array([v == value for v in record_values], dtype=bool)
        windows = records[window_record]
        rows.append({
            "value": UNKNOWN if value is None else value,
            "num_windows": int(windows.sum()),
            "num_recordings": int(records.sum()),
            "accuracy": 100.0 * float(correct[windows].mean()) if windows.any() else None,
            "recording_accuracy": 100.0 * float(record_correct[records].mean()),
        })
    return rows
