"""The in-memory form of a dataset: records of one split, a loaded file, and the data errors.

A :class:`RecordSplit` holds the records of one split the way the HDF5 file stores them
(all signals concatenated, an offsets table); a :class:`LoadedDataset` is a whole file read
into memory. Everything else in :mod:`pfdtrain.data` builds on these two containers, so this
module imports nothing from the rest of the package but the error base class and
:mod:`~pfdtrain.data.signal_store` (a streamed file's splits hold :class:`LazySignals`,
which slicing, ``subset``, ``concat`` and ``from_records`` keep lazy: splitting a streamed
file reads no samples).

Example:
    >>> split = RecordSplit.from_records([np.zeros(8000), np.ones(9000)], [0, 3],
    ...                                  ["rig-a-001", "rig-a-002"])
    >>> split.lengths.tolist(), split.record(1)[:2].tolist()
    ([8000, 9000], [1.0, 1.0])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pfdtrain.data.signal_store import LazySignals
from pfdtrain.errors import PfdtrainError

FORMAT = "pfdtrain-dataset-v1"
SPLITS: tuple[str, ...] = ("train", "val", "test")
UNSPLIT = "records"  # the one group of an unsplit file (split_strategy "none")
SPLIT_STRATEGIES: tuple[str, ...] = ("record", "time", "group", "none")


class DataError(PfdtrainError, ValueError):
    """A dataset file or data setting is unusable; the message names the file and the fix."""


class DataLeakageError(DataError):
    """The same record (or the same samples of one recording) appears in more than one split
    (test results would be inflated)."""


# --------------------------------------------------------------------------------------------
# In-memory form of one split
# --------------------------------------------------------------------------------------------

def is_text_metadata(values: np.ndarray) -> bool:
    """True for a text metadata column (e.g. a bearing code), False for a numeric one."""
    return np.asarray(values).dtype.kind in "OUS"


def metadata_array(values: Sequence[Any]) -> np.ndarray:
    """One metadata column in its stored form: float64 when every value is a number (None
    and NaN = unknown), else an object array of ``str`` (None = ``""``).

    Example:
        >>> metadata_array([1500, None]).tolist(), metadata_array(["KA04", "K001"]).dtype
        ([1500.0, nan], dtype('O'))
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    flat = list(arr.reshape(-1))
    if all(v is None or isinstance(v, (int, float, np.integer, np.floating))
           and not isinstance(v, bool) for v in flat):
        return np.array([np.nan if v is None else float(v) for v in flat], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in flat], dtype=object)


@dataclasses.dataclass
class RecordSplit:
    """The records of one split, stored as in the HDF5 file.

    Attributes:
        signals: float32 [total samples], all records concatenated; a
            :class:`~pfdtrain.data.signal_store.LazySignals` when the file is streamed.
        record_offsets: int64 [N+1]; record ``i`` is ``signals[offsets[i]:offsets[i+1]]``.
        labels: int64 [N] class indices.
        record_ids: N unique strings (e.g. ``syn-000123``).
        severities: int64 [N]; -1 where unknown (real recordings).
        metadata: one [N] array per variable: float64 for operating variables (NaN where
            unknown), or text (an object array of ``str``, ``""`` where unknown) for
            labels such as a bearing code (:func:`metadata_array` makes either).
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
        text = {k for s in parts for k, v in s.metadata.items() if is_text_metadata(v)}
        meta = {k: metadata_array(np.concatenate(
            [s.metadata[k] if k in s.metadata
             else np.full(len(s), "" if k in text else np.nan, dtype=object if k in text
                          else np.float64) for s in parts]
            + [np.zeros(0, dtype=object if k in text else np.float64)])) for k in keys}
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
            metadata: ``{name: one value per record}``: numbers (float64) or text.
            sources: source recording of each record (default: ``record_ids``).
            ranges: ``[N, 2]`` sample range of each record in its source (default: whole).

        Example:
            >>> split = RecordSplit.from_records([np.zeros(8000), np.ones(9000)], [0, 3],
            ...                                  ["rig-a-001", "rig-a-002"])
            >>> split.lengths.tolist()
            [8000, 9000]
        """
        lengths = [len(r) if isinstance(r, LazySignals) else int(np.asarray(r).shape[0])
                   for r in records]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if records and all(isinstance(r, LazySignals) for r in records):
            # Pieces of a streamed file (a split of it): a new segment table, no samples read.
            signals = LazySignals.concatenate(records)
        else:
            signals = (np.concatenate([np.asarray(r, dtype=np.float32).ravel() for r in records])
                       if records else np.zeros(0, np.float32))
        n = len(lengths)
        sev = (np.full(n, -1, np.int64) if severities is None
               else np.asarray(severities, dtype=np.int64))
        meta = {k: metadata_array(v) for k, v in (metadata or {}).items()}
        return cls(signals, offsets, np.asarray(labels, dtype=np.int64), list(record_ids), sev,
                   meta, sources=None if sources is None else list(sources),
                   ranges=None if ranges is None else np.asarray(ranges, np.int64))


@dataclasses.dataclass
class LoadedDataset:
    """A dataset file read into memory (see :func:`pfdtrain.data.storage.read_dataset`).

    Args:
        path: the file.
        splits: ``{"train", "val", "test"}`` for a split file, ``{"records"}`` for an
            unsplit (imported) one.
        class_names: name of every class index.
        sampling_rate: Hz, common to every record.
        source: where the data came from (``"synthetic"`` or the importer's description).
        content_hash: the hash stored in the file.
        generator_config: the settings that produced the file (JSON), or None.
        split_strategy: ``"record"``, ``"time"``, ``"group"`` or ``"none"`` (unsplit).

    Example:
        >>> data = read_dataset("data/cwru.h5")  # doctest: +SKIP
        >>> data.split_strategy, len(data.splits["records"]), data.sampling_rate
        ('none', 40, 12000.0)
    """

    path: Path
    splits: dict[str, RecordSplit]
    class_names: list[str]
    sampling_rate: float
    source: str
    content_hash: str
    generator_config: Optional[dict]
    split_strategy: str = "record"  # "none": one unsplit "records" group (imported data)
