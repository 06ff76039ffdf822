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

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data.records import DataError, LoadedDataset, RecordSplit, is_text_metadata
from pfdtrain.data.sampler import EpochShuffleSampler, ShardSampler
from pfdtrain.data.splits import SplitWarning, check_no_leakage, resolve_splits
from pfdtrain.data.storage import read_dataset, verify_content_hash
from pfdtrain.data.synthetic_cache import load_synthetic_dataset
from pfdtrain.utils.logging import get_logger
from pfdtrain.utils.reproducibility import seed_worker

logger = get_logger(__name__)

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
    dc = config.data
    if dc.source == "synthetic":
        data = load_synthetic_dataset(config)
    else:
        data = read_dataset(dc.source, verify_hash=False)
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
