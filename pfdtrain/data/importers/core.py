"""The shared core of every importer: rows in, one unsplit dataset file out.

A layout (manifest CSV, CWRU folder, ...) turns its input into *rows*, one per recording
(``path``, ``label``, optional ``variable``/``column``, ``sampling_rate``, ``record_id``,
``severity`` and float metadata). :func:`import_rows` reads and checks every recording,
resamples where asked, and writes the file once at the end through an atomic writer, so a
failed import never leaves a partial file. :class:`Layout` describes a folder layout for
the registry in :mod:`pfdtrain.data.importers`.

Example:
    >>> rows = [{"path": "a.npy", "label": "healthy", "sampling_rate": 12000}]
    >>> import_rows(rows, Path("data/a.h5"), base_dir=Path("."), manifest=None,
    ...             target_rate=None, sampling_rate=None, channel=None, classes=None,
    ...             skip_bad=False, min_length=2048, source="test", settings={}).records
    1
"""

from __future__ import annotations

import dataclasses
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from pfdtrain.data.records import UNSPLIT, DataError, RecordSplit
from pfdtrain.data.importers.readers import (RecordingError, RecordingWarning, is_number,
                                             read_signal)
from pfdtrain.data.storage import write_dataset

DEFAULT_MIN_LENGTH = 2048
# Manifest columns with a meaning of their own; every other column is float metadata.
RESERVED_COLUMNS: tuple[str, ...] = ("path", "label", "variable", "column", "sampling_rate",
                                     "record_id", "bearing_id", "severity", "file_metadata")


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

    Example:
        >>> summary = import_manifest(Path("recordings.csv"), Path("data/mine.h5"))
        >>> summary.line()
        'imported 24 recordings (3 classes: healthy 8, inner 8, outer 8) at 25600 Hz into ...'
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


def _text_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> set[str]:
    """Metadata columns whose non-empty cells are all text (bearing codes): stored as text.
    A column mixing numbers and text stays numeric, so a typo such as ``15OO`` in ``rpm`` is
    reported instead of turning the whole column into text."""
    out = set()
    for col in columns:
        cells = [c for c in (row.get(col) for row in rows)
                 if c is not None and str(c).strip() != ""]
        if cells and not any(isinstance(c, (int, float)) or is_number(str(c)) for c in cells):
            out.add(col)
    return out


def _mixed_rates_error(where: Union[Path, str], by_rate: Mapping[float, list[str]]
                       ) -> RecordingError:
    listed = "; ".join(f"{r:g} Hz: {len(f)} file(s), e.g. {f[0]}" for r, f in by_rate.items())
    return RecordingError(f"{where}: recordings have different sampling rates ({listed}); every "
                          f"record of a dataset needs the same rate: resample them with "
                          f"--resample HZ (target_rate).")


def _reconcile_rate(stated: Optional[float], info: Mapping[str, Any], where: str,
                    from_manifest: bool, cell: bool) -> float:
    """The recording's rate: the one the manifest or layout states and the one the file
    states must agree; either alone is used; neither is an error."""
    file_rate = info.get("sampling_rate")
    if file_rate is None:
        if stated is None:
            raise RecordingError(
                f"{where}: no sampling rate: the file states none and the manifest gives "
                f"none; add a sampling_rate column (Hz) or pass --sampling-rate HZ.")
        return float(stated)
    if stated is None or np.isclose(stated, file_rate, rtol=1e-6, atol=0.0):
        return float(file_rate)
    said_by = info.get("sampling_rate_variable")
    if not from_manifest:
        raise RecordingError(
            f"{where}: the file states a sampling rate of {file_rate:g} Hz ('{said_by}') but "
            f"this layout's files are sampled at {stated:g} Hz; it is not a file of this set "
            f"as distributed: leave it out (--skip-bad) or import it through a manifest.")
    source = "the row's sampling_rate cell" if cell else "--sampling-rate"
    raise RecordingError(
        f"{where}: the file states a sampling rate of {file_rate:g} Hz ('{said_by}') but "
        f"{source} says {stated:g} Hz; correct {source} (or leave the cell empty to use the "
        f"file's rate), or fix the file.")


def import_rows(rows: Sequence[Mapping[str, Any]], out: Path, *, base_dir: Path,
                 manifest: Optional[Path], target_rate: Optional[float],
                 sampling_rate: Optional[float], channel: Optional[str],
                 classes: Optional[Sequence[str]], skip_bad: bool, min_length: int,
                 source: str, settings: dict,
                 skipped: Optional[list[tuple[str, str]]] = None) -> ImportSummary:
    """Read, check and write the recordings that ``rows`` describe (every importer's core).

    Args:
        rows: one mapping per recording: ``path`` (relative to ``base_dir`` or absolute),
            ``label``, optional ``variable``/``column`` (a struct path too),
            ``sampling_rate``, ``record_id``/``bearing_id``, ``severity``,
            ``file_metadata`` (``{column: struct field}`` filled from the file, e.g. MFPT's
            ``{"load": "load"}``) and metadata columns (numbers, or text in every row).
        out: the ``.h5`` file, written once at the end through an atomic writer.
        base_dir: folder of relative paths (the manifest's folder).
        manifest: the manifest file, named with the row in errors; None for a layout (a
            file stating another rate than its row is then "not of this set").
        target_rate: resample every recording to this rate; None: all must share one.
        sampling_rate: rate of rows without a ``sampling_rate`` whose file states none.
        channel: variable/column of rows naming none.
        classes: class names in index order (None: the sorted labels).
        skip_bad: leave out bad recordings with a warning (listed in ``skipped``).
        min_length: shortest recording kept, in samples after resampling.
        source: the dataset's ``source`` attribute.
        settings: stored in the file's ``generator_config`` with the per-record files/rates.
        skipped: ``(file, reason)`` already left out by the layout (listed in the summary).

    Returns:
        :class:`ImportSummary`.

    Raises:
        RecordingError: per row as described in docs/data.md §7 (skippable), or duplicate
            ids, mixed rates without ``target_rate``, nothing to import (never skippable).
    """
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
        rate: Optional[float]  # the rate the manifest (or layout) states; None: the file's
        try:
            rate = _float_cell(rate_cell)
            rate = sampling_rate if np.isnan(rate) else rate
        except (TypeError, ValueError):
            rate = float("nan")  # reported per row below (skippable)
        entries.append((row_number, row, file, rid, rate))
    ids: dict[str, tuple[int, Any]] = {}
    for row_number, _, file, rid, _ in entries:
        if rid in ids:
            other_row, other_file = ids[rid]
            raise RecordingError(f"{manifest or base_dir}: record id '{rid}' is used by row "
                                 f"{other_row} ({other_file}) and row {row_number} ({file}); "
                                 f"record ids must be unique: add a record_id column.")
        ids[rid] = (row_number, file)
    # Early, before reading any file: rates the manifest states. Rates only the files state
    # are checked the same way once read (below).
    rates = {r for *_, r in entries if r is not None and np.isfinite(r) and r > 0}
    if target_rate is None and len(rates) > 1:
        raise _mixed_rates_error(manifest or base_dir, {
            r: [str(e[2]) for e in entries if e[4] == r] for r in sorted(rates)})
    rates = set()  # from here: the rates of the records kept

    # Pass 2: read and check every recording, keep them in memory, write once at the end.
    records: list[np.ndarray] = []
    labels: list[str] = []
    kept_ids: list[str] = []
    severities: list[int] = []
    metas: list[dict[str, float]] = []
    files: dict[str, str] = {}
    original_rates: dict[str, float] = {}
    meta_columns = [c for c in (rows[0].keys() if rows else []) if c not in RESERVED_COLUMNS]
    text_columns = _text_columns(rows, meta_columns)

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
                if col in text_columns:
                    meta[col] = str(row.get(col) or "").strip()
                    continue
                try:
                    meta[col] = _float_cell(row.get(col))
                except (TypeError, ValueError):
                    raise RecordingError(
                        f"{where}: metadata column '{col}' has the non-numeric value "
                        f"{row.get(col)!r} but other rows hold numbers there; a column is "
                        f"either numbers (operating metadata such as rpm; leave a cell empty "
                        f"for unknown) or text in every row (such as a bearing code).") from None
            severity_cell = str(row.get("severity") or "").strip()
            try:
                severity = int(float(severity_cell)) if severity_cell else -1
            except ValueError:
                raise RecordingError(f"{where}: severity {severity_cell!r} is not an integer "
                                     f"(0..3, or empty for unknown).") from None
            if rate is not None and not (np.isfinite(rate) and rate > 0):
                raise RecordingError(
                    f"{where}: the sampling_rate cell {row.get('sampling_rate')!r} is not a "
                    f"rate in Hz; write a positive number (or leave it empty when the file "
                    f"states its rate).")
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
            for col, field in (row.get("file_metadata") or {}).items():
                value = (info.get("struct_fields") or {}).get(field)
                if value is not None and np.isnan(meta.get(col, float("nan"))):
                    meta[col] = float(value)  # e.g. MFPT's bearing.load
            rate = _reconcile_rate(rate, info, where, manifest is not None,
                                   row.get("sampling_rate") not in (None, ""))
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
        assert rate is not None
        rates.add(float(rate))

    if not records:
        first = f" (first: {skipped[0][1]})" if skipped else ""
        raise RecordingError(f"{manifest or base_dir}: no recording could be imported; "
                             f"{len(skipped)} skipped{first}.")
    if target_rate is None and len(rates) > 1:
        # The files stated rates the manifest did not: the same refusal as above, now that
        # they are known (nothing has been written).
        raise _mixed_rates_error(manifest or base_dir, {
            r: [files[i] for i in kept_ids if original_rates[i] == r] for r in sorted(rates)})
    final_rate = target_rate if target_rate is not None else next(iter(rates))
    class_names = list(classes) if classes is not None else sorted(set(labels))
    keys = sorted({k for m in metas for k in m})
    metadata = {k: [m.get(k, "" if k in text_columns else float("nan")) for m in metas]
                for k in keys}
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


@dataclasses.dataclass(frozen=True)
class Layout:
    """A public dataset's folder layout, as the registry :data:`pfdtrain.data.importers.LAYOUTS`
    and ``pfdtrain data import --layout NAME --root DIR`` use it.

    Args:
        name: the ``--layout`` value.
        title: the dataset's name, for help texts and the README table.
        summary: one line: what is imported (classes, channel, metadata).
        importer: ``importer(root, out, *, label_set, channel, target_rate, skip_bad,
            min_length) -> ImportSummary``.
        label_sets: accepted ``--labels`` values, the default first.
        channels: accepted ``--channel`` values, the default first.
        docs_anchor: the section of docs/data.md that describes the layout.

    Example:
        >>> LAYOUT = Layout("cwru", "CWRU 12 kHz drive-end", "10 or 4 classes, DE/FE/BA",
        ...                 import_cwru, ("10class", "4class"), ("DE", "FE", "BA"),
        ...                 "8-cwru-bearing-data")
    """

    name: str
    title: str
    summary: str
    importer: Callable[..., ImportSummary]
    label_sets: tuple[str, ...]
    channels: tuple[str, ...]
    docs_anchor: str

    def run(self, root: Path, out: Path, *, label_set: Optional[str] = None,
            channel: Optional[str] = None, target_rate: Optional[float] = None,
            skip_bad: bool = False, min_length: int = DEFAULT_MIN_LENGTH) -> ImportSummary:
        """Import ``root`` into ``out`` with the layout's defaults for unset options.

        Raises:
            DataError: ``label_set`` or ``channel`` is not one the layout accepts (the
                message lists them), or as the importer.
        """
        label_set = label_set or self.label_sets[0]
        channel = channel or self.channels[0]
        if label_set not in self.label_sets:
            raise DataError(f"--labels {label_set} does not apply to --layout {self.name}; "
                            f"choose one of {', '.join(self.label_sets)}.")
        if channel.upper() not in {c.upper() for c in self.channels}:
            raise DataError(f"--channel {channel} does not apply to --layout {self.name}; "
                            f"choose one of {', '.join(self.channels)}.")
        return self.importer(Path(root), Path(out), label_set=label_set, channel=channel,
                             target_rate=target_rate, skip_bad=skip_bad, min_length=min_length)
