"""The ``manifest`` layout: a CSV with one row per recording (docs/data.md §7).

Example:
    >>> summary = import_manifest(Path("recordings.csv"), Path("data/mine.h5"),
    ...                           target_rate=12000.0)
    >>> print(summary.line())
    imported 24 recordings (3 classes: healthy 8, inner 8, outer 8) at 12000 Hz into data/mine.h5
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

from pfdtrain.data.importers.core import (DEFAULT_MIN_LENGTH, RESERVED_COLUMNS, ImportSummary,
                                          import_rows)
from pfdtrain.data.importers.readers import RecordingError


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
    return import_rows(rows, out, base_dir=manifest.resolve().parent, manifest=manifest,
                        target_rate=target_rate, sampling_rate=sampling_rate, channel=channel,
                        classes=classes, skip_bad=skip_bad, min_length=min_length,
                        source=f"imported from manifest {manifest.name} ({len(rows)} rows)",
                        settings=settings)
