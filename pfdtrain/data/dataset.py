"""Datasets on disk (HDF5), splits that do not leak, windows and DataLoaders (docs/data.md).

One HDF5 file holds a whole dataset. Synthetic files are stored already split by *record*:
every window of a recording lives in the same split, so no part of a test recording is ever
seen in training. Imported recordings (``pfdtrain data import``) are stored *unsplit* (one
``records`` group); :func:`build_dataloaders` splits them when loading, by the strategy of
``data.split`` (record, time or group; :mod:`pfdtrain.data.splits`), and checks the result
for leakage. Records may have any length (real recordings do); each split stores its records
concatenated in one float32 array with an offsets table, so a window is a cheap view into it.

Example:
    >>> from pfdtrain.config.training_config import TrainingConfig
    >>> bundle = build_dataloaders(TrainingConfig())
    >>> x, y = next(iter(bundle.train_loader))
    >>> x.shape, y.dtype
    (torch.Size([32, 1, 6400]), torch.int64)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.errors import PfdtrainError
from pfdtrain.data.sampler import EpochShuffleSampler, ShardSampler
from pfdtrain.data.synthetic import (
    CLASS_NAMES,
    GENERATOR_VERSION,
    METADATA_FIELDS,
    generate_records,
    num_records,
)
from pfdtrain.utils.io import atomic_path
from pfdtrain.utils.logging import get_logger
from pfdtrain.utils.reproducibility import seed_worker

logger = get_logger(__name__)

FORMAT = "pfdtrain-dataset-v1"
SPLITS: tuple[str, ...] = ("train", "val", "test")
UNSPLIT = "records"  # the one group of an unsplit file (split_strategy "none")
SPLIT_STRATEGIES: tuple[str, ...] = ("record", "time", "group", "none")
NORMALIZATIONS: tuple[str, ...] = ("none", "zscore", "minmax", "rms")


class DataError(PfdtrainError, ValueError):
    """A dataset file or data setting is unusable; the message names the file and the fix."""


class DataLeakageError(DataError):
    """The same record (or the same samples of one recording) appears in more than one split
    (test results would be inflated)."""


# --------------------------------------------------------------------------------------------
# In-memory form of one split
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class RecordSplit:
    """The records of one split, stored as in the HDF5 file.

    Attributes:
        signals: float32 [total samples], all records concatenated.
        record_offsets: int64 [N+1]; record ``i`` is ``signals[offsets[i]:offsets[i+1]]``.
        labels: int64 [N] class indices.
        record_ids: N unique strings (e.g. ``syn-000123``).
        severities: int64 [N]; -1 where unknown (real recordings).
        metadata: float64 [N] arrays, one per operating variable (NaN where unknown).
        sources: N strings, the source recording each record was cut from. Defaults to
            ``record_ids`` (every record is a whole recording); a time split's pieces
            ``rec-7#train`` and ``rec-7#test`` both have source ``rec-7``.
        ranges: int64 [N, 2], the ``[start, end)`` samples of each record inside its source.
            Defaults to ``[0, length)`` (the whole recording). The leakage check uses
            sources and ranges: pieces of one recording in two splits must not overlap.
    """

    signals: np.ndarray
    record_offsets: np.ndarray
    labels: np.ndarray
    record_ids: list[str]
    severities: np.ndarray
    metadata: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    sources: Optional[list[str]] = None
    ranges: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        # Filled here (not by callers) so every existing constructor call keeps working and
        # whole recordings need no bookkeeping.
        if self.sources is None:
            self.sources = list(self.record_ids)
        else:
            self.sources = [str(x) for x in self.sources]
        if self.ranges is None:
            lengths = np.diff(np.asarray(self.record_offsets, dtype=np.int64))
            self.ranges = np.stack([np.zeros_like(lengths), lengths], axis=1).reshape(-1, 2)
        else:
            self.ranges = np.asarray(self.ranges, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Samples per record (int64 [N])."""
        return np.diff(self.record_offsets)

    @property
    def has_default_provenance(self) -> bool:
        """True when every record is a whole recording (sources = ids, ranges = [0, length)).

        Such files store no ``sources``/``ranges`` datasets, so files written before these
        fields existed keep their layout and content hash.
        """
        lengths = np.diff(np.asarray(self.record_offsets, dtype=np.int64))
        return (list(self.sources) == list(self.record_ids)
                and self.ranges.shape == (len(lengths), 2)
                and bool(np.all(self.ranges[:, 0] == 0))
                and bool(np.array_equal(self.ranges[:, 1], lengths)))

    def record(self, i: int) -> np.ndarray:
        """Record ``i`` as a view (no copy)."""
        return self.signals[self.record_offsets[i]:self.record_offsets[i + 1]]

    def subset(self, indices: Sequence[int]) -> "RecordSplit":
        """A new split holding records ``indices`` (in that order), signals copied.

        Example:
            >>> split.subset([2, 0]).record_ids
            ['r-c', 'r-a']
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        records = [self.record(int(i)) for i in idx]
        return RecordSplit.from_records(
            records, self.labels[idx], [self.record_ids[i] for i in idx], self.severities[idx],
            {k: v[idx] for k, v in self.metadata.items()},
            sources=[self.sources[i] for i in idx], ranges=self.ranges[idx])

    @classmethod
    def concat(cls, splits: Sequence["RecordSplit"]) -> "RecordSplit":
        """All records of ``splits`` in one split (e.g. to pool train/val/test and re-split).

        Metadata columns missing from some splits are NaN for their records.

        Example:
            >>> pool = RecordSplit.concat([data.splits[k] for k in ("train", "val", "test")])
        """
        parts = [s for s in splits if s is not None]
        keys = sorted({k for s in parts for k in s.metadata})
        records = [s.record(i) for s in parts for i in range(len(s))]
        meta = {k: np.concatenate([s.metadata[k] if k in s.metadata
                                   else np.full(len(s), np.nan) for s in parts]
                                  + [np.zeros(0)]) for k in keys}
        return cls.from_records(
            records, np.concatenate([s.labels for s in parts] + [np.zeros(0, np.int64)]),
            [r for s in parts for r in s.record_ids],
            np.concatenate([s.severities for s in parts] + [np.zeros(0, np.int64)]), meta,
            sources=[x for s in parts for x in s.sources],
            ranges=np.concatenate([s.ranges for s in parts] + [np.zeros((0, 2), np.int64)]))

    @classmethod
    def from_records(cls, records: Sequence[np.ndarray], labels: Sequence[int],
                     record_ids: Sequence[str], severities: Optional[Sequence[int]] = None,
                     metadata: Optional[Mapping[str, Sequence[float]]] = None, *,
                     sources: Optional[Sequence[str]] = None,
                     ranges: Optional[np.ndarray] = None) -> "RecordSplit":
        """Build a split from records of any length (e.g. imported real recordings).

        Args:
            records: 1-D arrays (stored as float32).
            labels: class index of each record.
            record_ids: unique names.
            severities: 0..3 or -1 (unknown, the default).
            metadata: ``{name: one float per record}``.
            sources: source recording of each record (default: ``record_ids``).
            ranges: ``[N, 2]`` sample range of each record in its source (default: whole).

        Example:
            >>> split = RecordSplit.from_records([np.zeros(8000), np.ones(9000)], [0, 3],
            ...                                  ["rig-a-001", "rig-a-002"])
            >>> split.lengths.tolist()
            [8000, 9000]
        """
        lengths = [int(np.asarray(r).shape[0]) for r in records]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        signals = (np.concatenate([np.asarray(r, dtype=np.float32).ravel() for r in records])
                   if records else np.zeros(0, np.float32))
        n = len(lengths)
        sev = (np.full(n, -1, np.int64) if severities is None
               else np.asarray(severities, dtype=np.int64))
        meta = {k: np.asarray(v, dtype=np.float64) for k, v in (metadata or {}).items()}
        return cls(signals, offsets, np.asarray(labels, dtype=np.int64), list(record_ids), sev,
                   meta, sources=None if sources is None else list(sources),
                   ranges=None if ranges is None else np.asarray(ranges, np.int64))


@dataclasses.dataclass
class LoadedDataset:
    """A dataset file read into memory (see :func:`read_dataset`)."""

    path: Path
    splits: dict[str, RecordSplit]
    class_names: list[str]
    sampling_rate: float
    source: str
    content_hash: str
    generator_config: Optional[dict]
    split_strategy: str = "record"  # "none": one unsplit "records" group (imported data)


# --------------------------------------------------------------------------------------------
# Hashing, writing, reading
# --------------------------------------------------------------------------------------------

def _split_names(splits: Mapping[str, Any]) -> tuple[str, ...]:
    """The group names a file with these splits stores: ``records`` (unsplit) or SPLITS."""
    return (UNSPLIT,) if UNSPLIT in splits else SPLITS


def content_hash(splits: Mapping[str, RecordSplit], class_names: Sequence[str],
                 sampling_rate: float) -> str:
    """sha256 (hex) over every stored array, the record ids, class names and sampling rate.

    The arrays are hashed in a fixed order with their dtype and shape in canonical
    little-endian form, so the same data gives the same hash on any machine. An unsplit
    dataset (``{"records": split}``) hashes its one group; ``sources``/``ranges`` enter the
    hash only where they differ from the defaults, so older files keep their hash.
    """
    h = hashlib.sha256()

    def add(name: str, arr: np.ndarray, dtype: str) -> None:
        arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())

    for split_name in _split_names(splits):
        split = splits[split_name]
        add(f"{split_name}/signals", split.signals, "<f4")
        add(f"{split_name}/record_offsets", split.record_offsets, "<i8")
        add(f"{split_name}/labels", split.labels, "<i8")
        add(f"{split_name}/severities", split.severities, "<i8")
        h.update(f"{split_name}/record_ids|".encode() + json.dumps(list(split.record_ids)).encode())
        for key in sorted(split.metadata):
            add(f"{split_name}/metadata/{key}", split.metadata[key], "<f8")
        if not split.has_default_provenance:
            h.update(f"{split_name}/sources|".encode() + json.dumps(list(split.sources)).encode())
            add(f"{split_name}/ranges", split.ranges, "<i8")
    h.update(json.dumps(list(class_names)).encode())
    h.update(repr(float(sampling_rate)).encode())
    return h.hexdigest()


def _validate_split(name: str, split: RecordSplit, where: str) -> None:
    n = len(split)
    off = np.asarray(split.record_offsets)
    problems = []
    if off.shape != (n + 1,):
        problems.append(f"record_offsets has shape {off.shape}, expected ({n + 1},)")
    elif off[0] != 0 or off[-1] != split.signals.shape[0] or np.any(np.diff(off) < 0):
        problems.append("record_offsets must start at 0, never decrease and end at len(signals)")
    if len(split.record_ids) != n or split.severities.shape != (n,):
        problems.append("record_ids/severities do not have one entry per record")
    for key, arr in split.metadata.items():
        if arr.shape != (n,):
            problems.append(f"metadata/{key} has shape {arr.shape}, expected ({n},)")
    if len(split.sources) != n or split.ranges.shape != (n, 2):
        problems.append("sources/ranges do not have one entry per record")
    elif off.shape == (n + 1,) and not np.array_equal(split.ranges[:, 1] - split.ranges[:, 0],
                                                       np.diff(off)):
        problems.append("ranges (end - start) do not match the record lengths")
    if problems:
        raise DataError(f"{where}: split '{name}' is malformed: {'; '.join(problems)}. "
                        f"Rewrite the file with pfdtrain.data.dataset.write_dataset.")


def write_dataset(path: Union[str, Path], splits: Mapping[str, RecordSplit], *,
                  class_names: Sequence[str], sampling_rate: float, source: str,
                  generator_config: Optional[dict] = None,
                  split_strategy: Optional[str] = None) -> str:
    """Write a dataset file atomically (temp file in the same folder, then ``os.replace``).

    An interrupted write never leaves a partial file under ``path``, and concurrent writers
    of the same file (e.g. several processes of one job) each replace it with a complete one.

    Args:
        path: destination ``.h5`` file; its folder is created.
        splits: ``{"train": ..., "val": ..., "test": ...}``; a missing split is written empty.
            With ``split_strategy="none"``: ``{"records": ...}``, all records unsplit.
        class_names: name of every class index.
        sampling_rate: samples per second of every record.
        source: ``"synthetic"`` or a description of the real data's origin.
        generator_config: settings that produced the data (stored as JSON), or None.
        split_strategy: ``"record"``, ``"time"`` or ``"group"`` for a file stored split
            that way, ``"none"`` for an unsplit file that :func:`build_dataloaders` splits by
            ``data.split`` when loading. Default: ``"none"`` when ``splits`` has a
            ``records`` entry, else ``"record"`` (so ``read_dataset`` → ``write_dataset``
            round-trips either kind).

    Returns:
        The content hash stored in the file.

    Raises:
        DataError: malformed split, unknown split name or strategy.

    Example:
        >>> split = RecordSplit.from_records([np.zeros(8000)], [0], ["rig-a-001"])
        >>> write_dataset("rig.h5", {"train": split}, class_names=CLASS_NAMES,
        ...               sampling_rate=6400.0, source="test rig A")  # doctest: +SKIP
        >>> write_dataset("mine.h5", {"records": split}, class_names=["normal"],
        ...               sampling_rate=12000.0, source="my rig",
        ...               split_strategy="none")  # doctest: +SKIP
    """
    path = Path(path)
    if split_strategy is None:
        split_strategy = "none" if UNSPLIT in splits else "record"
    if split_strategy not in SPLIT_STRATEGIES:
        raise DataError(f"{path}: unknown split_strategy {split_strategy!r}; choose one of "
                        f"{SPLIT_STRATEGIES}.")
    names = (UNSPLIT,) if split_strategy == "none" else SPLITS
    unknown = sorted(set(splits) - set(names))
    if unknown:
        raise DataError(f"{path}: split name(s) {unknown} are not stored with split_strategy "
                        f"{split_strategy!r}; use {list(names)}.")
    empty = RecordSplit.from_records([], [], [])
    full = {name: splits[name] if splits.get(name) is not None else empty for name in names}
    for name, split in full.items():
        _validate_split(name, split, str(path))
    digest = content_hash(full, class_names, sampling_rate)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["class_names"] = json.dumps(list(class_names))
            f.attrs["sampling_rate"] = float(sampling_rate)
            f.attrs["source"] = source
            f.attrs["generator_config"] = json.dumps(generator_config, sort_keys=True)
            f.attrs["split_strategy"] = split_strategy
            f.attrs["content_hash"] = digest
            for name, split in full.items():
                g = f.create_group(name)
                g.create_dataset("signals", data=np.asarray(split.signals, dtype="<f4"))
                g.create_dataset("record_offsets", data=np.asarray(split.record_offsets, "<i8"))
                g.create_dataset("labels", data=np.asarray(split.labels, dtype="<i8"))
                g.create_dataset("record_ids", data=np.array(split.record_ids, dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
                g.create_dataset("severities", data=np.asarray(split.severities, dtype="<i8"))
                meta = g.create_group("metadata")
                for key, values in split.metadata.items():
                    meta.create_dataset(key, data=np.asarray(values, dtype="<f8"))
                if not split.has_default_provenance:  # pieces of recordings (e.g. time split)
                    g.create_dataset("sources", data=np.array(split.sources, dtype=object),
                                     dtype=h5py.string_dtype("utf-8"))
                    g.create_dataset("ranges", data=np.asarray(split.ranges, dtype="<i8"))
    return digest


def _missing_file_error(path: Path) -> DataError:
    return DataError(f"dataset file {path} does not exist. Set data.source to 'synthetic' to "
                     f"use the built-in generator, or to the path of an .h5 file written by "
                     f"pfdtrain.data.dataset.write_dataset.")


def read_dataset(path: Union[str, Path], verify_hash: bool = True) -> LoadedDataset:
    """Read a dataset file into memory and check its format and structure.

    Args:
        path: an ``.h5`` file in the ``pfdtrain-dataset-v1`` layout.
        verify_hash: recompute the content hash and compare it with the stored one.

    Returns:
        The :class:`LoadedDataset`. A split file gives ``splits`` = train/val/test; an
        unsplit file (``split_strategy == "none"``, e.g. imported recordings) gives
        ``{"records": ...}``.

    Raises:
        DataError: missing file, not HDF5, wrong format, malformed split or hash mismatch.

    Example:
        >>> data = read_dataset("data/synthetic-0123456789ab.h5")  # doctest: +SKIP
        >>> len(data.splits["train"]), data.sampling_rate
        (352, 6400.0)
    """
    path = Path(path)
    if not path.is_file():
        raise _missing_file_error(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}). Regenerate it (delete "
                        f"it if it is a synthetic cache) or point data.source at a valid "
                        f"file.") from None
    with f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise DataError(f"{path} is not a pfdtrain dataset (format attribute {fmt!r}, "
                            f"expected {FORMAT!r}). Convert the recordings with "
                            f"pfdtrain.data.dataset.write_dataset.")
        try:
            class_names = list(json.loads(f.attrs["class_names"]))
            sampling_rate = float(f.attrs["sampling_rate"])
            stored_hash = str(f.attrs["content_hash"])
            source = str(f.attrs.get("source", ""))
            generator_config = json.loads(f.attrs.get("generator_config", "null"))
            strategy = str(f.attrs.get("split_strategy", "record"))
            splits = {name: _read_split(f[name])
                      for name in ((UNSPLIT,) if strategy == "none" else SPLITS)}
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path} is incomplete or damaged ({exc}); every split needs "
                            f"signals, record_offsets, labels, record_ids and severities. "
                            f"Rewrite it with pfdtrain.data.dataset.write_dataset.") from None
    for name, split in splits.items():
        _validate_split(name, split, str(path))
        if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(class_names)):
            raise DataError(f"{path}: split '{name}' has labels outside 0..{len(class_names) - 1} "
                            f"(class_names has {len(class_names)} entries).")
    data = LoadedDataset(path, splits, class_names, sampling_rate, source, stored_hash,
                         generator_config, strategy)
    if verify_hash:
        verify_content_hash(data)
    return data


def _read_split(g: h5py.Group) -> RecordSplit:
    meta = g.get("metadata")
    return RecordSplit(
        signals=g["signals"][()].astype(np.float32, copy=False),
        record_offsets=g["record_offsets"][()].astype(np.int64, copy=False),
        labels=g["labels"][()].astype(np.int64, copy=False),
        record_ids=[str(s) for s in g["record_ids"].asstr()[()]],
        severities=g["severities"][()].astype(np.int64, copy=False),
        metadata={k: meta[k][()].astype(np.float64, copy=False)
                  for k in meta} if meta is not None else {},
        sources=[str(s) for s in g["sources"].asstr()[()]] if "sources" in g else None,
        ranges=g["ranges"][()].astype(np.int64, copy=False) if "ranges" in g else None,
    )


def verify_content_hash(data: LoadedDataset) -> None:
    """Raise DataError when the arrays no longer match the file's stored content hash."""
    actual = content_hash(data.splits, data.class_names, data.sampling_rate)
    if actual != data.content_hash:
        raise DataError(f"{data.path}: content hash mismatch (stored {data.content_hash[:12]}, "
                        f"computed {actual[:12]}): the file was modified after it was written. "
                        f"Regenerate it, or rewrite it with pfdtrain.data.dataset.write_dataset.")


# --------------------------------------------------------------------------------------------
# Splitting and leakage
# --------------------------------------------------------------------------------------------

def _round_half_up(x: float) -> int:
    # Python's round() rounds 0.5 to even (round(2.5) == 2); counts should not depend on parity.
    return int(np.floor(x + 0.5 + 1e-9))


def stratified_record_split(labels: np.ndarray, severities: np.ndarray, val_fraction: float,
                            test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Split record indices per (class × severity) cell; deterministic from ``seed``.

    Each cell is shuffled with its own generator ``default_rng([seed, class, severity + 1])``
    and gives ``round(frac × cell size)`` records (halves round up) to val and test. Every
    cell keeps at least one train record: when the rounded counts would leave none (tiny
    cells), the larger of the two counts is reduced one at a time (the test count on a tie).
    So a 1-record cell is train only, and with the default fractions (0.15) a cell needs 4
    records before it gives one record to val and one to test.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``, each sorted ascending.

    Example:
        >>> parts = stratified_record_split(np.arange(44) % 11, (np.arange(44) // 11) % 4,
        ...                                 0.15, 0.15, seed=0)
        >>> {k: len(v) for k, v in parts.items()}
        {'train': 44, 'val': 0, 'test': 0}
    """
    labels = np.asarray(labels)
    severities = np.asarray(severities)
    out: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    cells = sorted(set(zip(labels.tolist(), severities.tolist())))
    for label, severity in cells:
        members = np.flatnonzero((labels == label) & (severities == severity))
        rng = np.random.default_rng([seed, label, severity + 1])  # severity -1 = unknown
        perm = rng.permutation(members)
        n = members.size
        n_val, n_test = _round_half_up(val_fraction * n), _round_half_up(test_fraction * n)
        while n_val + n_test > n - 1:  # keep one train record: trim the larger, test on a tie
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        out["val"].append(perm[:n_val])
        out["test"].append(perm[n_val:n_val + n_test])
        out["train"].append(perm[n_val + n_test:])
    return {name: np.sort(np.concatenate(parts)).astype(np.int64) if parts
            else np.zeros(0, np.int64) for name, parts in out.items()}


def _leakage_views(path_or_splits: Union[str, Path, LoadedDataset, Mapping[str, Any]]
                   ) -> tuple[str, dict[str, tuple[list[str], list[str], Optional[np.ndarray]]]]:
    """``(where, {split: (record ids, sources, ranges or None)})`` from any accepted input."""
    if isinstance(path_or_splits, (str, os.PathLike)):
        path = Path(path_or_splits)
        if not path.is_file():
            raise _missing_file_error(path)
        views = {}
        try:
            with h5py.File(path, "r") as f:
                for name in (*SPLITS, UNSPLIT):
                    if name not in f:
                        continue
                    g = f[name]
                    ids = [str(s) for s in g["record_ids"].asstr()[()]]
                    if "sources" in g:
                        views[name] = (ids, [str(s) for s in g["sources"].asstr()[()]],
                                       g["ranges"][()].astype(np.int64))
                    else:
                        lengths = np.diff(g["record_offsets"][()].astype(np.int64))
                        views[name] = (ids, ids, np.stack([np.zeros_like(lengths), lengths], 1))
        except (OSError, KeyError) as exc:
            raise DataError(f"cannot read the record ids of {path} ({exc}).") from None
        return f" of {path}", views
    if isinstance(path_or_splits, LoadedDataset):
        where, splits = f" of {path_or_splits.path}", path_or_splits.splits
    else:
        where, splits = "", path_or_splits
    views = {}
    for name, s in splits.items():
        if s is None:
            continue
        if isinstance(s, RecordSplit):
            views[name] = (list(s.record_ids), list(s.sources), s.ranges)
        else:  # plain ids: whole recordings, so any shared id overlaps completely
            ids = [str(x) for x in s]
            views[name] = (ids, ids, None)
    return where, views


def check_no_leakage(path_or_splits: Union[str, Path, LoadedDataset, Mapping[str, Any]], *,
                     strategy: Optional[str] = None, min_gap: int = 0) -> None:
    """Refuse splits that share a record, or samples of one recording.

    Two checks, for every split strategy:

    1. No record id appears in more than one split.
    2. Per source recording (``RecordSplit.sources``): with ``strategy`` ``"record"`` or
       ``"group"`` a recording may appear in one split only. Otherwise (``"time"``, or None
       for "whatever the data says") pieces of one recording may sit in several splits, but
       the sample ranges of pieces in different splits must not overlap and must be at least
       ``min_gap`` samples apart. Whole recordings (the default ranges) always overlap, so
       for record-level data check 2 is the same as check 1.

    Args:
        path_or_splits: a dataset file, a :class:`LoadedDataset`, or a mapping from split
            name to a :class:`RecordSplit` or to a sequence of record ids.
        strategy: the split strategy that produced the splits (``record``, ``time``,
            ``group``), or None.
        min_gap: samples that must separate pieces of one recording in different splits
            (the time split's ``split_gap``).

    Raises:
        DataLeakageError: naming the leaking record ids or recordings (up to 10), their splits
            (and for pieces their sample ranges) and the count.

    Example:
        >>> try:
        ...     check_no_leakage({"train": ["a", "b"], "test": ["b"]})
        ... except DataLeakageError as exc:
        ...     print(str(exc)[:60])
        1 record id(s) appear in more than one split: b (train/test)
    """
    where, views = _leakage_views(path_or_splits)
    seen: dict[str, list[str]] = {}
    for name, (ids, _, _) in views.items():
        for rid in set(ids):
            seen.setdefault(rid, []).append(name)
    leaks = sorted((rid, where_) for rid, where_ in seen.items() if len(where_) > 1)
    if leaks:
        shown = ", ".join(f"{rid} ({'/'.join(s)})" for rid, s in leaks[:10])
        more = f" and {len(leaks) - 10} more" if len(leaks) > 10 else ""
        raise DataLeakageError(
            f"{len(leaks)} record id(s) appear in more than one split{where}: {shown}{more}. "
            f"Windows of one recording in two splits inflate validation/test accuracy; rebuild "
            f"the file with a record-level split (delete it if it is a synthetic cache).")

    # Check 2: per source recording, the pieces each split holds.
    pieces: dict[str, list[tuple[str, Optional[int], Optional[int]]]] = {}
    for name, (_, sources, ranges) in views.items():
        for i, src in enumerate(sources):
            start, end = (None, None) if ranges is None else (int(ranges[i, 0]),
                                                              int(ranges[i, 1]))
            pieces.setdefault(src, []).append((name, start, end))
    whole = strategy in ("record", "group")
    problems: list[str] = []
    leaking: set[str] = set()
    for src in sorted(pieces):
        parts = pieces[src]
        if len({p[0] for p in parts}) < 2:
            continue
        if whole:
            problems.append(f"{src} ({'/'.join(sorted({p[0] for p in parts}))})")
            leaking.add(src)
            continue
        for a in range(len(parts)):
            for b in range(a + 1, len(parts)):
                (sa, a0, a1), (sb, b0, b1) = parts[a], parts[b]
                if sa == sb:
                    continue
                if a0 is None or b0 is None:
                    distance = -1  # unknown ranges: whole recordings, they overlap
                else:
                    distance = max(a0, b0) - min(a1, b1)  # < 0: overlap, else the gap
                if distance < min_gap:
                    what = ("overlap" if distance < 0 else
                            f"only {distance} samples apart, the gap must be >= {min_gap}")
                    ra = "" if a0 is None else f" [{a0}, {a1})"
                    rb = "" if b0 is None else f" [{b0}, {b1})"
                    problems.append(f"{src} ({sa}{ra} / {sb}{rb}: {what})")
                    leaking.add(src)
    if problems:
        shown = ", ".join(problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        rule = ("each recording must stay in one split" if whole else
                "pieces of one recording in different splits must not share samples"
                + (f" and must be at least {min_gap} samples apart" if min_gap else ""))
        raise DataLeakageError(
            f"{len(leaking)} source recording(s) leak across splits{where}"
            f"{f' ({strategy} split)' if strategy else ''}: {shown}{more}; {rule}. Shared "
            f"samples inflate validation/test accuracy; rebuild the splits with "
            f"pfdtrain.data.splits.make_splits.")


# --------------------------------------------------------------------------------------------
# Synthetic dataset cache
# --------------------------------------------------------------------------------------------

def synthetic_cache_key(config: TrainingConfig) -> dict:
    """Everything that determines the synthetic file's content (stored as generator_config)."""
    return {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "synthetic": dataclasses.asdict(config.synthetic),
        "split": {"strategy": "record, stratified by class x severity",
                  "val_fraction": config.data.val_fraction,
                  "test_fraction": config.data.test_fraction,
                  "seed": config.synthetic.seed},
    }


def synthetic_dataset_path(config: TrainingConfig) -> Path:
    """``<data.cache_dir>/synthetic-<12 hex>.h5``; the hex is a hash of the cache key."""
    key = json.dumps(synthetic_cache_key(config), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(config.data.cache_dir) / f"synthetic-{digest}.h5"


def _generate_synthetic(config: TrainingConfig, path: Path) -> LoadedDataset:
    key = synthetic_cache_key(config)
    cfg = config.synthetic
    start = time.perf_counter()
    data = generate_records(cfg)
    parts = stratified_record_split(data["labels"], data["severities"], config.data.val_fraction,
                                    config.data.test_fraction, seed=cfg.seed)
    n_samples = data["signals"].shape[1]
    splits = {}
    for name, idx in parts.items():
        splits[name] = RecordSplit(
            signals=np.ascontiguousarray(data["signals"][idx]).reshape(-1),
            record_offsets=np.arange(idx.size + 1, dtype=np.int64) * n_samples,
            labels=data["labels"][idx],
            record_ids=[str(r) for r in data["record_ids"][idx]],
            severities=data["severities"][idx],
            metadata={k: data[k][idx] for k in METADATA_FIELDS},
        )
    digest = write_dataset(path, splits, class_names=CLASS_NAMES,
                           sampling_rate=float(cfg.sampling_rate), source="synthetic",
                           generator_config=key)
    elapsed = time.perf_counter() - start
    logger.info("generated synthetic dataset %s: %d records (%s) in %.1f s", path,
                num_records(cfg), ", ".join(f"{k} {len(v)}" for k, v in parts.items()), elapsed)
    return LoadedDataset(path, splits, list(CLASS_NAMES), float(cfg.sampling_rate), "synthetic",
                         digest, json.loads(json.dumps(key, sort_keys=True)))


def _ensure_synthetic(config: TrainingConfig) -> LoadedDataset:
    path = synthetic_dataset_path(config)
    key = json.loads(json.dumps(synthetic_cache_key(config), sort_keys=True))
    if path.exists():
        try:
            data = read_dataset(path, verify_hash=True)
            if data.generator_config == key:
                logger.info("reusing synthetic dataset %s", path)
                return data
            reason = "its stored generator config differs from this run's"
        except DataError as exc:
            reason = str(exc)
        logger.warning("regenerating %s: %s", path, reason)
    return _generate_synthetic(config, path)


def ensure_synthetic_dataset(config: TrainingConfig) -> Path:
    """Return the synthetic dataset file for ``config``, generating it on first use.

    The file name hashes the generator settings, the generator version and the split
    settings, so a changed config gets a new file and never a stale one. An existing file is
    reused as is unless it cannot be read, fails its content hash or stores a different
    generator config; then it is regenerated. Writing is atomic (temp file + ``os.replace``).

    Args:
        config: uses ``config.synthetic``, ``data.cache_dir``, ``data.val_fraction`` and
            ``data.test_fraction`` (the split seed is ``synthetic.seed``).

    Returns:
        Path of the ``.h5`` file.

    Example:
        >>> ensure_synthetic_dataset(TrainingConfig())  # doctest: +SKIP
        PosixPath('data/synthetic-3f9c1a2b7d4e.h5')
    """
    return _ensure_synthetic(config).path


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------

def normalize_window(x: np.ndarray, method: str) -> np.ndarray:
    """Per-window normalisation; returns a new float32 array (never a view of ``x``).

    ``zscore``: zero mean, unit std. ``minmax``: mapped to [0, 1]. ``rms``: divided by its
    RMS (no centring). A constant window (zero std/range/RMS) is not divided, so it maps to
    zeros (zscore, minmax) or stays as is (rms) instead of NaN/inf.
    """
    if method == "none":
        return np.array(x, dtype=np.float32)
    x64 = np.asarray(x, dtype=np.float64)  # float64 stats: exact zero spread for flat windows
    if method == "zscore":
        std = x64.std()
        out = (x64 - x64.mean()) / (std if std > 1e-12 else 1.0)
    elif method == "minmax":
        lo, hi = x64.min(), x64.max()
        out = (x64 - lo) / ((hi - lo) if hi - lo > 1e-12 else 1.0)
    elif method == "rms":
        rms = np.sqrt(np.mean(x64 * x64))
        out = x64 / (rms if rms > 1e-12 else 1.0)
    else:
        raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    return out.astype(np.float32)


class WindowDataset(Dataset):
    """Fixed-length windows cut inside records (never across two records).

    Record ``r`` of length ``n`` gives ``(n - window_length) // window_stride + 1`` windows
    starting at ``0, stride, 2·stride, ...``; samples after the last full window are unused.

    Args:
        signals: float32 1-D array, all records concatenated (kept, not copied).
        record_offsets: int64 [N+1] record boundaries in ``signals``.
        labels: int64 [N] class of each record.
        window_length: samples per window.
        window_stride: hop between window starts.
        normalization: ``none``, ``zscore``, ``minmax`` or ``rms`` (per window).
        record_ids: names of the records (for error messages and later voting).
        metadata: per-record operating variables (``{name: float [N]}``); when given, items
            are ``(x, y, {name: float32 scalar tensor})`` for physics-informed training.
        snr_db: add white Gaussian noise at this signal-to-noise ratio (relative to each raw
            window's power, before normalisation), for robustness tests; None = clean.
        noise_seed: seed of that noise; window ``i`` always gets the same noise.

    Attributes:
        labels: int64 [num_windows] class of each window.
        window_record: int64 [num_windows] index of the record each window comes from.
        window_starts: int64 [num_windows] start sample of each window in ``signals``.
        num_windows: number of windows.

    Raises:
        ValueError: a record is shorter than one window (names the record and both lengths).

    Example:
        >>> ds = WindowDataset.from_split(split, window_length=6400, window_stride=3200)
        >>> x, y = ds[0]
        >>> x.shape, y.dtype
        (torch.Size([1, 6400]), torch.int64)
    """

    def __init__(self, signals: np.ndarray, record_offsets: np.ndarray, labels: np.ndarray,
                 window_length: int, window_stride: int, normalization: str = "zscore",
                 record_ids: Optional[Sequence[str]] = None,
                 metadata: Optional[Mapping[str, np.ndarray]] = None,
                 snr_db: Optional[float] = None, noise_seed: int = 0) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of "
                             f"{NORMALIZATIONS}")
        if window_length < 1 or window_stride < 1:
            raise ValueError(f"window_length ({window_length}) and window_stride "
                             f"({window_stride}) must be >= 1")
        self.signals = np.ascontiguousarray(signals, dtype=np.float32)
        self.record_offsets = np.asarray(record_offsets, dtype=np.int64)
        self.record_labels = np.asarray(labels, dtype=np.int64)
        n = self.record_labels.shape[0]
        self.record_ids = (list(record_ids) if record_ids is not None
                           else [f"#{i}" for i in range(n)])
        self.window_length = int(window_length)
        self.window_stride = int(window_stride)
        self.normalization = normalization

        lengths = np.diff(self.record_offsets)
        short = np.flatnonzero(lengths < self.window_length)
        if short.size:
            i = int(short[0])
            raise ValueError(f"record {self.record_ids[i]} has {int(lengths[i])} samples, fewer "
                             f"than one window of {self.window_length} samples "
                             f"({short.size} record(s) too short); use a shorter window_length")
        counts = (lengths - self.window_length) // self.window_stride + 1
        # Vectorised window table: record of each window and its position inside the record.
        self.window_record = np.repeat(np.arange(n, dtype=np.int64), counts)
        first = np.cumsum(counts) - counts
        position = np.arange(self.window_record.size, dtype=np.int64) - np.repeat(first, counts)
        self.window_starts = (self.record_offsets[:-1][self.window_record]
                              + position * self.window_stride)
        self.labels = self.record_labels[self.window_record]
        self.num_windows = int(self.window_record.size)
        self.metadata = ({k: np.asarray(v, dtype=np.float32) for k, v in metadata.items()}
                         if metadata is not None else None)
        self.snr_db = snr_db
        self.noise_seed = int(noise_seed)

    def with_noise(self, snr_db: Optional[float], noise_seed: int = 0) -> "WindowDataset":
        """The same windows (arrays shared, not copied) with white noise at ``snr_db``.

        Example:
            >>> noisy = test_ds.with_noise(10.0)   # every window at 10 dB SNR
        """
        noisy = copy.copy(self)
        noisy.snr_db, noisy.noise_seed = snr_db, int(noise_seed)
        return noisy

    @classmethod
    def from_split(cls, split: RecordSplit, window_length: int, window_stride: int,
                   normalization: str = "zscore", with_metadata: bool = False
                   ) -> "WindowDataset":
        """Windows of one :class:`RecordSplit` (with its operating metadata if asked)."""
        return cls(split.signals, split.record_offsets, split.labels, window_length,
                   window_stride, normalization, record_ids=split.record_ids,
                   metadata=split.metadata if with_metadata else None)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> tuple:
        index = int(index)
        if index < 0:
            index += self.num_windows
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} out of range 0..{self.num_windows - 1}")
        start = int(self.window_starts[index])
        view = self.signals[start:start + self.window_length]  # a view: no dataset copy
        if self.snr_db is not None:
            rng = np.random.default_rng([self.noise_seed, index])
            # Power of the vibration (variance): a DC offset carries no fault information.
            noise_rms = np.sqrt(np.var(view, dtype=np.float64) / 10 ** (self.snr_db / 10))
            view = view + rng.normal(0.0, noise_rms, view.shape).astype(np.float32)
        x = normalize_window(view, self.normalization)  # one window-sized copy
        item = (torch.from_numpy(x).unsqueeze(0),
                torch.tensor(int(self.labels[index]), dtype=torch.int64))
        if self.metadata is None:
            return item
        record = int(self.window_record[index])
        return (*item, {k: torch.tensor(v[record]) for k, v in self.metadata.items()})


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DataBundle:
    """What the trainer needs from the data layer.

    Attributes:
        train_loader: shuffled by an :class:`EpochShuffleSampler` (call
            ``train_loader.sampler.set_epoch(epoch)`` every epoch).
        val_loader: sequential; None when the val split is empty.
        test_loader: sequential; None when the test split is empty.
        class_names: name of every class index.
        sampling_rate: samples per second.
        content_hash: sha256 of the dataset file's content (identifies the data in runs).
        path: the dataset file.
        input_length: samples per window (model input length).
        num_classes: ``len(class_names)``.
        split_info: how the splits were made (JSON-able; see
            :func:`pfdtrain.data.splits.make_splits`): strategy, parameters, per-split record
            counts, ids and (time split) source sample ranges. Stored with checkpoints and
            test metrics so a result names the exact split it was measured on.
    """

    train_loader: DataLoader
    val_loader: Optional[DataLoader]
    test_loader: Optional[DataLoader]
    class_names: list[str]
    sampling_rate: float
    content_hash: str
    path: Path
    input_length: int
    num_classes: int
    split_info: dict = dataclasses.field(default_factory=dict)


def _check_window_length(data: LoadedDataset, splits: Mapping[str, RecordSplit],
                         config: TrainingConfig) -> None:
    window = config.data.window_length
    shortest, shortest_id = None, None
    for split in splits.values():
        if len(split):
            i = int(np.argmin(split.lengths))
            if shortest is None or split.lengths[i] < shortest:
                shortest, shortest_id = int(split.lengths[i]), split.record_ids[i]
    if shortest is not None and window > shortest:
        fix = f"set data.window_length <= {shortest} (e.g. data.window_length={shortest})"
        if config.data.source == "synthetic":
            fix += (f" or make the records longer (synthetic.record_duration >= "
                    f"{window / data.sampling_rate:g})")
        raise DataError(f"data.window_length = {window} is longer than the shortest record "
                        f"({shortest_id}: {shortest} samples) in {data.path}; {fix}.")


def build_dataloaders(config: TrainingConfig, with_metadata: bool = False,
                      num_replicas: int = 1, rank: int = 0) -> DataBundle:
    """Load (or generate) the dataset, check it, and build the train/val/test loaders.

    Args:
        config: ``data.source`` is ``"synthetic"`` (cached generated dataset, see
            :func:`ensure_synthetic_dataset`) or the path of an ``.h5`` file in this layout.
            Uses the window, normalisation, batch and worker settings of ``config.data`` and
            ``config.seed`` for the training order. ``data.split`` (record, time, group)
            splits an unsplit file; a stored split is kept for ``record`` and re-split for
            ``time``/``group`` (:func:`pfdtrain.data.splits.resolve_splits`).
        with_metadata: batches carry a third element, the records' operating metadata
            ``{name: float32 [B]}`` (speed_hz, load, ...), for physics-informed training.
        num_replicas: DDP world size; each process then loads its shard of every split.
        rank: this process's rank.

    Returns:
        A :class:`DataBundle`; batches are ``(inputs float32 [B, 1, L], targets int64 [B])``.

    Raises:
        DataError: missing/invalid file, empty train split, window longer than a record,
            unusable split settings (e.g. a ``data.test_groups`` value no record has).
        DataLeakageError: a record, or samples of one recording, in more than one split.

    Example:
        >>> bundle = build_dataloaders(TrainingConfig())
        >>> for epoch in range(3):
        ...     bundle.train_loader.sampler.set_epoch(epoch)
        ...     for inputs, targets in bundle.train_loader:
        ...         ...
    """
    from pfdtrain.data.splits import resolve_splits  # splits.py imports this module

    dc = config.data
    if dc.source == "synthetic":
        data = _ensure_synthetic(config)
    else:
        data = read_dataset(dc.source, verify_hash=False)
    # Leakage first (the more specific problem), then integrity; every time, so training
    # refuses to start on a leaking file whatever produced it.
    check_no_leakage(data)
    verify_content_hash(data)
    # Unsplit (imported) files are split here; stored splits are kept for data.split=record
    # and pooled and re-split for time/group. The result is checked again under the rules of
    # the strategy that made it (a time split's pieces must keep the gap).
    splits, split_info = resolve_splits(data, config)
    check_no_leakage(splits, strategy=split_info["strategy"],
                     min_gap=int(split_info.get("split_gap") or 0))
    if len(splits["train"]) == 0:
        raise DataError(f"{data.path} has no training records; lower data.val_fraction/"
                        f"data.test_fraction or add records.")
    _check_window_length(data, splits, config)

    def dataset(name: str) -> WindowDataset:
        return WindowDataset.from_split(splits[name], dc.window_length, dc.window_stride,
                                        dc.normalization, with_metadata=with_metadata)

    pin = torch.cuda.is_available()
    common: dict[str, Any] = dict(batch_size=dc.batch_size, num_workers=dc.num_workers,
                                  worker_init_fn=seed_worker, pin_memory=pin,
                                  persistent_workers=dc.num_workers > 0, drop_last=False)
    train_ds = dataset("train")
    generator = torch.Generator()
    generator.manual_seed(config.seed)  # seeds the workers' base seed (guide §5.4)
    sampler = EpochShuffleSampler(len(train_ds), seed=config.seed, num_replicas=num_replicas,
                                  rank=rank)
    train_loader = DataLoader(train_ds, sampler=sampler, generator=generator, **common)

    def eval_loader(name: str) -> Optional[DataLoader]:
        if len(splits[name]) == 0:
            return None
        eval_ds = dataset(name)
        if num_replicas == 1:
            return DataLoader(eval_ds, shuffle=False, **common)
        return DataLoader(eval_ds, sampler=ShardSampler(len(eval_ds), num_replicas, rank),
                          **common)

    val_loader, test_loader = eval_loader("val"), eval_loader("test")
    logger.debug("data %s: train %d windows, val %d, test %d (window %d, stride %d)", data.path,
                len(train_ds), len(val_loader.dataset) if val_loader else 0,
                len(test_loader.dataset) if test_loader else 0, dc.window_length,
                dc.window_stride)
    return DataBundle(train_loader=train_loader, val_loader=val_loader, test_loader=test_loader,
                      class_names=list(data.class_names), sampling_rate=data.sampling_rate,
                      content_hash=data.content_hash, path=data.path,
                      input_length=dc.window_length, num_classes=len(data.class_names),
                      split_info=split_info)
