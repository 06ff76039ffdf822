"""Import real accelerometer recordings (.mat, .npy, .csv; CWRU bearing data) into a dataset.

``pfdtrain data import`` turns a manifest (one CSV row per recording) or a folder of Case
Western Reserve University (CWRU) bearing data files into one HDF5 file in the
``pfdtrain-dataset-v1`` layout, stored *unsplit*: the split is chosen when training
(``data.split``: record, time or group; :mod:`pfdtrain.data.splits`). Every recording is
read, checked (readable, the named variable exists, finite, long enough), optionally
resampled to one common rate, and the file is written once at the end through an atomic
writer, so a failed import never leaves a partial file.

Example:
    >>> summary = import_manifest(Path("recordings.csv"), Path("data/mine.h5"),
    ...                           target_rate=12000.0)
    >>> print(summary.line())
    imported 24 recordings (3 classes: healthy 8, inner 8, outer 8) at 12000 Hz into data/mine.h5
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from pfdtrain.data.dataset import UNSPLIT, DataError, RecordSplit, write_dataset

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mat", ".npy", ".csv")
DEFAULT_MIN_LENGTH = 2048
# Manifest columns with a meaning of their own; every other column is float metadata.
RESERVED_COLUMNS: tuple[str, ...] = ("path", "label", "variable", "column", "sampling_rate",
                                     "record_id", "bearing_id", "severity")

# CWRU 12 kHz drive-end bearing data (https://engineering.case.edu/bearingdatacenter).
CWRU_10CLASS: tuple[str, ...] = ("normal", "IR007", "IR014", "IR021", "B007", "B014", "B021",
                                 "OR007", "OR014", "OR021")
CWRU_4CLASS: tuple[str, ...] = ("normal", "inner_race", "ball", "outer_race")
CWRU_LABEL_SETS: dict[str, tuple[str, ...]] = {"10class": CWRU_10CLASS, "4class": CWRU_4CLASS}
CWRU_CHANNELS: tuple[str, ...] = ("DE", "FE", "BA")
CWRU_SAMPLING_RATE = 12000.0
CWRU_NOMINAL_RPM: dict[int, float] = {0: 1797.0, 1: 1772.0, 2: 1750.0, 3: 1730.0}
# First official file number of each class; the next three are loads 1, 2, 3 HP.
_CWRU_FIRST_FILE: dict[str, int] = {"normal": 97, "IR007": 105, "B007": 118, "OR007": 130,
                                    "IR014": 169, "B014": 185, "OR014": 197, "IR021": 209,
                                    "B021": 222, "OR021": 234}
CWRU_FILE_NUMBERS: dict[int, tuple[str, int]] = {
    first + load: (name, load) for name, first in _CWRU_FIRST_FILE.items() for load in range(4)}
_CWRU_NUMBERED = re.compile(r"^x?0*(\d+)\.mat$", re.IGNORECASE)
_CWRU_RENAMED = re.compile(r"^(normal|(?:IR|B)(?:007|014|021)|OR(?:007|014|021)(?:@6)?)_([0-3])"
                           r"\.mat$", re.IGNORECASE)


class RecordingError(DataError):
    """A recording or manifest row cannot be imported; the message names the file and why."""


class RecordingWarning(UserWarning):
    """A recording was skipped (``skip_bad``) or imported with a caveat."""


# --------------------------------------------------------------------------------------------
# Reading one recording
# --------------------------------------------------------------------------------------------

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
        return _mat73_variables(path), "mat-v7.3"
    except Exception as exc:  # scipy raises several types for damaged files
        if h5py.is_hdf5(str(path)):
            return _mat73_variables(path), "mat-v7.3"
        raise RecordingError(f"{path}: cannot be read as a MATLAB .mat file "
                             f"({type(exc).__name__}: {exc}); check that the file is complete "
                             f"and really a .mat file.") from None
    return {k: v for k, v in contents.items() if not k.startswith("__")}, "mat-v5"


def _mat73_variables(path: Path) -> dict[str, np.ndarray]:
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


def resample_signal(signal: np.ndarray, rate: float, target_rate: float
                    ) -> tuple[np.ndarray, float]:
    """Resample with a polyphase filter (``scipy.signal.resample_poly``) to ``target_rate``.

    The ratio ``target / rate`` is approximated by a fraction with a denominator of at most
    1000 (exact for common rates: 12000 → 6400 is 8/15, 48000 → 12000 is 1/4), which keeps
    the polyphase filter small; the anti-aliasing low-pass is built in.

    Returns:
        ``(resampled float64 signal, the rate actually reached)`` (equal to ``target_rate``
        unless the ratio had to be approximated).

    Example:
        >>> y, rate = resample_signal(np.zeros(12000), 12000.0, 6400.0)
        >>> y.shape, rate
        ((6400,), 6400.0)
    """
    ratio = (Fraction(target_rate) / Fraction(rate)).limit_denominator(1000)
    if ratio == 1:
        return np.asarray(signal, dtype=np.float64), float(rate)
    from scipy.signal import resample_poly

    out = resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator,
                        ratio.denominator)
    return out, float(rate) * ratio.numerator / ratio.denominator


# --------------------------------------------------------------------------------------------
# Importing many recordings
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ImportSummary:
    """What an import wrote (or would have) and what it skipped.

    Attributes:
        out: the dataset file.
        records: recordings written.
        class_names: class index → name.
        class_counts: recordings per class name.
        sampling_rate: Hz, common to every record.
        skipped: ``(file, reason)`` per recording left out (``skip_bad``) or file not
            recognised (CWRU layout).
        content_hash: the file's content hash.
    """

    out: Path
    records: int
    class_names: list[str]
    class_counts: dict[str, int]
    sampling_rate: float
    skipped: list[tuple[str, str]]
    content_hash: str

    def line(self) -> str:
        """One-line summary, e.g. for the CLI."""
        counts = ", ".join(f"{name} {self.class_counts.get(name, 0)}"
                           for name in self.class_names)
        skipped = f"; skipped {len(self.skipped)}" if self.skipped else ""
        return (f"imported {self.records} recordings ({len(self.class_names)} classes: "
                f"{counts}) at {self.sampling_rate:g} Hz into {self.out}{skipped}")

    def __str__(self) -> str:
        return self.line()


def _float_cell(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return float("nan")
    return float(value)


def _row_where(manifest: Optional[Path], row_number: int, file: Union[Path, str]) -> str:
    return (f"{manifest}, row {row_number} ({file})" if manifest is not None
            else f"{file}")


def _import_rows(rows: Sequence[Mapping[str, Any]], out: Path, *, base_dir: Path,
                 manifest: Optional[Path], target_rate: Optional[float],
                 sampling_rate: Optional[float], channel: Optional[str],
                 classes: Optional[Sequence[str]], skip_bad: bool, min_length: int,
                 source: str, settings: dict,
                 skipped: Optional[list[tuple[str, str]]] = None) -> ImportSummary:
    """Shared core of :func:`import_manifest` and :func:`import_cwru` (see there)."""
    out = Path(out)
    skipped = list(skipped or [])
    if min_length < 1:
        raise DataError(f"min_length must be >= 1 (got {min_length}).")
    if target_rate is not None and not target_rate > 0:
        raise DataError(f"the target sampling rate must be > 0 Hz (got {target_rate}).")
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes) or not classes:
            raise DataError(f"the class list {classes} is empty or names a class twice.")
    if not rows:
        raise RecordingError(f"{manifest or base_dir}: no recordings to import (the manifest "
                             f"has no rows).")

    # Pass 1, manifest only (cheap, before reading any file): paths, ids, rates.
    entries = []
    for k, row in enumerate(rows):
        row_number = k + 2  # the header is line 1 of the manifest
        cell = str(row.get("path") or "").strip()
        file = Path(cell).expanduser() if cell else None
        if file is not None and not file.is_absolute():
            file = base_dir / file
        rid = (str(row.get("record_id") or "").strip() or str(row.get("bearing_id") or "").strip()
               or (file.stem if file is not None else f"row-{row_number}"))
        rate_cell = row.get("sampling_rate")
        rate: Optional[float]
        try:
            rate = _float_cell(rate_cell)
            rate = sampling_rate if np.isnan(rate) else rate
        except (TypeError, ValueError):
            rate = None  # reported per row below (skippable)
        entries.append((row_number, row, file, rid, rate))
    ids: dict[str, tuple[int, Any]] = {}
    for row_number, _, file, rid, _ in entries:
        if rid in ids:
            other_row, other_file = ids[rid]
            raise RecordingError(f"{manifest or base_dir}: record id '{rid}' is used by row "
                                 f"{other_row} ({other_file}) and row {row_number} ({file}); "
                                 f"record ids must be unique: add a record_id column.")
        ids[rid] = (row_number, file)
    rates = {r for *_, r in entries if r is not None and np.isfinite(r) and r > 0}
    if target_rate is None and len(rates) > 1:
        by_rate = {r: [str(e[2]) for e in entries if e[4] == r] for r in sorted(rates)}
        listed = "; ".join(f"{r:g} Hz: {len(f)} file(s), e.g. {f[0]}" for r, f in by_rate.items())
        raise RecordingError(f"{manifest or base_dir}: recordings have different sampling "
                             f"rates ({listed}); every record of a dataset needs the same "
                             f"rate: resample them with --resample HZ (target_rate).")

    # Pass 2: read and check every recording, keep them in memory, write once at the end.
    records: list[np.ndarray] = []
    labels: list[str] = []
    kept_ids: list[str] = []
    severities: list[int] = []
    metas: list[dict[str, float]] = []
    files: dict[str, str] = {}
    original_rates: dict[str, float] = {}
    meta_columns = [c for c in (rows[0].keys() if rows else []) if c not in RESERVED_COLUMNS]
    final_rate = target_rate if target_rate is not None else (rates.pop() if rates else None)

    for row_number, row, file, rid, rate in entries:
        where = _row_where(manifest, row_number, file if file is not None else "(no path)")
        try:
            if file is None:
                raise RecordingError(f"{where}: the path cell is empty.")
            label = str(row.get("label") or "").strip()
            if not label:
                raise RecordingError(f"{where}: the label cell is empty.")
            if classes is not None and label not in classes:
                raise RecordingError(f"{where}: label '{label}' is not in the class list "
                                     f"({', '.join(classes)}); fix the label or add it to "
                                     f"--classes.")
            meta: dict[str, float] = {}
            for col in meta_columns:
                try:
                    meta[col] = _float_cell(row.get(col))
                except (TypeError, ValueError):
                    raise RecordingError(
                        f"{where}: metadata column '{col}' has the non-numeric value "
                        f"{row.get(col)!r}; every column except {', '.join(RESERVED_COLUMNS)} "
                        f"is operating metadata and must hold numbers (leave a cell empty "
                        f"for unknown; remove or encode text columns).") from None
            severity_cell = str(row.get("severity") or "").strip()
            try:
                severity = int(float(severity_cell)) if severity_cell else -1
            except ValueError:
                raise RecordingError(f"{where}: severity {severity_cell!r} is not an integer "
                                     f"(0..3, or empty for unknown).") from None
            if rate is None or not np.isfinite(rate) or rate <= 0:
                raise RecordingError(
                    f"{where}: no valid sampling rate (cell {row.get('sampling_rate')!r}); add "
                    f"a sampling_rate column (Hz) or pass --sampling-rate HZ for all files.")
            variable = str(row.get("variable") or "").strip() or None
            column = str(row.get("column") or "").strip() or None
            if variable is None and column is None and channel is not None:
                if file.suffix.lower() == ".mat":
                    variable = channel
                else:
                    column = channel
            try:
                signal, info = read_signal(file, variable=variable, column=column)
            except RecordingError as exc:  # names the file; add the manifest row
                if manifest is None:
                    raise
                raise RecordingError(f"{manifest}, row {row_number}: {exc}") from None
            if "rpm" in info and np.isnan(meta.get("rpm", float("nan"))):
                meta["rpm"] = float(info["rpm"])  # the file states it; the manifest did not
            rate_note = ""
            if target_rate is not None and rate != target_rate:
                signal, reached = resample_signal(signal, rate, target_rate)
                rate_note = f" after resampling {rate:g} → {target_rate:g} Hz"
                if abs(reached - target_rate) > 1e-6 * target_rate:
                    warnings.warn(f"{where}: {rate:g} → {target_rate:g} Hz was approximated "
                                  f"as {reached:.6g} Hz (ratio limited to denominators <= "
                                  f"1000).", RecordingWarning, stacklevel=3)
            if signal.size < min_length:
                raise RecordingError(f"{where}: the recording has {signal.size} samples"
                                     f"{rate_note}, fewer than the minimum of {min_length} "
                                     f"(min_length; at least one training window).")
        except RecordingError as exc:
            if not skip_bad:
                raise
            warnings.warn(f"skipped: {exc}", RecordingWarning, stacklevel=3)
            skipped.append((str(file) if file is not None else where, str(exc)))
            continue
        records.append(signal.astype(np.float32))  # float32 now: halves the peak memory
        labels.append(label)
        kept_ids.append(rid)
        severities.append(severity)
        metas.append(meta)
        files[rid] = str(file)
        original_rates[rid] = float(rate)

    if not records:
        first = f" (first: {skipped[0][1]})" if skipped else ""
        raise RecordingError(f"{manifest or base_dir}: no recording could be imported; "
                             f"{len(skipped)} skipped{first}.")
    class_names = list(classes) if classes is not None else sorted(set(labels))
    keys = sorted({k for m in metas for k in m})
    metadata = {k: [m.get(k, float("nan")) for m in metas] for k in keys}
    split = RecordSplit.from_records(records, [class_names.index(x) for x in labels], kept_ids,
                                     severities, metadata)
    assert final_rate is not None
    config = {**settings, "min_length": min_length, "target_rate": target_rate,
              "files": files, "original_sampling_rates": original_rates,
              "skipped": [list(s) for s in skipped]}
    digest = write_dataset(out, {UNSPLIT: split}, class_names=class_names,
                           sampling_rate=float(final_rate), source=source,
                           generator_config=config, split_strategy="none")
    counts = {name: labels.count(name) for name in class_names}
    return ImportSummary(out, len(records), class_names, counts, float(final_rate), skipped,
                         digest)


def read_manifest(manifest: Path) -> list[dict[str, str]]:
    """The rows of a manifest CSV, reserved column names lower-cased, cells stripped.

    Raises:
        RecordingError: missing file, no header, no ``path``/``label`` column, a repeated
            column name, or a row with more cells than the header.

    Example:
        >>> read_manifest(Path("recordings.csv"))[0]
        {'path': 'rig/run1.csv', 'label': 'healthy', 'rpm': '1500'}
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise RecordingError(f"manifest {manifest} does not exist.")
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        text = handle.read()
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RecordingError(f"manifest {manifest} is empty; its first line must be a header "
                             f"with at least the columns path and label.")
    delimiter = next((d for d in (",", ";", "\t") if d in lines[0]), ",")
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    names = [h.lower() if h.lower() in RESERVED_COLUMNS else h for h in header]
    if len(set(names)) != len(names):
        raise RecordingError(f"manifest {manifest}: a column name appears twice ({header}).")
    missing = [c for c in ("path", "label") if c not in names]
    if missing:
        raise RecordingError(f"manifest {manifest}: required column(s) {', '.join(missing)} "
                             f"missing (header: {', '.join(header)}); the manifest needs path "
                             f"and label, optionally variable/column, sampling_rate, record_id "
                             f"and numeric metadata columns such as rpm or load.")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) > len(names):
            raise RecordingError(f"manifest {manifest}, row {number}: {len(cells)} cells but "
                                 f"the header has {len(names)} columns.")
        cells = cells + [""] * (len(names) - len(cells))
        rows.append({n: c.strip() for n, c in zip(names, cells)})
    return rows


def import_manifest(manifest: Path, out: Path, *, target_rate: Optional[float] = None,
                    sampling_rate: Optional[float] = None, channel: Optional[str] = None,
                    classes: Optional[Sequence[str]] = None, skip_bad: bool = False,
                    min_length: int = DEFAULT_MIN_LENGTH) -> ImportSummary:
    """Import the recordings listed in a manifest CSV into one unsplit dataset file.

    Manifest columns (one row per recording; header names of the reserved columns are
    case-insensitive):

    * ``path`` (required): the file, relative to the manifest's folder or absolute;
    * ``label`` (required): class name;
    * ``variable`` / ``column``: the signal inside the file (see :func:`read_signal`);
    * ``sampling_rate``: Hz (empty: ``sampling_rate`` argument);
    * ``record_id`` (or ``bearing_id``): unique id (default: the file name without suffix);
    * ``severity``: integer 0..3 (empty: unknown), used to stratify the record split;
    * any other column: float operating metadata (rpm, load, ...; empty = unknown/NaN). A
      file that states its speed (CWRU ``X097RPM``) fills ``rpm`` where the manifest does not.

    Args:
        manifest: the CSV file.
        out: the ``.h5`` file to write (atomically, once, at the end).
        target_rate: resample every recording to this rate (Hz). Without it all recordings
            must share one rate.
        sampling_rate: rate of rows whose ``sampling_rate`` cell is empty or absent.
        channel: signal of rows that name none: a ``.mat`` variable (``DE`` finds
            ``X097_DE_time``) or a ``.csv`` column.
        classes: class names in index order; a label outside it is an error. Default: the
            sorted unique labels.
        skip_bad: leave out bad recordings with a :class:`RecordingWarning` each (listed in
            the summary) instead of failing.
        min_length: shortest recording kept, in samples after resampling.

    Returns:
        :class:`ImportSummary`.

    Raises:
        RecordingError: naming the manifest row and file: missing/unreadable file, missing
            variable, label not in ``classes``, non-numeric metadata, no sampling rate,
            NaN/inf samples, too short (each skippable with ``skip_bad``); a missing
            ``path``/``label`` column, duplicate record ids, mixed rates without
            ``target_rate`` or nothing left to import (never skippable).

    Example:
        >>> summary = import_manifest(Path("recordings.csv"), Path("data/mine.h5"),
        ...                           sampling_rate=12000.0, classes=["healthy", "inner"])
        >>> summary.records, summary.sampling_rate
        (24, 12000.0)
    """
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    settings = {"importer": "manifest", "manifest": str(manifest.resolve()),
                "sampling_rate_default": sampling_rate, "channel": channel,
                "classes": list(classes) if classes is not None else None}
    return _import_rows(rows, out, base_dir=manifest.resolve().parent, manifest=manifest,
                        target_rate=target_rate, sampling_rate=sampling_rate, channel=channel,
                        classes=classes, skip_bad=skip_bad, min_length=min_length,
                        source=f"imported from manifest {manifest.name} ({len(rows)} rows)",
                        settings=settings)


# --------------------------------------------------------------------------------------------
# CWRU layout
# --------------------------------------------------------------------------------------------

def cwru_file_class(name: str) -> Optional[tuple[str, int]]:
    """``(10-class name, load HP)`` of a CWRU 12 kHz drive-end file name, or None.

    Official numbers (``97.mat`` … ``237.mat``, see :data:`CWRU_FILE_NUMBERS`) and the
    common renamed forms ``Normal_0.mat``, ``IR007_0.mat``, ``B014_2.mat``,
    ``OR021@6_3.mat`` (trailing digit = load) are recognised.

    Example:
        >>> cwru_file_class("105.mat"), cwru_file_class("OR021@6_3.mat")
        (('IR007', 0), ('OR021', 3))
    """
    m = _CWRU_NUMBERED.match(name)
    if m:
        return CWRU_FILE_NUMBERS.get(int(m.group(1)))
    m = _CWRU_RENAMED.match(name)
    if m:
        kind = m.group(1).upper().replace("@6", "")
        return ("normal" if kind == "NORMAL" else kind), int(m.group(2))
    return None


def _mat_variable_names(path: Path) -> Optional[dict[str, Any]]:
    """Variable names (and small scalars, for RPM) without loading the signals; None if
    the file cannot be read (the import reports it, so a listing never fails here)."""
    import scipy.io

    try:
        names = [n for n, _, _ in scipy.io.whosmat(str(path))]
        rpm = [n for n in names if n.upper().endswith("RPM")]
        values = scipy.io.loadmat(str(path), variable_names=rpm) if rpm else {}
        return {n: values.get(n) for n in names}
    except NotImplementedError:
        try:
            return dict(_mat73_variables(path))
        except RecordingError:
            return None
    except Exception:
        return None


def cwru_manifest(root: Path, label_set: str = "10class", channel: str = "DE", *,
                  skipped: Optional[list[tuple[str, str]]] = None) -> list[dict]:
    """Manifest rows for a folder of CWRU bearing data files (12 kHz drive-end set).

    Files are found under ``root`` (recursively) by name, official numbers or renamed
    forms (:func:`cwru_file_class`). Each row: ``path``, ``label``, ``variable`` (the file's
    ``X<nnn>_<channel>_time``, preferring the file's own number where a file holds two),
    ``sampling_rate`` 12000, ``record_id`` ``cwru-<class>-<load>hp``, ``severity`` (fault
    size 0.007/0.014/0.021" → 0/1/2, normal -1), ``load`` (HP) and ``rpm`` (the file's
    ``X<nnn>RPM`` when present, else the nominal 1797/1772/1750/1730 for 0–3 HP).

    Args:
        root: folder of ``.mat`` files.
        label_set: ``"10class"`` (:data:`CWRU_10CLASS`) or ``"4class"`` (:data:`CWRU_4CLASS`).
        channel: ``"DE"`` (drive end, default), ``"FE"`` (fan end) or ``"BA"`` (base).
        skipped: if given, ``(file, reason)`` is appended for every file not recognised
            (and for a second file of the same class and load).

    Returns:
        Rows sorted by class (10-class order) and load.

    Raises:
        DataError: unknown ``label_set`` or ``channel``.
        RecordingError: ``root`` is not a folder or holds no recognised file.

    Example:
        >>> rows = cwru_manifest(Path("CWRU/12k_DE"), label_set="4class")
        >>> rows[0]["label"], rows[0]["load"], rows[0]["variable"]
        ('normal', 0.0, 'X097_DE_time')
    """
    root = Path(root)
    if label_set not in CWRU_LABEL_SETS:
        raise DataError(f"unknown CWRU label set {label_set!r}; choose one of "
                        f"{', '.join(CWRU_LABEL_SETS)}.")
    channel = str(channel).upper()
    if channel not in CWRU_CHANNELS:
        raise DataError(f"unknown CWRU channel {channel!r}; choose DE (drive end), FE (fan "
                        f"end) or BA (base).")
    if not root.is_dir():
        raise RecordingError(f"{root}: not a folder; --root must be the folder of CWRU .mat "
                             f"files.")
    found: dict[tuple[str, int], Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        kind = cwru_file_class(path.name)
        if kind is None:
            if skipped is not None:
                skipped.append((str(path), "not a recognised CWRU 12 kHz drive-end file name "
                                           "(official 97-237 numbers or Normal_0, IR007_0, "
                                           "B014_2, OR021@6_3 forms)"))
            continue
        if kind in found:
            if skipped is not None:
                skipped.append((str(path), f"same class and load ({kind[0]}, {kind[1]} HP) as "
                                           f"{found[kind]}"))
            continue
        found[kind] = path
    if not found:
        raise RecordingError(f"{root}: no CWRU 12 kHz drive-end files found (looked for "
                             f"97.mat ... 237.mat or Normal_0.mat, IR007_0.mat, ... "
                             f"OR021@6_3.mat).")
    size = {"007": 0, "014": 1, "021": 2}
    coarse = {"normal": "normal", "IR": "inner_race", "B": "ball", "OR": "outer_race"}
    rows = []
    for (name, load), path in sorted(found.items(),
                                     key=lambda kv: (CWRU_10CLASS.index(kv[0][0]), kv[0][1])):
        number = _CWRU_FIRST_FILE[name] + load
        wanted = f"X{number:03d}_{channel}_time"
        variable = f"_{channel}_time"  # resolved by suffix at import when not listed here
        rpm = CWRU_NOMINAL_RPM[load]
        names = _mat_variable_names(path)
        if names:
            signal_vars = sorted(n for n in names if n.endswith(f"_{channel}_time"))
            if wanted in signal_vars:
                variable = wanted  # a file may hold two recordings: take its own
            elif len(signal_vars) == 1:
                variable = signal_vars[0]
            rpm_name = f"{variable.split('_')[0]}RPM"
            rpm_vars = sorted(n for n in names if n.upper().endswith("RPM"))
            for candidate in ([rpm_name] if rpm_name in rpm_vars else []) + rpm_vars:
                value = np.asarray(names[candidate]) if names[candidate] is not None else None
                if value is not None and value.dtype.kind in "fiu" and value.size == 1:
                    rpm = float(value.reshape(-1)[0])
                    break
        family = re.match(r"[A-Za-z]+", name).group(0)  # type: ignore[union-attr]
        rows.append({
            "path": str(path),
            "label": name if label_set == "10class" else coarse[family],
            "variable": variable,
            "sampling_rate": CWRU_SAMPLING_RATE,
            "record_id": f"cwru-{name}-{load}hp",
            "severity": -1 if name == "normal" else size[name[-3:]],
            "load": float(load),
            "rpm": rpm,
        })
    return rows


def import_cwru(root: Path, out: Path, *, label_set: str = "10class", channel: str = "DE",
                target_rate: Optional[float] = None, skip_bad: bool = False,
                min_length: int = DEFAULT_MIN_LENGTH) -> ImportSummary:
    """Import a folder of CWRU 12 kHz drive-end bearing files (see :func:`cwru_manifest`).

    Files not recognised are listed in ``summary.skipped`` (not an error). A recognised
    file without the chosen channel is a :class:`RecordingError` (or skipped with
    ``skip_bad``).

    Args:
        root: folder of the ``.mat`` files.
        out: the ``.h5`` file to write.
        label_set: ``"10class"`` or ``"4class"``; class indices follow
            :data:`CWRU_10CLASS` / :data:`CWRU_4CLASS` even when a class has no file.
        channel: ``DE``, ``FE`` or ``BA``.
        target_rate: resample from 12 kHz (e.g. to 6400 Hz), or None.
        skip_bad: skip bad files with a warning instead of failing.
        min_length: shortest recording kept, in samples.

    Returns:
        :class:`ImportSummary`.

    Raises:
        DataError, RecordingError: as :func:`cwru_manifest` and :func:`import_manifest`.

    Example:
        >>> import_cwru(Path("CWRU/12k_DE"), Path("data/cwru.h5")).line()
        'imported 40 recordings (10 classes: normal 4, IR007 4, ...) at 12000 Hz into data/cwru.h5'
    """
    root = Path(root)
    skipped: list[tuple[str, str]] = []
    rows = cwru_manifest(root, label_set, channel, skipped=skipped)
    for file, reason in skipped:
        warnings.warn(f"{file}: {reason}; not imported.", RecordingWarning, stacklevel=2)
    settings = {"importer": "cwru", "root": str(root.resolve()), "label_set": label_set,
                "channel": channel.upper()}
    return _import_rows(rows, out, base_dir=root, manifest=None, target_rate=target_rate,
                        sampling_rate=None, channel=None,
                        classes=list(CWRU_LABEL_SETS[label_set]), skip_bad=skip_bad,
                        min_length=min_length,
                        source=f"CWRU bearing data center, 12 kHz drive-end set, "
                               f"{channel.upper()} channel, {label_set} labels",
                        settings=settings, skipped=skipped)


# --------------------------------------------------------------------------------------------
# Command line: pfdtrain data import
# --------------------------------------------------------------------------------------------

def _cmd_data_import(args: argparse.Namespace) -> int:
    if args.layout == "cwru":
        if args.root is None:
            raise DataError("pfdtrain data import --layout cwru needs --root DIR (the folder "
                            "of CWRU .mat files).")
        misplaced = [flag for flag, value in (("--manifest", args.manifest),
                                              ("--classes", args.classes),
                                              ("--sampling-rate", args.sampling_rate))
                     if value is not None]
        if misplaced:
            raise DataError(f"{', '.join(misplaced)} do(es) not apply to --layout cwru (the "
                            f"layout fixes classes and rate; use --labels 10class|4class).")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = import_cwru(args.root, args.out, label_set=args.labels or "10class",
                                  channel=args.channel or "DE", target_rate=args.resample,
                                  skip_bad=args.skip_bad, min_length=args.min_length)
    else:
        if args.manifest is None:
            raise DataError("pfdtrain data import needs --manifest recordings.csv (or "
                            "--layout cwru --root DIR).")
        misplaced = [flag for flag, value in (("--root", args.root), ("--labels", args.labels))
                     if value is not None]
        if misplaced:
            raise DataError(f"{', '.join(misplaced)} only apply to --layout cwru.")
        classes = None
        if args.classes is not None:
            classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = import_manifest(args.manifest, args.out, target_rate=args.resample,
                                      sampling_rate=args.sampling_rate, channel=args.channel,
                                      classes=classes, skip_bad=args.skip_bad,
                                      min_length=args.min_length)
    # Skipped files are listed below once; other warnings (e.g. an approximated resampling
    # ratio) are printed as they came.
    for w in caught:
        message = str(w.message)
        if not (issubclass(w.category, RecordingWarning)
                and (message.startswith("skipped: ") or message.endswith("not imported."))):
            print(f"pfdtrain: warning: {message}")
    print(summary.line())
    for file, reason in summary.skipped:
        print(f"  skipped {file}: {reason}")
    return 0


def add_data_parser(subparsers: Any) -> None:
    """Add ``data`` (with sub-command ``import``) to the ``pfdtrain`` command line.

    Usage::

        pfdtrain data import --manifest recordings.csv --out data/mine.h5 [--sampling-rate HZ]
            [--resample HZ] [--channel DE] [--classes a,b,c] [--skip-bad] [--min-length N]
        pfdtrain data import --layout cwru --root DIR --out data/cwru.h5
            [--labels 10class|4class] [--channel DE|FE|BA] [--resample HZ] [--skip-bad]

    The handler (``args.func``) prints a one-line summary (and one line per skipped file)
    and returns 0; problems raise :class:`~pfdtrain.errors.PfdtrainError` subclasses.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Example:
        >>> sub = parser.add_subparsers(dest="command", required=True)
        >>> add_data_parser(sub)
    """
    data = subparsers.add_parser("data", help="dataset tools: import recordings")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser(
        "import", help="import recordings (manifest CSV or CWRU folder) into an HDF5 dataset",
        description="Import recordings into one unsplit pfdtrain dataset file; the train/val/"
                    "test split is chosen when training (data.split: record, time, group).")
    imp.add_argument("--layout", choices=["manifest", "cwru"], default="manifest",
                     help="manifest: a CSV with one row per recording (default); cwru: a "
                          "folder of Case Western Reserve bearing data files")
    imp.add_argument("--manifest", type=Path, help="manifest CSV (columns path, label, "
                     "optional variable/column, sampling_rate, record_id, metadata...)")
    imp.add_argument("--root", type=Path, help="--layout cwru: folder of the .mat files")
    imp.add_argument("--out", type=Path, required=True, help="dataset file to write (.h5)")
    imp.add_argument("--sampling-rate", type=float, metavar="HZ",
                     help="sampling rate of rows without a sampling_rate cell")
    imp.add_argument("--resample", type=float, metavar="HZ",
                     help="resample every recording to this rate")
    imp.add_argument("--channel", help="signal of rows naming none: .mat variable (e.g. DE "
                     "finds X097_DE_time) or .csv column; cwru: DE (default), FE or BA")
    imp.add_argument("--classes", help="class names in index order, comma-separated")
    imp.add_argument("--labels", choices=sorted(CWRU_LABEL_SETS),
                     help="--layout cwru: 10class (default) or 4class")
    imp.add_argument("--skip-bad", action="store_true",
                     help="skip bad recordings with a warning instead of failing")
    imp.add_argument("--min-length", type=int, default=DEFAULT_MIN_LENGTH, metavar="N",
                     help=f"shortest recording kept, in samples (default {DEFAULT_MIN_LENGTH})")
    imp.set_defaults(func=_cmd_data_import)
