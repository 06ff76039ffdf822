"""The ``cwru`` layout: a folder of Case Western Reserve University bearing data files.

The 12 kHz drive-end set (https://engineering.case.edu/bearingdatacenter), official file
numbers (``97.mat`` … ``237.mat``) or the common renamed forms (``IR007_0.mat``); see
docs/data.md §8.

Example:
    >>> import_cwru(Path("CWRU/12k_DE"), Path("data/cwru.h5")).line()
    'imported 40 recordings (10 classes: normal 4, IR007 4, ...) at 12000 Hz into data/cwru.h5'
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from pfdtrain.data.importers.core import (DEFAULT_MIN_LENGTH, ImportSummary, Layout,
                                          import_rows)
from pfdtrain.data.importers.readers import RecordingError, RecordingWarning, mat73_variables
from pfdtrain.data.records import DataError

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
            return dict(mat73_variables(path))
        except RecordingError:
            return None
    except Exception:
        return None


def cwru_manifest(root: Path, label_set: str = "10class", channel: str = "DE", *,
                  skipped: Optional[list[tuple[str, str]]] = None) -> list[dict]:
    """Manifest rows for a folder of CWRU bearing data files (12 kHz drive-end set).

    Files are found under ``root`` (recursively) by name, official numbers or renamed
    forms (:func:`cwru_file_class`). Each row: ``path`` (absolute), ``label``, ``variable``
    (the file's ``X<nnn>_<channel>_time``, preferring the file's own number where a file
    holds two),
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
            # Absolute: the import resolves relative row paths against --root, which would
            # double a relative --root (CWRU/12k_DE/CWRU/12k_DE/97.mat).
            "path": str(path.resolve()),
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
    return import_rows(rows, out, base_dir=root, manifest=None, target_rate=target_rate,
                        sampling_rate=None, channel=None,
                        classes=list(CWRU_LABEL_SETS[label_set]), skip_bad=skip_bad,
                        min_length=min_length,
                        source=f"CWRU bearing data center, 12 kHz drive-end set, "
                               f"{channel.upper()} channel, {label_set} labels",
                        settings=settings, skipped=skipped)


LAYOUT = Layout(
    name="cwru", title="CWRU bearing data center, 12 kHz drive-end set",
    summary="10 classes (normal + inner race/ball/outer race × 3 sizes) or 4; one channel "
            "(DE/FE/BA); load and rpm as metadata; 12 kHz",
    importer=import_cwru, label_sets=tuple(CWRU_LABEL_SETS), channels=CWRU_CHANNELS,
    docs_anchor="8-cwru-bearing-data")
