"""Windows cut inside records, and the DataLoaders the trainer uses (docs/data.md §6).

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

import collections.abc
import copy
import dataclasses
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import DataLoader, Dataset, default_collate

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.data.augment import WindowAugmenter
from pfdtrain.data.label_fraction import apply_label_fraction
from pfdtrain.data.records import DataError, LoadedDataset, RecordSplit, is_text_metadata
from pfdtrain.data.sampler import EpochShuffleSampler, ShardSampler
from pfdtrain.data.signal_store import LazySignals
from pfdtrain.data.splits import SplitWarning, check_no_leakage, resolve_splits
from pfdtrain.data.storage import keep_in_memory, read_dataset, verify_content_hash
from pfdtrain.data.synthetic_cache import load_synthetic_dataset
from pfdtrain.data.target import build_target_loader
from pfdtrain.data.transforms import (InputTransform, TransformError, make_transform,
                                      record_speeds_hz)
from pfdtrain.utils.logging import get_logger
from pfdtrain.utils.reproducibility import seed_worker

logger = get_logger(__name__)
SPEED_KEYS = ("rpm", "speed_hz")  # metadata that scales with a speed augmentation

NORMALIZATIONS: tuple[str, ...] = ("none", "zscore", "minmax", "rms")
# split_info["validation"] -> the log line's words
_VALIDATION_SOURCES: dict[str, str] = {
    "records": "whole recordings (record level)",
    "time": "a time slice of every recording (time split)",
    "val_groups": "the data.val_groups recordings",
    "time_slice": "the end of every training recording (too few training recordings for a "
                  "record-level validation split; split_gap samples apart)",
    "none": "none",
}



def normalize_window(x: np.ndarray, method: str) -> np.ndarray:
    """Per-window normalisation; returns a new float32 array (never a view of ``x``).

    ``zscore``: zero mean, unit std. ``minmax``: mapped to [0, 1]. ``rms``: divided by its
    RMS (no centring). A constant window (zero std/range/RMS) is not divided, so it maps to
    zeros (zscore, minmax) or stays as is (rms) instead of NaN/inf.

    The same values, bit for bit, as the window's row in :func:`normalize_windows`.

    Example:
        >>> normalize_window(np.array([1.0, 3.0], np.float32), "zscore").tolist()
        [-1.0, 1.0]
    """
    x = np.array(x, dtype=np.float32).reshape(1, -1)  # a copy: normalize_windows consumes it
    return normalize_windows(x, method).numpy()[0]


def _normalize_window_float64(x: np.ndarray, method: str) -> np.ndarray:
    """Two-pass float64 normalisation of one window: the exact path for the windows whose
    float32 one-pass statistics would lose precision (a large DC offset, a flat window)."""
    x64 = np.asarray(x, dtype=np.float64)
    if method == "zscore":
        std = x64.std()
        out = (x64 - x64.mean()) / (std if std > 1e-12 else 1.0)
    else:  # rms
        rms = np.sqrt(np.mean(x64 * x64))
        out = x64 / (rms if rms > 1e-12 else 1.0)
    return out.astype(np.float32)


_ONES: dict[int, np.ndarray] = {}


def _row_sums(x: np.ndarray) -> np.ndarray:
    """float32 ``[B]``: the sum of every row of float32 ``x`` (one BLAS dot per row with a
    vector of ones: the same bits for a row whatever batch it is in)."""
    n = x.shape[1]
    ones = _ONES.get(n)
    if ones is None:
        ones = _ONES[n] = np.ones(n, dtype=np.float32)
    return np.vecdot(x, ones)


def normalize_windows(x: np.ndarray, method: str) -> torch.Tensor:
    """Normalise a batch of windows in place; row ``i`` is ``normalize_window(x[i], method)``.

    Every row's statistics come from BLAS dot products (its sum and its sum of squares, in
    float32) and in-place element-wise torch passes apply them. Each row's statistics are
    its own dot products, so a window gets the same bits whatever batch it is in (a single
    ``ds[i]`` included) and runs are reproducible. Rows where the one-pass variance would
    cancel (mean² above half the mean square: a DC offset larger than the vibration, or a
    flat window) are done by an exact two-pass float64 path, so a flat window maps to zeros.

    Args:
        x: float32 ``[B, L]`` C-contiguous windows, a fresh array that this function
            overwrites (``none`` returns it as is).
        method: one of :data:`NORMALIZATIONS`.

    Returns:
        float32 ``[B, L]`` tensor sharing ``x``'s memory.

    Example:
        >>> normalize_windows(np.ones((2, 4), np.float32), "zscore").tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = torch.from_numpy(x)
    if method == "none" or x.shape[0] == 0:
        return out
    n = x.shape[1]
    if method == "minmax":
        lo = np.minimum.reduce(x, axis=1, keepdims=True)
        # float32 spread, the same rounding as (max - lo) of the elements: the max maps to 1.
        spread = np.maximum.reduce(x, axis=1, keepdims=True) - lo
        spread[spread <= 1e-12] = 1.0
        out.sub_(torch.from_numpy(lo)).div_(torch.from_numpy(spread))
        return out
    # float32 statistics: a row whose variance would cancel (mean² >= half the mean square)
    # is redone exactly below, so elsewhere variance >= mean_square / 2 keeps full precision.
    # Few numpy calls on the [B] vectors: at 32 windows each call costs as much as a pass.
    inv_n = np.float32(1.0 / n)
    mean_square = np.vecdot(x, x)
    mean_square *= inv_n
    if method == "zscore":
        mean = _row_sums(x)
        mean *= inv_n
        spread = mean_square - mean * mean
        exact = spread <= mean_square * np.float32(0.5)  # DC-dominated or flat
    else:  # rms
        spread = mean_square
        exact = mean_square <= np.float32(1e-24)
    # The exact rows are computed from the raw samples, before the in-place passes below.
    rows = np.flatnonzero(exact) if np.count_nonzero(exact) else ()
    replaced = [_normalize_window_float64(x[r], method) for r in rows]
    np.maximum(spread, np.float32(1e-30), out=spread)
    scale = np.reciprocal(np.sqrt(spread, out=spread), out=spread)
    if method == "zscore":
        out.sub_(torch.from_numpy(mean[:, None]))
    out.mul_(torch.from_numpy(scale[:, None]))
    for r, values in zip(rows, replaced):
        x[r] = values
    return out


class WindowBatch(collections.abc.Sequence):
    """What :meth:`WindowDataset.__getitems__` returns: a batch already collated.

    To any collate function it is the usual list of ``(x, y[, metadata])`` samples (each a
    view into the batch, made on demand), so a plain ``DataLoader`` still works;
    :func:`collate_windows` instead returns :attr:`collated` as it is, without the stacking
    copy of ``default_collate``.

    Args:
        collated: ``[x float32 [B, 1, L], y int64 [B]]`` plus ``{name: float32 [B]}`` for
            metadata batches: exactly what ``default_collate`` makes of the samples.

    Example:
        >>> batch = train_ds.__getitems__([4, 0, 9])
        >>> collate_windows(batch)[0].shape, len(batch)
        (torch.Size([3, 1, 6400]), 3)
    """

    def __init__(self, collated: list) -> None:
        self.collated = collated

    def __len__(self) -> int:
        return int(self.collated[1].shape[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        x, y, *meta = self.collated
        item = (x[i], y[i])
        return item if not meta else (*item, {k: v[i] for k, v in meta[0].items()})

    def __iter__(self) -> Iterator[tuple]:
        return (self[i] for i in range(len(self)))


def collate_windows(batch: Union[WindowBatch, Sequence[Any]]) -> Any:
    """``default_collate``, except that a :class:`WindowBatch` is returned as collated.

    Example:
        >>> DataLoader(ds, batch_size=32, collate_fn=collate_windows)
    """
    if isinstance(batch, WindowBatch):
        return batch.collated
    return default_collate(batch)


class WindowDataset(Dataset):
    """Fixed-length windows cut inside records (never across two records).

    Record ``r`` of length ``n`` gives ``(n - window_length) // window_stride + 1`` windows
    starting at ``0, stride, 2·stride, ...``; samples after the last full window are unused.

    Args:
        signals: float32 1-D array, all records concatenated (kept, not copied), or a
            :class:`~pfdtrain.data.signal_store.LazySignals` (windows read from the file).
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
        augmenter: training augmentation (:mod:`pfdtrain.data.augment`), applied to the raw
            window before the noise and the normalisation; window ``i`` of epoch ``e``
            (:meth:`set_epoch`) draws from (augment seed, e, i). None = none (the default;
            validation and test sets never get one).

    Attributes:
        labels: int64 [num_windows] class of each window.
        window_record: int64 [num_windows] index of the record each window comes from.
        window_starts: int64 [num_windows] start sample of each window in ``signals``.
        num_windows: number of windows.

    A DataLoader fetches a batch with :meth:`__getitems__`: the batch's window starts become
    one indexed read of the signal array and the batch is normalised at once
    (:func:`normalize_windows`); the values are bitwise those of ``ds[i]`` window by window.

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
                 snr_db: Optional[float] = None, noise_seed: int = 0,
                 augmenter: Optional[WindowAugmenter] = None) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of "
                             f"{NORMALIZATIONS}")
        if window_length < 1 or window_stride < 1:
            raise ValueError(f"window_length ({window_length}) and window_stride "
                             f"({window_stride}) must be >= 1")
        self.signals = (signals if isinstance(signals, LazySignals)
                        else np.ascontiguousarray(signals, dtype=np.float32))
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
        self.augmenter = augmenter
        self.epoch = 0
        self._sliding: Optional[np.ndarray] = None

    # ---- input transform hook (pfdtrain.data.transforms; docs/data.md §6.4) --------------
    # Set by attach_transform after construction (the constructor is unchanged); class
    # defaults, so a dataset without a transform gives the windows as they were.
    transform: Optional[InputTransform] = None
    record_speed_hz: Optional[np.ndarray] = None  # float64 [N] rev/s, transforms needing speed

    def _transformed(self, x: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """The model input of the normalised windows ``x`` ``[B, L]`` (windows ``index``)."""
        if self.transform is None:
            return x
        speed = (None if self.record_speed_hz is None else
                 torch.from_numpy(self.record_speed_hz[self.window_record[index]]
                                  * self._speed_factors(index)))
        return self.transform(x, speed)
    # ---- end of the input transform hook ------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """The training epoch, which seeds the augmentation draws (the trainer calls it with
        the sampler's ``set_epoch``; without an augmenter it changes nothing)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        # The sliding view is rebuilt on first use: pickled (spawned workers) it would be
        # written out as a window_length-times larger array.
        return {**self.__dict__, "_sliding": None}

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
        """Windows of one :class:`RecordSplit` (with its numeric operating metadata if asked;
        text columns such as a bearing code are for splitting, not model inputs)."""
        return cls(split.signals, split.record_offsets, split.labels, window_length,
                   window_stride, normalization, record_ids=split.record_ids,
                   metadata={k: v for k, v in split.metadata.items()
                             if not is_text_metadata(v)} if with_metadata else None)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> tuple:
        index = int(index)
        if index < 0:
            index += self.num_windows
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} out of range 0..{self.num_windows - 1}")
        start = int(self.window_starts[index])
        if self.augmenter is not None:
            view = self._augmented(index)
        elif isinstance(self.signals, LazySignals):
            view = self.signals.read_windows(np.array([start]), self.window_length)[0]
        else:
            view = self.signals[start:start + self.window_length]  # a view: no dataset copy
        if self.snr_db is not None:
            view = view + self._noise(view, index)
        x = normalize_window(view, self.normalization)  # one window-sized copy
        item = (self._transformed(torch.from_numpy(x).unsqueeze(0), np.array([index])),
                torch.tensor(int(self.labels[index]), dtype=torch.int64))
        if self.metadata is None:
            return item
        return (*item, {k: torch.tensor(v[0]) for k, v in
                        self._window_metadata(np.array([index])).items()})

    def __getitems__(self, indices: Sequence[int]) -> WindowBatch:
        """The windows ``indices`` as one batch (what a DataLoader asks for).

        Same windows, values and order as ``[self[i] for i in indices]`` collated, but read
        from the signal array in one indexed step and normalised together.

        Example:
            >>> x, y = collate_windows(ds.__getitems__([3, 1]))
            >>> torch.equal(x[0], ds[3][0])
            True
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        # Two reductions instead of elementwise masks: this runs once per batch, per step.
        if index.size and (index.min() < 0 or index.max() >= self.num_windows):
            index = np.where(index < 0, index + self.num_windows, index)
            bad = (index < 0) | (index >= self.num_windows)
            if bad.any():
                raise IndexError(f"window {int(np.asarray(indices).reshape(-1)[np.argmax(bad)])} "
                                 f"out of range 0..{self.num_windows - 1}")
        if self.augmenter is not None:  # per window, as in __getitem__: the same bits
            x = np.stack([self._augmented(int(i)) for i in index]) if index.size else \
                np.empty((0, self.window_length), np.float32)
        else:
            x = self._read_windows(self.window_starts[index])
        if self.snr_db is not None:
            for row, i in enumerate(index):  # noise is seeded per window: one draw per row
                x[row] += self._noise(x[row], int(i))
        collated = [self._transformed(normalize_windows(x, self.normalization),
                                      index).unsqueeze(1),
                    torch.from_numpy(self.labels[index])]
        if self.metadata is not None:
            collated.append({k: torch.from_numpy(v)
                             for k, v in self._window_metadata(index).items()})
        return WindowBatch(collated)

    def _speed_factors(self, index: np.ndarray) -> np.ndarray:
        """Each window's speed ratio this epoch (float64; all 1 without speed augmentation)."""
        if self.augmenter is None or "speed" not in self.augmenter.by_name:
            return np.ones(len(index))
        return np.array([self.augmenter.speed_factor(self.epoch, int(i)) for i in index])

    def _window_metadata(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The records' metadata of windows ``index``; a speed-augmented window's speed
        (``rpm``, ``speed_hz``) is multiplied by its speed ratio, as its fault frequencies
        are (physics losses and condition-aware models read the speed the window shows)."""
        assert self.metadata is not None
        record = self.window_record[index]
        meta = {k: v[record] for k, v in self.metadata.items()}
        factor = self._speed_factors(index)
        for key in SPEED_KEYS:
            if key in meta:
                meta[key] = (meta[key] * factor).astype(meta[key].dtype)
        return meta

    def _read_windows(self, starts: np.ndarray) -> np.ndarray:
        """float32 ``[B, window_length]``: the windows at ``starts``, a fresh array."""
        if isinstance(self.signals, LazySignals):  # streamed: offset-sorted file reads
            return self.signals.read_windows(starts, self.window_length)
        if self._sliding is None:  # a view (no copy): row s is signals[s:s + window_length]
            self._sliding = sliding_window_view(self.signals, self.window_length)
        return self._sliding[starts]

    def _read_span(self, start: int, length: int) -> np.ndarray:
        """float32 ``[length]`` samples of ``signals`` from ``start`` (inside one record)."""
        if isinstance(self.signals, LazySignals):
            return self.signals.read_windows(np.array([start]), length)[0]
        return self.signals[start:start + length]

    def _augmented(self, index: int) -> np.ndarray:
        """Window ``index`` after the augmentation of the current epoch (a new array)."""
        record = int(self.window_record[index])
        assert self.augmenter is not None
        return self.augmenter.window(self._read_span, int(self.window_starts[index]),
                                     int(self.record_offsets[record]),
                                     int(self.record_offsets[record + 1]), self.window_length,
                                     epoch=self.epoch, index=index)

    def _noise(self, window: np.ndarray, index: int) -> np.ndarray:
        """The white noise window ``index`` gets (at ``snr_db`` of the raw window's power)."""
        rng = np.random.default_rng([self.noise_seed, index])
        # Power of the vibration (variance): a DC offset carries no fault information.
        noise_rms = np.sqrt(np.var(window, dtype=np.float64) / 10 ** (self.snr_db / 10))
        return rng.normal(0.0, noise_rms, window.shape).astype(np.float32)


class PerWindowDataset(Dataset):
    """A :class:`WindowDataset` seen window by window (no ``__getitems__``): the DataLoader
    then calls ``ds[i]`` per window and ``default_collate`` stacks them, the path every
    loader took before batches were read at once. The reference for tests and benchmarks.

    Args:
        dataset: the windows.

    Example:
        >>> reference = DataLoader(PerWindowDataset(ds), batch_size=32)
    """

    def __init__(self, dataset: WindowDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        return self.dataset[index]

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the wrapped dataset (its augmentation draws depend on the epoch)."""
        self.dataset.set_epoch(epoch)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DataBundle:
    """What the trainer needs from the data layer.

    Attributes:
        train_loader: shuffled by an :class:`EpochShuffleSampler` (call
            ``train_loader.sampler.set_epoch(epoch)`` every epoch, and with ``augment``
            enabled ``train_loader.dataset.set_epoch(epoch)`` too, before iterating).
        val_loader: sequential; None when the val split is empty.
        test_loader: sequential; None when the test split is empty.
        class_names: name of every class index.
        sampling_rate: samples per second.
        content_hash: sha256 of the dataset file's content (identifies the data in runs).
        path: the dataset file.
        input_length: model input length: the transform's output length (``data.transform``;
            ``data.window_length`` for ``raw``).
        num_classes: ``len(class_names)``.
        split_info: how the splits were made (JSON-able; see
            :func:`pfdtrain.data.splits.make_splits`): strategy, parameters, per-split record
            counts, ids and (time split) source sample ranges. Stored with checkpoints and
            test metrics so a result names the exact split it was measured on.
        transform: the input transform as checkpoints record it (``{"name", "params",
            "output_length"}``, :meth:`InputTransform.describe`).
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
    transform: dict = dataclasses.field(default_factory=lambda: {
        "name": "raw", "params": {}, "output_length": None})
    # Domain adaptation: the unlabeled target windows (labels -1; pfdtrain.data.target).
    target_loader: Optional[DataLoader] = None


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
                      num_replicas: int = 1, rank: int = 0,
                      with_target: Optional[bool] = None) -> DataBundle:
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
        with_target: domain adaptation's unlabeled target loader (``DataBundle.target_loader``,
            :func:`pfdtrain.data.target.build_target_loader`): True builds it, False refuses
            ``data.target_*`` settings (the trainer would ignore them), None ignores them.

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
        ...     bundle.train_loader.dataset.set_epoch(epoch)  # augmentation draws
        ...     for inputs, targets in bundle.train_loader:
        ...         ...
    """
    dc = config.data
    if dc.source == "synthetic":
        data = load_synthetic_dataset(config, in_memory=None)  # None: by data.in_memory
    else:
        data = read_dataset(dc.source, verify_hash=False, in_memory=keep_in_memory(
            dc.source, dc.in_memory, dc.memory_budget_mb))
    # Leakage first (the more specific problem), then integrity; every time, so training
    # refuses to start on a leaking file whatever produced it.
    check_no_leakage(data)
    verify_content_hash(data)
    # Unsplit (imported) files are split here; stored splits are kept for data.split=record
    # and pooled and re-split for time/group. The result is checked again under the rules of
    # the strategy that made it (a time split's pieces must keep the gap).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits, split_info = resolve_splits(data, config)
    for w in caught:
        if issubclass(w.category, SplitWarning):
            # Into the run's log (train.log) and its split record, not a bare stderr line.
            logger.warning("%s", w.message)
            split_info.setdefault("warnings", []).append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    check_no_leakage(splits, strategy=split_info["strategy"],
                     min_gap=int(split_info.get("split_gap") or 0),
                     time_sliced=split_info.get("time_sliced", ()))
    logger.info("split %s: train %d, val %d, test %d records; validation: %s",
                split_info["strategy"], len(splits["train"]), len(splits["val"]),
                len(splits["test"]), _VALIDATION_SOURCES.get(split_info.get("validation"),
                                                             split_info.get("validation")))
    if len(splits["train"]) == 0:
        raise DataError(f"{data.path} has no training records; lower data.val_fraction/"
                        f"data.test_fraction or add records.")
    _check_window_length(data, splits, config)
    streamed = [s.signals for s in (*data.splits.values(), *splits.values())
                if isinstance(s.signals, LazySignals)]
    if streamed:
        logger.info("data %s: streamed from the file (%.0f MiB of signals; data.in_memory=%s, "
                    "memory_budget_mb=%d)", data.path,
                    sum(s.signals.nbytes for s in data.splits.values()) / 2 ** 20,
                    dc.in_memory, dc.memory_budget_mb)
        for signals in streamed:
            # The checks above read the file in this process; the handles are closed so
            # forked loader workers start without one (each opens its own on first read).
            signals.close()

    transform = build_transform(config, data.sampling_rate)

    def dataset(name: str) -> WindowDataset:
        ds = WindowDataset.from_split(splits[name], dc.window_length, dc.window_stride,
                                      dc.normalization, with_metadata=with_metadata)
        return attach_transform(ds, transform, splits[name].metadata, str(data.path))

    augmenter = WindowAugmenter.from_config(config.augment)
    if augmenter is not None:
        logger.info("augment training windows: %s (seed %d)", ", ".join(augmenter.by_name),
                    augmenter.seed)

    pin = torch.cuda.is_available()
    # collate_windows: the dataset hands over whole batches (__getitems__), not samples.
    common: dict[str, Any] = dict(batch_size=dc.batch_size, num_workers=dc.num_workers,
                                  collate_fn=collate_windows,
                                  worker_init_fn=seed_worker, pin_memory=pin,
                                  persistent_workers=dc.num_workers > 0, drop_last=False)
    train_ds = dataset("train")
    train_ds.augmenter = augmenter  # training windows only: val/test are measured clean
    if dc.label_fraction < 1.0:
        # Few labels: training windows only; validation and test are measured on every label.
        info = apply_label_fraction(train_ds, dc.label_fraction, config.seed)
        split_info["label_fraction"] = info
        logger.info("label_fraction %g: %d of %d training windows keep their label (per "
                    "class %s; seed %d)", dc.label_fraction, info["labeled_total"],
                    info["windows_total"], info["labeled"], config.seed)
    train_common = dict(common)
    if augmenter is not None and dc.num_workers > 0:
        # The epoch seeds the draws and is set on the dataset in this process: workers made
        # afresh for every epoch copy it; persistent ones would keep the first epoch's.
        train_common["persistent_workers"] = False
    generator = torch.Generator()
    generator.manual_seed(config.seed)  # seeds the workers' base seed (guide §5.4)
    sampler = EpochShuffleSampler(len(train_ds), seed=config.seed, num_replicas=num_replicas,
                                  rank=rank)
    train_loader = DataLoader(train_ds, sampler=sampler, generator=generator, **train_common)

    def eval_loader(name: str) -> Optional[DataLoader]:
        if len(splits[name]) == 0:
            return None
        eval_ds = dataset(name)
        if num_replicas == 1:
            return DataLoader(eval_ds, shuffle=False, **common)
        return DataLoader(eval_ds, sampler=ShardSampler(len(eval_ds), num_replicas, rank),
                          **common)

    val_loader, test_loader = eval_loader("val"), eval_loader("test")
    target_loader, target_info = build_target_loader(
        config, data, splits, with_target, lambda split: attach_transform(
            WindowDataset.from_split(split, dc.window_length, dc.window_stride,
                                     dc.normalization),
            transform, split.metadata, str(data.path)), common, num_replicas, rank)
    if target_info is not None:
        split_info["target"] = target_info
    logger.debug("data %s: train %d windows, val %d, test %d (window %d, stride %d)", data.path,
                len(train_ds), len(val_loader.dataset) if val_loader else 0,
                len(test_loader.dataset) if test_loader else 0, dc.window_length,
                dc.window_stride)
    return DataBundle(train_loader=train_loader, val_loader=val_loader, test_loader=test_loader,
                      class_names=list(data.class_names), sampling_rate=data.sampling_rate,
                      content_hash=data.content_hash, path=data.path,
                      input_length=transform.output_length,
                      num_classes=len(data.class_names), split_info=split_info,
                      transform=transform.describe(), target_loader=target_loader)


# --------------------------------------------------------------------------------------------
# Input transforms (pfdtrain.data.transforms): building one and attaching it to a dataset
# --------------------------------------------------------------------------------------------

def build_transform(config: TrainingConfig, sampling_rate: float) -> InputTransform:
    """The ``data.transform`` of ``config`` for data at ``sampling_rate``.

    Raises:
        ConfigError: a setting the data cannot support (a band above the Nyquist frequency).

    Example:
        >>> build_transform(config, 12000).describe()
        {'name': 'raw', 'params': {}, 'output_length': 6400}
    """
    dc = config.data
    try:
        return make_transform(dc.transform, dc.transform_params, sampling_rate,
                              dc.window_length)
    except TransformError as exc:
        raise ConfigError(str(exc)) from None


_SPEED_FIX = ("give every recording its speed (an 'rpm' column in the import manifest; "
              "the CWRU and Paderborn importers and the synthetic generators store it)")


def attach_transform(dataset: WindowDataset, transform: InputTransform,
                     metadata: Mapping[str, Any], where: str, fix: str = _SPEED_FIX
                     ) -> WindowDataset:
    """Make ``dataset`` give ``transform``'s output for each window (returns it).

    A transform that needs the shaft speed gets each record's from ``metadata`` (``rpm``, or
    ``speed_hz``); windows too short for it at the slowest record are refused.

    Args:
        dataset: the windows.
        transform: the input transform.
        metadata: the records' metadata columns (``RecordSplit.metadata``).
        where: the data's name for messages (the dataset path, the recording).
        fix: how the user supplies a missing speed (for the message).

    Raises:
        DataError: the transform needs a speed the records lack.
        ConfigError: windows too short for the transform at the slowest record.

    Example:
        >>> ds = attach_transform(ds, make_transform("fft", {}, 12000, 1024), split.metadata,
        ...                       "data.h5")
        >>> ds[0][0].shape
        torch.Size([1, 513])
    """
    dataset.transform = transform
    if transform.needs_speed:
        speeds = record_speeds_hz(metadata, dataset.record_ids, where, fix)
        try:
            transform.check_speeds(speeds, dataset.record_ids)
        except TransformError as exc:
            raise ConfigError(str(exc)) from None
        dataset.record_speed_hz = speeds
    return dataset
