"""File-format readers shared by every importer: MATLAB .mat (v5 and v7.3), .npy and .csv.

:func:`read_signal` reads one recording as a float64 1-D signal and says what it found
(format, variables, the chosen variable, speed and sampling rate where the file states
them). Every problem is a :class:`RecordingError` naming the file.

Example:
    >>> signal, info = read_signal(Path("cwru/97.mat"), variable="_DE_time")
    >>> signal.shape, info["variable"]
    ((243938,), 'X097_DE_time')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import h5py
import numpy as np

from pfdtrain.data.records import DataError

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mat", ".npy", ".csv")


class RecordingError(DataError):
    """A recording or manifest row cannot be imported; the message names the file and why."""


class RecordingWarning(UserWarning):
    """A recording was skipped (``skip_bad``) or imported with a caveat."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick_variable(names: Sequence[str], wanted: str, path: Path, all_names: Sequence[str]
                   ) -> str:
    """Exact name, else case-insensitive, else a unique suffix, else a unique ``_`` token.

    So ``X097_DE_time`` is found by its name, by ``_DE_time`` (the CWRU numbers inside files
    vary) and by ``DE``; a match that is not unique is an error, never a guess.
    """
    low = wanted.lower()
    stages = (
        [n for n in names if n == wanted],
        [n for n in names if n.lower() == low],
        [n for n in names if n.lower().endswith(low)],
        [n for n in names if low in n.lower().split("_")],
    )
    for matches in stages:
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecordingError(f"{path}: variable '{wanted}' is ambiguous, it matches "
                                 f"{', '.join(sorted(matches))}; name one exactly.")
    raise RecordingError(f"{path}: variable '{wanted}' not found; available variables: "
                         f"{', '.join(sorted(all_names)) or '(none)'}.")


def _is_numeric(arr: Any) -> bool:
    return isinstance(arr, np.ndarray) and arr.dtype.kind in "fiu"


def _mat_variables(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """All variables of a MATLAB file (v5 via scipy, v7.3 via h5py) and the format name."""
    import scipy.io

    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer for v7.3 (HDF5-based) files
        return mat73_variables(path), "mat-v7.3"
    except Exception as exc:  # scipy raises several types for damaged files
        if h5py.is_hdf5(str(path)):
            return mat73_variables(path), "mat-v7.3"
        raise RecordingError(f"{path}: cannot be read as a MATLAB .mat file "
                             f"({type(exc).__name__}: {exc}); check that the file is complete "
                             f"and really a .mat file.") from None
    return {k: v for k, v in contents.items() if not k.startswith("__")}, "mat-v5"


def mat73_variables(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            for name, item in f.items():
                if name.startswith("#") or not isinstance(item, h5py.Dataset):
                    continue  # '#refs#', '#subsystem#': MATLAB's internal storage
                if item.dtype.kind not in "fiu":
                    out[name] = np.zeros(0, dtype=object)  # listed, but never a signal
                    continue
                # MATLAB writes column-major: a [N, 1] column vector is stored as (1, N).
                out[name] = np.asarray(item[()]).T
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read as a MATLAB v7.3 (HDF5) file ({exc}).")
    return out


def _channel_index(column: Union[str, int], n_channels: int, path: Path, what: str) -> int:
    if isinstance(column, str):
        if not column.strip().lstrip("-").isdigit():
            raise RecordingError(f"{path}: {what} has {n_channels} channels; select one by its "
                                 f"index 0..{n_channels - 1}, not {column!r}.")
        column = int(column)
    if not -n_channels <= int(column) < n_channels:
        raise RecordingError(f"{path}: channel {column} of {what} does not exist; it has "
                             f"{n_channels} channels (0..{n_channels - 1}).")
    return int(column)


def _to_1d(arr: np.ndarray, path: Path, column: Optional[Union[str, int]], what: str
           ) -> np.ndarray:
    """A float64 1-D signal from [N], [N, 1], [1, N] or (with ``column``) [N, C]."""
    arr = np.asarray(arr)
    if not _is_numeric(arr):
        raise RecordingError(f"{path}: {what} is not a real-valued numeric array "
                             f"(dtype {arr.dtype}).")
    if arr.ndim > 2:
        arr = np.squeeze(arr)
    if arr.ndim == 0 or arr.size == 0:
        raise RecordingError(f"{path}: {what} holds no signal (shape {arr.shape}).")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim == 2:
        # The longer axis is time: recordings have far more samples than channels.
        if arr.shape[0] < arr.shape[1]:
            arr = arr.T
        if column is None:
            raise RecordingError(f"{path}: {what} has {arr.shape[1]} channels (shape "
                                 f"{arr.shape}); choose one with the manifest's column "
                                 f"(channel index 0..{arr.shape[1] - 1}).")
        arr = arr[:, _channel_index(column, arr.shape[1], path, what)]
    if arr.ndim != 1:
        raise RecordingError(f"{path}: {what} has shape {arr.shape}; expected a 1-D signal, "
                             f"[N, 1], [1, N] or [N, channels].")
    return np.asarray(arr, dtype=np.float64)


def _read_mat(path: Path, variable: Optional[str], column: Optional[Union[str, int]]
              ) -> tuple[np.ndarray, dict]:
    variables, fmt = _mat_variables(path)
    names = sorted(variables)
    signals = [n for n in names if _is_numeric(variables[n]) and variables[n].size > 1]
    if variable is not None:
        name = _pick_variable(names, str(variable), path, names)
    elif len(signals) == 1:
        name = signals[0]
    elif not signals:
        raise RecordingError(f"{path}: no numeric signal variable found; variables: "
                             f"{', '.join(names) or '(none)'}.")
    else:
        raise RecordingError(f"{path}: holds {len(signals)} signal variables "
                             f"({', '.join(signals)}); name one in the manifest's variable "
                             f"column (or with --channel, e.g. DE for X097_DE_time).")
    info: dict[str, Any] = {"format": fmt, "variables": names, "variable": name}
    rpm_names = [n for n in names if n.upper().endswith("RPM") and _is_numeric(variables[n])
                 and variables[n].size == 1]
    if rpm_names:
        # Prefer the RPM stored beside the chosen signal (X097RPM for X097_DE_time).
        prefix = f"{name.split('_')[0]}RPM"
        rpm_name = prefix if prefix in rpm_names else rpm_names[0]
        info["rpm"] = float(np.asarray(variables[rpm_name]).reshape(-1)[0])
    return _to_1d(variables[name], path, column, f"variable '{name}'"), info


def _read_npy(path: Path, column: Optional[Union[str, int]]) -> tuple[np.ndarray, dict]:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle: files may come from anywhere
    except Exception as exc:
        raise RecordingError(f"{path}: cannot be read as a .npy array ({type(exc).__name__}: "
                             f"{exc}).") from None
    return _to_1d(arr, path, column, "the array"), {"format": "npy", "variables": []}


def _read_csv(path: Path, column: Optional[Union[str, int]]) -> tuple[np.ndarray, dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read as a text CSV file ({exc}).") from None
    if not first.strip():
        raise RecordingError(f"{path}: the CSV file is empty (no first line).")
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)  # None: whitespace
    fields = [f.strip().strip('"') for f in (first.split(delimiter) if delimiter
                                             else first.split())]
    header = not all(_is_number(f) for f in fields)
    names = fields if header else []
    if column is None:
        if len(fields) != 1:
            listed = ", ".join(names) if header else f"{len(fields)} unnamed columns"
            raise RecordingError(f"{path}: has {len(fields)} columns ({listed}); name the "
                                 f"signal column in the manifest's column (name or index).")
        index, label = 0, names[0] if header else "0"
    elif isinstance(column, str) and column in names:
        index, label = names.index(column), column
    elif isinstance(column, int) or str(column).strip().isdigit():
        index, label = int(column), str(column)
        if index >= len(fields):
            raise RecordingError(f"{path}: column {index} does not exist; the file has "
                                 f"{len(fields)} columns" + (f" ({', '.join(names)})"
                                                             if header else "") + ".")
    else:
        where = (f"available columns: {', '.join(names)}" if header
                 else "the file has no header row; give the column index")
        raise RecordingError(f"{path}: column '{column}' not found; {where}.")
    try:
        signal = np.loadtxt(path, delimiter=delimiter, skiprows=1 if header else 0,
                            usecols=(index,), dtype=np.float64, ndmin=1, encoding="utf-8-sig")
    except (ValueError, IndexError) as exc:
        raise RecordingError(f"{path}: column {label} cannot be read as numbers ({exc}); "
                             f"every row after the header must hold a number there.") from None
    return signal, {"format": "csv", "variables": names, "column": label}


def read_signal(path: Path, variable: Optional[str] = None,
                column: Optional[Union[str, int]] = None) -> tuple[np.ndarray, dict]:
    """Read one recording as a float64 1-D signal.

    Formats by extension: ``.mat`` (MATLAB v5 through ``scipy.io.loadmat``; v7.3, which is
    HDF5, through h5py when scipy declines it), ``.npy`` (numpy, no pickles) and ``.csv``
    (numbers separated by ``,``, ``;``, tab or spaces; an optional header row).

    Args:
        path: the recording.
        variable: ``.mat``: the variable holding the signal: its exact name, or a suffix or
            ``_``-separated part matching exactly one variable (``_DE_time`` or ``DE`` find
            ``X097_DE_time``). Not needed when the file holds one signal variable.
        column: ``.csv``: the column, by header name or index (not needed for a single
            column). ``.mat``/``.npy``: the channel index of a 2-D [N, C] array.

    Returns:
        ``(signal, info)``: float64 [N] (``[N, 1]``/``[1, N]`` are squeezed) and a dict with
        ``format``, ``variables`` (names in the file; CSV header names), the chosen
        ``variable``/``column`` and ``rpm`` where the file states it (CWRU ``X097RPM``).

    Raises:
        RecordingError: naming the file and the problem: missing or unreadable file, unknown
            extension, missing or ambiguous variable (listing the available ones), a 2-D
            array without a channel, an empty signal, or NaN/inf samples (how many and
            where the first is).

    Example:
        >>> signal, info = read_signal(Path("cwru/97.mat"), variable="_DE_time")
        >>> signal.shape, info["variable"], info["rpm"]
        ((243938,), 'X097_DE_time', 1796.0)
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: file does not exist (or is not a file).")
    ext = path.suffix.lower()
    if ext == ".mat":
        signal, info = _read_mat(path, variable, column)
    elif ext == ".npy":
        signal, info = _read_npy(path, column)
    elif ext == ".csv":
        signal, info = _read_csv(path, variable if column is None else column)
    else:
        raise RecordingError(f"{path}: unknown file type '{ext or '(no extension)'}'; "
                             f"supported: .mat (MATLAB v5 and v7.3), .npy, .csv.")
    if signal.size == 0:
        raise RecordingError(f"{path}: the signal is empty (0 samples).")
    bad = ~np.isfinite(signal)
    if bad.any():
        first = int(np.argmax(bad))
        raise RecordingError(f"{path}: the signal contains {int(bad.sum())} NaN/inf value(s) "
                             f"(first at sample {first} of {signal.size}); clean or "
                             f"interpolate them, or leave the file out.")
    return signal, info
