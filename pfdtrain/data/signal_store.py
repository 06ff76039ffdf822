"""Signals that stay in the HDF5 file: windows read on demand (``data.in_memory``, docs/data.md §6.2).

A dataset larger than the memory budget is not read into memory. Its splits hold
:class:`LazySignals` instead of a float32 array: a table of segments, each a sample range of
one HDF5 ``signals`` dataset (:class:`H5Signals`). Slicing one (``RecordSplit.record``), and
concatenating lazy records (``RecordSplit.from_records``), only edit that table, so splitting
a streamed file (record, time or group split) copies no samples. The samples are read when a
batch needs them (:meth:`LazySignals.read_windows`: the batch's windows sorted by file
offset, merged where they overlap, fetched in one HDF5 read, put back in batch order), or
chunk by chunk for the integrity checks (:meth:`LazySignals.iter_chunks`).

Every process opens its own file handle, on first use: a DataLoader worker forked from a
process that had the file open never touches the inherited handle (HDF5 handles must not
be shared across ``fork``), and a pickled store (spawned workers) carries no handle.

This module imports nothing from the rest of the package.

Example:
    >>> signals = LazySignals.from_file("big.h5", "train/signals")   # doctest: +SKIP
    >>> signals.read_windows(np.array([64000, 0]), 6400).shape       # doctest: +SKIP
    (2, 6400)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence, Union

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Samples per read in the sequential passes (integrity checks): 4 MiB of float32.
CHUNK_SAMPLES = 1 << 20


class H5Signals:
    """One float32 HDF5 dataset (e.g. ``train/signals``), opened lazily in each process.

    Args:
        path: the HDF5 file.
        name: the dataset's path inside the file.
        length: its number of samples (read from the file when None).

    Example:
        >>> source = H5Signals("big.h5", "train/signals")   # doctest: +SKIP
        >>> source.read_runs(np.array([0, 100]), np.array([10, 120])).shape  # doctest: +SKIP
        (30,)
    """

    def __init__(self, path: Union[str, Path], name: str, length: int | None = None) -> None:
        self.path = str(path)
        self.name = name
        # pid -> open dataset. A forked child finds its parent's entry here and leaves it
        # alone (never reads through it, never closes it); it opens its own.
        self._handles: dict[int, tuple[h5py.File, h5py.Dataset]] = {}
        if length is None:
            with h5py.File(self.path, "r") as f:
                length = int(f[name].shape[0])
        self.length = int(length)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}

    def dataset(self) -> h5py.Dataset:
        """This process's open handle of the dataset."""
        pid = os.getpid()
        if pid not in self._handles:
            f = h5py.File(self.path, "r")
            self._handles[pid] = (f, f[self.name])
        return self._handles[pid][1]

    def close(self) -> None:
        """Close this process's handle (the next read opens it again)."""
        entry = self._handles.pop(os.getpid(), None)
        if entry is not None:
            entry[0].close()

    def read_runs(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Samples ``[starts[k], ends[k])`` for every k, concatenated, in one HDF5 read.

        The runs must be sorted and disjoint (the file is then read front to back once).
        """
        total = int(np.sum(ends - starts))
        out = np.empty(total, dtype=np.float32)
        if total == 0:
            return out
        dset = self.dataset()
        space = dset.id.get_space()
        space.select_hyperslab((int(starts[0]),), (int(ends[0] - starts[0]),))
        for a, b in zip(starts[1:].tolist(), ends[1:].tolist()):
            space.select_hyperslab((a,), (b - a,), op=h5py.h5s.SELECT_OR)
        dset.id.read(h5py.h5s.create_simple((total,)), space, out)
        return out


class LazySignals:
    """Concatenated samples that live in HDF5 datasets; a drop-in for a split's signals.

    Supports what the data layer does with a split's signal array: ``len``, ``shape``,
    ``dtype``, contiguous slicing (a new table, no read), ``np.asarray`` (reads everything;
    only for small pieces), plus :meth:`read_windows` and :meth:`iter_chunks`.

    Args:
        sources: the HDF5 datasets the segments point into.
        seg_start: int64 [S], where each segment starts in the concatenated samples.
        seg_source: int64 [S], index into ``sources``.
        seg_offset: int64 [S], where each segment starts in its source.
        length: total samples (segments are back to back and cover ``[0, length)``).

    Example:
        >>> signals = LazySignals.from_file("big.h5", "train/signals")   # doctest: +SKIP
        >>> piece = signals[1000:9000]                                   # no read yet
        >>> np.asarray(piece).shape                                      # doctest: +SKIP
        (8000,)
    """

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, sources: Sequence[H5Signals], seg_start: np.ndarray, seg_source: np.ndarray,
                 seg_offset: np.ndarray, length: int) -> None:
        self.sources = tuple(sources)
        self.seg_start = np.asarray(seg_start, dtype=np.int64)
        self.seg_source = np.asarray(seg_source, dtype=np.int64)
        self.seg_offset = np.asarray(seg_offset, dtype=np.int64)
        self.length = int(length)

    @classmethod
    def from_file(cls, path: Union[str, Path], name: str, length: int | None = None
                  ) -> "LazySignals":
        """The whole dataset ``name`` of ``path`` as one segment."""
        source = H5Signals(path, name, length)
        return cls([source], np.zeros(1, np.int64), np.zeros(1, np.int64),
                   np.zeros(1, np.int64), source.length)

    @classmethod
    def concatenate(cls, parts: Sequence["LazySignals"]) -> "LazySignals":
        """The parts back to back (what ``np.concatenate`` does to arrays), samples unread."""
        sources: list[H5Signals] = []
        index: dict[int, int] = {}
        starts, src, offsets = [], [], []
        position = 0
        for part in parts:
            keep = part._segment_lengths() > 0
            for k in part.sources:
                if id(k) not in index:
                    index[id(k)] = len(sources)
                    sources.append(k)
            remap = np.array([index[id(k)] for k in part.sources], dtype=np.int64)
            starts.append(part.seg_start[keep] + position)
            src.append(remap[part.seg_source[keep]])
            offsets.append(part.seg_offset[keep])
            position += len(part)
        empty = [np.zeros(0, np.int64)]
        return cls(sources, np.concatenate(starts + empty), np.concatenate(src + empty),
                   np.concatenate(offsets + empty), position)

    # ------------------------------------------------------------------ array-like
    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    @property
    def size(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        """Bytes the samples would take in memory (none are held)."""
        return self.length * 4

    def _segment_lengths(self) -> np.ndarray:
        return np.diff(np.append(self.seg_start, self.length))

    def __getitem__(self, key: slice) -> "LazySignals":
        if not isinstance(key, slice):
            raise TypeError("LazySignals supports contiguous slices only; use read_windows or "
                            "np.asarray(signals[a:b]) for samples")
        start, stop, step = key.indices(self.length)
        if step != 1:
            raise TypeError("LazySignals supports contiguous slices only (step 1)")
        stop = max(stop, start)
        ends = np.append(self.seg_start[1:], self.length)
        keep = (ends > start) & (self.seg_start < stop)
        seg_start = self.seg_start[keep]
        shift = np.maximum(start - seg_start, 0)  # the first segment may begin before start
        return LazySignals(self.sources, seg_start + shift - start, self.seg_source[keep],
                           self.seg_offset[keep] + shift, stop - start)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = np.concatenate(list(self.iter_chunks())) if self.length else np.zeros(0, np.float32)
        return out if dtype is None else out.astype(dtype, copy=False)

    # ------------------------------------------------------------------ reads
    def iter_chunks(self, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
        """All samples in order, at most ``chunk_samples`` per array (bounded memory)."""
        lengths = self._segment_lengths()
        for k in range(self.seg_start.size):
            source = self.sources[int(self.seg_source[k])]
            first = int(self.seg_offset[k])
            for a in range(first, first + int(lengths[k]), chunk_samples):
                b = min(a + chunk_samples, first + int(lengths[k]))
                yield source.read_runs(np.array([a]), np.array([b]))

    def read_windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """float32 ``[B, length]``: row ``i`` is samples ``[starts[i], starts[i] + length)``.

        Per source dataset the windows are sorted by file offset, overlapping ones merged
        into runs, the runs read in one HDF5 call, and the rows put back in the order asked.
        A window must lie inside one segment (windows never cross records; a record is
        contiguous in its source).
        """
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        out = np.empty((starts.size, length), dtype=np.float32)
        seg = np.searchsorted(self.seg_start, starts, side="right") - 1
        position = self.seg_offset[seg] + (starts - self.seg_start[seg])
        source_of = self.seg_source[seg]
        for s in np.unique(source_of):
            rows = np.flatnonzero(source_of == s)
            rows = rows[np.argsort(position[rows], kind="stable")]
            p = position[rows]
            ends = p + length
            # A window starting after every earlier window's end opens a new run.
            new_run = np.ones(p.size, dtype=bool)
            new_run[1:] = p[1:] > np.maximum.accumulate(ends)[:-1]
            first = np.flatnonzero(new_run)
            run_start = p[first]
            run_end = np.maximum.reduceat(ends, first)
            buffer = self.sources[int(s)].read_runs(run_start, run_end)
            run_of = np.cumsum(new_run) - 1
            where = (np.cumsum(run_end - run_start) - (run_end - run_start))[run_of]
            out[rows] = sliding_window_view(buffer, length)[where + p - run_start[run_of]]
        return out

    def close(self) -> None:
        """Close this process's file handles."""
        for source in self.sources:
            source.close()
