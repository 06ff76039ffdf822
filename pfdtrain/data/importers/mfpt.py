"""The ``mfpt`` layout: the MFPT Society bearing fault data as distributed.

The Society for Machinery Failure Prevention Technology's fault data sets
(https://www.mfpt.org/fault-data-sets/): MATLAB files each holding a struct ``bearing``
with the signal ``gs`` (g), its sampling rate ``sr`` (Hz), the shaft rate ``rate`` (Hz)
and the ``load`` (lbs). Baselines are sampled at 97,656 Hz, the fault files at 48,828 Hz, so
a whole-set import needs ``--resample`` (refused with the fix otherwise). See
docs/data.md §9.

Example:
    >>> import_mfpt(Path("MFPT Fault Data Sets"), Path("data/mfpt.h5"),
    ...             target_rate=48828.0).line()
    'imported 20 recordings (3 classes: normal 3, inner_race 7, outer_race 10) at 48828 Hz ...'
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional

from pfdtrain.data.importers.core import (DEFAULT_MIN_LENGTH, ImportSummary, Layout,
                                          import_rows)
from pfdtrain.data.importers.readers import RecordingError, RecordingWarning
from pfdtrain.data.records import DataError

MFPT_CLASSES: tuple[str, ...] = ("normal", "inner_race", "outer_race")
MFPT_SIGNAL = "bearing.gs"
# Metadata column -> field of the file's ``bearing`` struct.
MFPT_FILE_METADATA: dict[str, str] = {"shaft_hz": "rate", "load": "load"}
_MFPT_FILE = re.compile(r"^(baseline|outerracefault|innerracefault)(_vload)?_(\d+)\.mat$",
                        re.IGNORECASE)
_MFPT_CLASS = {"baseline": "normal", "innerracefault": "inner_race",
               "outerracefault": "outer_race"}


def mfpt_file_class(name: str) -> Optional[str]:
    """The class of an MFPT file name (``baseline_1.mat``, ``OuterRaceFault_2.mat``,
    ``OuterRaceFault_vload_3.mat``, ``InnerRaceFault_vload_7.mat``), or None.

    Example:
        >>> mfpt_file_class("InnerRaceFault_vload_1.mat"), mfpt_file_class("Planetary.mat")
        ('inner_race', None)
    """
    m = _MFPT_FILE.match(name)
    return _MFPT_CLASS[m.group(1).lower()] if m else None


def mfpt_manifest(root: Path, *, skipped: Optional[list[tuple[str, str]]] = None
                  ) -> list[dict]:
    """Manifest rows for a folder of MFPT files (recursively, by file name).

    Each row: ``path`` (absolute), ``label``, ``variable`` ``bearing.gs``, ``record_id``
    ``mfpt-<file stem>``; the rate comes from the file's ``bearing.sr`` and the metadata
    ``shaft_hz`` and ``load`` from ``bearing.rate`` and ``bearing.load`` at import.

    Raises:
        RecordingError: ``root`` is not a folder or holds no recognised file.

    Example:
        >>> mfpt_manifest(Path("MFPT"))[0]["variable"]
        'bearing.gs'
    """
    root = Path(root).resolve()  # absolute: rows must not depend on the working directory
    if not root.is_dir():
        raise RecordingError(f"{root}: not a folder; --root must be the folder of the MFPT "
                             f"fault data (.mat files, any sub-folders).")
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        label = mfpt_file_class(path.name)
        if label is None:
            if skipped is not None and path.suffix.lower() == ".mat":
                skipped.append((str(path), "not an MFPT baseline or fault file name "
                                           "(baseline_N, OuterRaceFault_N, OuterRaceFault_vload_N, "
                                           "InnerRaceFault_vload_N)"))
            continue
        rows.append({"path": str(path), "label": label, "variable": MFPT_SIGNAL,
                     "record_id": f"mfpt-{path.stem}", "file_metadata": MFPT_FILE_METADATA})
    if not rows:
        raise RecordingError(f"{root}: no MFPT files found (looked for baseline_1.mat, "
                             f"OuterRaceFault_1.mat, InnerRaceFault_vload_1.mat, ...).")
    return sorted(rows, key=lambda r: (MFPT_CLASSES.index(r["label"]), r["record_id"]))


def import_mfpt(root: Path, out: Path, *, label_set: str = "3class", channel: str = "gs",
                target_rate: Optional[float] = None, skip_bad: bool = False,
                min_length: int = DEFAULT_MIN_LENGTH) -> ImportSummary:
    """Import a folder of MFPT bearing fault files (see :func:`mfpt_manifest`).

    Args:
        root: the data set's folder (relative or absolute).
        out: the ``.h5`` file to write.
        label_set: ``"3class"``: normal, inner_race, outer_race.
        channel: ``"gs"``, the one signal of the files.
        target_rate: common rate to resample to; needed when the import mixes the baselines
            (97,656 Hz) with fault files (48,828 Hz).
        skip_bad: skip bad files with a warning instead of failing.
        min_length: shortest recording kept, in samples.

    Raises:
        DataError, RecordingError: as :func:`mfpt_manifest` and
            :func:`~pfdtrain.data.importers.core.import_rows` (mixed rates without
            ``target_rate``).

    Example:
        >>> import_mfpt(Path("MFPT"), Path("data/mfpt.h5"), target_rate=48828.0).records
        20
    """
    if label_set != "3class" or str(channel).lower() != "gs":
        raise DataError(f"--layout mfpt has one label set (3class) and one channel (gs); got "
                        f"{label_set!r} and {channel!r}.")
    skipped: list[tuple[str, str]] = []
    rows = mfpt_manifest(root, skipped=skipped)
    for file, reason in skipped:
        warnings.warn(f"{file}: {reason}; not imported.", RecordingWarning, stacklevel=2)
    return import_rows(rows, out, base_dir=Path(root).resolve(), manifest=None,
                       target_rate=target_rate, sampling_rate=None, channel=None,
                       classes=list(MFPT_CLASSES), skip_bad=skip_bad, min_length=min_length,
                       source="MFPT Society bearing fault data (bearing.gs)",
                       settings={"importer": "mfpt", "root": str(Path(root).resolve())},
                       skipped=skipped)


LAYOUT = Layout(
    name="mfpt", title="MFPT Society bearing fault data",
    summary="3 classes (normal, inner race, outer race); `bearing.gs` at the file's "
            "`bearing.sr` (97,656 / 48,828 Hz: `--resample` to mix them); shaft rate and load",
    importer=import_mfpt, label_sets=("3class",), channels=("gs",),
    docs_anchor="9-mfpt-bearing-fault-data")
