"""The unlabeled target data of domain adaptation (``trainer: domain_adaptation``).

The target is either held-out groups of the training file (``data.target_groups``: values
of ``data.group_key``; their recordings must lie outside the source's train and validation
splits — with ``data.split: group`` they are the test groups, the usual transductive set-up)
or the recordings of another dataset file (``data.target_source``: same class names, same
sampling rate). Either way the windows reach the trainer with every label replaced by
``-1`` (:data:`UNLABELED`): target labels are never read in training; where they exist,
only ``pfdtrain evaluate`` (and the test split) uses them.

The target loader's order is an :class:`~pfdtrain.data.sampler.EpochShuffleSampler` of its
own (seed ``config.seed + TARGET_SEED_OFFSET``), so the trainer can rebuild any position of
the target stream after a resume. Its batches have the source's batch size (or the whole
target when it is smaller) and drop the last partial batch: covariance and kernel
estimates need a few samples.

Example:
    >>> bundle = build_dataloaders(config, with_target=True)   # doctest: +SKIP
    >>> x, y = next(iter(bundle.target_loader))                 # doctest: +SKIP
    >>> bool((y == UNLABELED).all())                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.data.records import SPLITS, UNSPLIT, DataError, LoadedDataset, RecordSplit, \
    is_text_metadata
from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.data.signal_store import LazySignals
from pfdtrain.data.splits import _fmt_values, _group_values
from pfdtrain.data.storage import keep_in_memory, read_dataset, verify_content_hash
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)

UNLABELED = -1  # the label every target window carries
TARGET_SEED_OFFSET = 7919  # the target order's seed is config.seed + this


def target_configured(config: TrainingConfig) -> bool:
    """True when the config names a target (``data.target_groups`` or ``target_source``)."""
    return bool(config.data.target_groups) or config.data.target_source is not None


def check_target_settings(config: TrainingConfig) -> None:
    """Refuse target settings that cannot work, before any data is read.

    Raises:
        ConfigError: no target, or both kinds at once.
    """
    dc = config.data
    if dc.target_groups and dc.target_source is not None:
        raise ConfigError(f"data.target_groups {dc.target_groups!r} and data.target_source "
                          f"{dc.target_source!r} are both set; the target is one of them: keep "
                          f"target_groups (held-out groups of the training file) or "
                          f"target_source (another file), not both")
    if not target_configured(config):
        raise ConfigError("trainer: domain_adaptation needs unlabeled target data: set "
                          "data.target_groups to held-out values of data.group_key (e.g. "
                          "data.split=group, data.group_key=load, data.test_groups=[1.0], "
                          "data.target_groups=[1.0]) or data.target_source to another dataset "
                          "file with the same classes and sampling rate")


def _unlabeled(split: RecordSplit) -> RecordSplit:
    """The same records with every label replaced by :data:`UNLABELED`."""
    return dataclasses.replace(split, labels=np.full(len(split), UNLABELED, dtype=np.int64))


def _target_from_groups(config: TrainingConfig, splits: Mapping[str, RecordSplit]
                        ) -> tuple[RecordSplit, dict]:
    dc = config.data
    key = dc.group_key
    have = {name: s for name, s in splits.items() if len(s)}
    if not have or any(key not in s.metadata for s in have.values()):
        available = sorted({k for s in have.values() for k in s.metadata}) or ["(none)"]
        raise DataError(f"data.target_groups: metadata column '{key}' (data.group_key) does not "
                        f"exist; available columns: {', '.join(available)}. Set data.group_key "
                        f"to the column whose values name the target condition.")
    text = any(is_text_metadata(s.metadata[key]) for s in have.values())
    values = _group_values(dc.target_groups, "target_groups", key, text)

    def members(split: RecordSplit) -> np.ndarray:
        if not len(split) or key not in split.metadata:
            return np.zeros(0, np.int64)
        column = split.metadata[key]
        mask = np.zeros(len(split), bool)
        for v in values:
            mask |= (np.array([str(x) == v for x in column], dtype=bool) if text
                     else np.isclose(column.astype(np.float64), v, rtol=1e-9, atol=1e-12))
        return np.flatnonzero(mask)

    hits = {name: members(split) for name, split in splits.items()}
    overlap = {name: idx for name, idx in hits.items() if name in ("train", "val") and idx.size}
    if overlap:
        where = "; ".join(f"{idx.size} {name} recording(s), e.g. {splits[name].record_ids[idx[0]]}"
                          for name, idx in overlap.items())
        raise DataError(
            f"data.target_groups {_fmt_values(values)} of '{key}' overlap the source data: "
            f"{where}. The target must be recordings the source never trains or validates on. "
            f"Hold them out with data.split=group and data.test_groups including "
            f"{_fmt_values(values)} (then they are the unlabeled target and, after training, "
            f"the test split), or choose target_groups outside the training and validation "
            f"groups.")
    test_idx = hits.get("test", np.zeros(0, np.int64))
    if not test_idx.size:
        available = sorted({(str(x) if text else float(x)) for s in have.values()
                            for x in s.metadata[key]
                            if (str(x) if text else np.isfinite(float(x)))})
        raise DataError(f"data.target_groups {_fmt_values(values)} match no recording of "
                        f"metadata column '{key}'; available values: "
                        f"{_fmt_values(available)}.")
    target = splits["test"].subset(test_idx)
    info = {"kind": "groups", "group_key": key, "groups": values, "records": len(target),
            "ids": list(target.record_ids)}
    return target, info


def _same_recording(a: RecordSplit, i: int, b: RecordSplit, j: int) -> bool:
    """Whether record ``i`` of ``a`` and record ``j`` of ``b`` hold the same samples."""
    ra, rb = a.record(i), b.record(j)
    if len(ra) != len(rb):
        return False
    if isinstance(ra, LazySignals) or isinstance(rb, LazySignals):
        return True  # streamed: same id and length, taken as the same recording
    return bool(np.array_equal(np.asarray(ra), np.asarray(rb)))


def _target_from_file(config: TrainingConfig, data: LoadedDataset,
                      splits: Mapping[str, RecordSplit]) -> tuple[RecordSplit, dict]:
    dc = config.data
    path = Path(str(dc.target_source))
    if path.is_file() and Path(data.path).is_file() and path.resolve() == Path(data.path).resolve():
        raise DataError(f"data.target_source {path} is the training data itself "
                        f"({data.path}); the target must be other recordings: another file, or "
                        f"held-out groups of this one (data.target_groups)")
    target_data = read_dataset(path, verify_hash=False, in_memory=keep_in_memory(
        path, dc.in_memory, dc.memory_budget_mb))
    verify_content_hash(target_data)
    if target_data.content_hash == data.content_hash:
        raise DataError(f"data.target_source {path} holds the same data as the training file "
                        f"{data.path}; the target must be other recordings")
    if list(target_data.class_names) != list(data.class_names):
        raise DataError(f"data.target_source {path} has classes {list(target_data.class_names)}, "
                        f"but the training data {data.path} has {list(data.class_names)}; the "
                        f"target must list the same class names in the same order. Import it "
                        f"with the same labels (the same --layout and --labels options, or the "
                        f"same label names in the manifest).")
    if float(target_data.sampling_rate) != float(data.sampling_rate):
        raise DataError(f"data.target_source {path} is sampled at "
                        f"{target_data.sampling_rate:g} Hz, but the training data {data.path} at "
                        f"{data.sampling_rate:g} Hz; import the target again with "
                        f"--resample {data.sampling_rate:g} so both share one rate.")
    pool = RecordSplit.concat([target_data.splits[name] for name in (*SPLITS, UNSPLIT)
                               if name in target_data.splits])
    # The same recording in the source's train/val and in the target would be trained on
    # with its label: refuse (ids recur across files, so the samples decide).
    source_records = {rid: (name, i) for name in ("train", "val") if name in splits
                      for i, rid in enumerate(splits[name].record_ids)}
    shared = [rid for j, rid in enumerate(pool.record_ids) if rid in source_records
              and _same_recording(splits[source_records[rid][0]], source_records[rid][1], pool, j)]
    if shared:
        raise DataError(f"data.target_source {path} holds {len(shared)} recording(s) that the "
                        f"source trains or validates on (e.g. {shared[0]}); the target must be "
                        f"other recordings: remove them from the target file, or hold them out "
                        f"of the source (data.split=group with data.test_groups)")
    long_enough = np.flatnonzero(pool.lengths >= dc.window_length)
    if not long_enough.size:
        raise DataError(f"data.target_source {path}: no recording holds one window of "
                        f"{dc.window_length} samples (longest {int(pool.lengths.max(initial=0))}); "
                        f"use a shorter data.window_length")
    target = pool.subset(long_enough) if long_enough.size < len(pool) else pool
    info = {"kind": "file", "path": str(path), "content_hash": target_data.content_hash,
            "records": len(target)}
    return target, info


def build_target_loader(config: TrainingConfig, data: LoadedDataset,
                        splits: Mapping[str, RecordSplit], with_target: Optional[bool],
                        make_dataset: Callable[[RecordSplit], Dataset],
                        loader_kwargs: Mapping[str, Any], num_replicas: int = 1, rank: int = 0
                        ) -> tuple[Optional[DataLoader], Optional[dict]]:
    """The unlabeled target loader, or ``(None, None)`` when none is wanted.

    Args:
        config: uses ``data.target_groups``/``target_source``, ``group_key``, the window and
            batch settings, and ``seed``.
        data: the loaded training file (class names, rate, path, hash).
        splits: the source's train/val/test record splits.
        with_target: True: build it (the trainer needs one); False: the trainer uses no
            target, so target settings are refused; None: ignore them (evaluation).
        make_dataset: windows of a :class:`RecordSplit` (the source's window settings).
        loader_kwargs: the DataLoader arguments of the source loaders (workers, collate).
        num_replicas: DDP world size.
        rank: this process's rank.

    Returns:
        ``(loader, info)``: batches ``(inputs, labels all -1)``; ``info`` (JSON-able) names
        where the target came from, for ``split_info["target"]``.

    Raises:
        ConfigError: no target for a trainer that needs one, or target settings for one that
            does not.
        DataError: a target overlapping the source's training or validation recordings, a
            target file with other class names or sampling rate, too few target windows.
    """
    if with_target is None:
        return None, None
    if not with_target:
        if target_configured(config):
            raise ConfigError(f"data.target_groups / data.target_source are set, but trainer: "
                              f"{config.trainer} does not use unlabeled target data; set "
                              f"trainer: domain_adaptation, or remove the target settings")
        return None, None
    check_target_settings(config)
    if config.data.target_groups:
        target, info = _target_from_groups(config, splits)
    else:
        target, info = _target_from_file(config, data, splits)
    dataset = make_dataset(_unlabeled(target))
    n = len(dataset)
    per_replica = n // num_replicas if num_replicas > 1 else n
    batch_size = min(int(config.data.batch_size), per_replica)
    if batch_size < 2:
        raise DataError(f"the domain adaptation target has {n} window(s) of "
                        f"{config.data.window_length} samples ({per_replica} per process); the "
                        f"domain losses need at least 2 per batch: use more target recordings, "
                        f"a smaller data.window_length or data.window_stride")
    seed = int(config.seed) + TARGET_SEED_OFFSET
    generator = torch.Generator()
    generator.manual_seed(seed)
    kwargs = {**loader_kwargs, "batch_size": batch_size, "drop_last": True}
    loader = DataLoader(dataset, sampler=EpochShuffleSampler(n, seed=seed,
                                                             num_replicas=num_replicas, rank=rank),
                        generator=generator, **kwargs)
    info.update(windows=n, batch_size=batch_size, labels="never read in training")
    logger.info("domain adaptation target: %s, %d recordings, %d windows (batches of %d; labels "
                "never read in training)",
                f"groups {info['groups']} of '{info['group_key']}'" if info["kind"] == "groups"
                else info["path"], info["records"], n, batch_size)
    return loader, info
