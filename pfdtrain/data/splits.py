"""Train/val/test splits that do not leak: by record, by time inside records, or by group.

Windows cut from one recording are strongly correlated: if any of them trains and another
tests, accuracy is inflated. Each strategy of ``data.split`` rules that out in its own way:

``record``
    Whole recordings go to one split, stratified by class (and severity when known). The
    test set measures recognition of *unseen recordings*. Needs several recordings per class.
``time``
    Every recording is cut in time: the first ``1 - val - test`` of its samples train, the
    next ``val_fraction`` validate, the last ``test_fraction`` test, with ``split_gap``
    samples (default: one window) left out between the parts, so no window crosses a
    boundary and no two parts share a sample. For data with one recording per condition
    (CWRU: one file per class × load). Test windows come from the same recordings as
    training windows (later in time), so it measures less generalisation than ``record``.
``group``
    Hold out values of one metadata column (``group_key``, e.g. ``load``):
    ``test_groups`` → test, ``val_groups`` → val (or ``val_fraction`` of the rest, by
    record), the rest trains. Measures transfer to unseen operating conditions.

Every split is checked by :func:`pfdtrain.data.dataset.check_no_leakage` under the rules of
its strategy, and :func:`make_splits` returns a JSON-able ``split_info`` that names every
record (and time ranges), so a result can be traced to its exact split.

Example:
    >>> splits, info = make_splits(pool, config.data, window_length=2048)
    >>> info["strategy"], info["counts"]
    ('time', {'train': 40, 'val': 40, 'test': 40})
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from pfdtrain.config.training_config import DataConfig, TrainingConfig
from pfdtrain.data.dataset import (
    SPLITS,
    UNSPLIT,
    DataError,
    LoadedDataset,
    RecordSplit,
    stratified_record_split,
)

STRATEGIES: tuple[str, ...] = ("record", "time", "group")
PIECE_SEPARATOR = "#"  # time-split piece ids: "<record_id>#train"
_MAX_LISTED = 20  # values listed in error messages


class SplitWarning(UserWarning):
    """A split dropped data (e.g. a time-split part shorter than one window)."""


def _fmt_values(values: Sequence[float]) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:_MAX_LISTED])
    more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
    return f"[{shown}{more}]"


def _counts_and_ids(splits: dict[str, RecordSplit], with_ranges: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "counts": {name: len(split) for name, split in splits.items()},
        "ids": {name: list(split.record_ids) for name, split in splits.items()},
    }
    if with_ranges:
        info["ranges"] = {name: [[src, int(r[0]), int(r[1])]
                                 for src, r in zip(split.sources, split.ranges)]
                          for name, split in splits.items()}
    return info


# --------------------------------------------------------------------------------------------
# record
# --------------------------------------------------------------------------------------------

def _record_split(pool: RecordSplit, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Stratified split over *source recordings*; all records of one source stay together.

    With one record per source (the usual case) this is exactly
    :func:`stratified_record_split` over the records.
    """
    sources = list(pool.sources)
    unique, first, inverse = np.unique(np.array(sources, dtype=object).astype(str),
                                       return_index=True, return_inverse=True)
    if unique.size == len(pool):
        return stratified_record_split(pool.labels, pool.severities, val_fraction,
                                       test_fraction, seed)
    # Several records per source: split the sources (class/severity of their first record).
    parts = stratified_record_split(pool.labels[first], pool.severities[first], val_fraction,
                                    test_fraction, seed)
    return {name: np.flatnonzero(np.isin(inverse, idx)) for name, idx in parts.items()}


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------

def time_boundaries(length: int, val_fraction: float, test_fraction: float,
                    gap: int) -> dict[str, tuple[int, int]]:
    """``{part: (start, end)}`` of a recording of ``length`` samples cut in time.

    The nominal boundaries are ``round(length · (1 - val - test))`` and
    ``round(length · (1 - test))``; ``gap`` samples centred on each boundary belong to no
    part (the earlier part loses ``gap // 2``, the later one the rest). A part whose
    fraction is 0 is absent (and needs no gap). A part may come out empty or negative when
    the recording is short; the caller drops it.

    Example:
        >>> time_boundaries(10000, 0.15, 0.15, gap=1000)
        {'train': (0, 6500), 'val': (7500, 8000), 'test': (9000, 10000)}
    """
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction,
                 "test": test_fraction}
    present = [name for name in SPLITS if fractions[name] > 0]
    out: dict[str, tuple[int, int]] = {}
    cumulative = 0.0
    start = 0
    for k, name in enumerate(present):
        cumulative += fractions[name]
        if k == len(present) - 1:
            out[name] = (start, length)
        else:
            boundary = int(np.floor(length * cumulative + 0.5))
            out[name] = (start, boundary - gap // 2)
            start = boundary - gap // 2 + gap
    return out


def _time_split(pool: RecordSplit, dc: DataConfig, window_length: int, gap: int
                ) -> tuple[dict[str, RecordSplit], list[dict]]:
    pieces: dict[str, list[int]] = {name: [] for name in SPLITS}
    spans: dict[str, list[tuple[int, int]]] = {name: [] for name in SPLITS}
    dropped: list[dict] = []
    lengths = pool.lengths
    for i in range(len(pool)):
        n = int(lengths[i])
        for name, (start, end) in time_boundaries(n, dc.val_fraction, dc.test_fraction,
                                                  gap).items():
            if end - start < window_length:
                if name == "train":
                    raise DataError(
                        f"time split: the training part of recording {pool.record_ids[i]} "
                        f"({n} samples) is {max(end - start, 0)} samples, shorter than one "
                        f"window of {window_length}; lower data.val_fraction/"
                        f"data.test_fraction, data.split_gap or data.window_length, or use a "
                        f"longer recording.")
                dropped.append({"record": pool.record_ids[i], "part": name,
                                "samples": max(end - start, 0)})
                continue
            pieces[name].append(i)
            spans[name].append((start, end))
    if dropped:
        first = dropped[0]
        warnings.warn(
            f"time split: dropped {len(dropped)} val/test part(s) shorter than one window of "
            f"{window_length} samples (e.g. the {first['part']} part of {first['record']}, "
            f"{first['samples']} samples after the {gap}-sample gap); use longer recordings, "
            f"larger fractions, or a smaller data.split_gap/data.window_length.",
            SplitWarning, stacklevel=3)
    out = {}
    for name in SPLITS:
        idx = pieces[name]
        records = [pool.record(i)[s:e] for i, (s, e) in zip(idx, spans[name])]
        base = pool.ranges[idx, 0] if idx else np.zeros(0, np.int64)
        ranges = (np.array(spans[name], dtype=np.int64).reshape(-1, 2)
                  + np.asarray(base, np.int64)[:, None])
        out[name] = RecordSplit.from_records(
            records, pool.labels[idx], [f"{pool.record_ids[i]}{PIECE_SEPARATOR}{name}"
                                        for i in idx],
            pool.severities[idx], {k: v[idx] for k, v in pool.metadata.items()},
            sources=[pool.sources[i] for i in idx], ranges=ranges)
    return out, dropped


# --------------------------------------------------------------------------------------------
# group
# --------------------------------------------------------------------------------------------

def _group_values(values: Sequence[Any], field: str, key: str) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise DataError(f"data.{field} value {v!r} is not a number; the values of metadata "
                            f"column '{key}' are numbers.") from None
    return out


def _group_split(pool: RecordSplit, dc: DataConfig, seed: int) -> dict[str, np.ndarray]:
    key = dc.group_key
    if key not in pool.metadata:
        available = sorted(pool.metadata) or ["(none)"]
        raise DataError(f"group split: metadata column '{key}' (data.group_key) does not exist; "
                        f"available columns: {', '.join(available)}. Set data.group_key to one "
                        f"of them, or add the column to the import manifest.")
    column = pool.metadata[key]
    available = sorted({float(v) for v in column[np.isfinite(column)]})
    test_values = _group_values(dc.test_groups, "test_groups", key)
    val_values = _group_values(dc.val_groups, "val_groups", key)
    if not test_values and not val_values:
        raise DataError(f"group split needs held-out values: set data.test_groups (and "
                        f"optionally data.val_groups) to values of '{key}', available: "
                        f"{_fmt_values(available)}.")
    both = sorted(set(test_values) & set(val_values))
    if both:
        raise DataError(f"group split: value(s) {_fmt_values(both)} of '{key}' are in both "
                        f"data.test_groups and data.val_groups; a group belongs to one split.")

    def members(values: list[float], field: str) -> np.ndarray:
        mask = np.zeros(len(pool), bool)
        for v in values:
            hit = np.isclose(column, v, rtol=1e-9, atol=1e-12)
            if not hit.any():
                raise DataError(f"group split: data.{field} value {v:g} matches no record of "
                                f"metadata column '{key}'; available values: "
                                f"{_fmt_values(available)}.")
            mask |= hit
        return mask

    test_mask = members(test_values, "test_groups")
    val_mask = members(val_values, "val_groups")
    rest = np.flatnonzero(~test_mask & ~val_mask)
    if rest.size == 0:
        raise DataError(f"group split leaves no training records: data.test_groups "
                        f"{_fmt_values(test_values)} and data.val_groups "
                        f"{_fmt_values(val_values)} cover every value of '{key}' "
                        f"(available: {_fmt_values(available)}); keep at least one value for "
                        f"training.")
    if val_values:
        train, val = rest, np.flatnonzero(val_mask)
    else:  # validation from the training groups' records (same conditions as training)
        sub = _record_split(pool.subset(rest), dc.val_fraction, 0.0, seed)
        train, val = rest[sub["train"]], rest[sub["val"]]
    return {"train": np.sort(train), "val": np.sort(val), "test": np.flatnonzero(test_mask)}


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------

def make_splits(pool: RecordSplit, data_config: DataConfig, window_length: int, *,
                seed: int = 0) -> tuple[dict[str, RecordSplit], dict]:
    """Split a pool of recordings by ``data_config.split`` (record, time or group).

    Args:
        pool: all recordings (e.g. the ``records`` group of an imported file).
        data_config: uses ``split``, ``val_fraction``, ``test_fraction``, ``split_gap``
            (time; None = ``window_length``), ``group_key``, ``test_groups`` and
            ``val_groups`` (group).
        window_length: samples per window: the default time-split gap, and the shortest
            time-split part that is kept.
        seed: seed of the random record assignment (record split; group split's val part).

    Returns:
        ``({"train", "val", "test"}: RecordSplit, split_info)``. ``split_info`` is JSON-able:
        ``strategy``, the parameters used, ``counts`` and ``ids`` per split, and for the time
        split ``split_gap``, ``ranges`` (``[source, start, end]`` per piece) and ``dropped``
        (parts shorter than one window). Time-split pieces are named ``<record_id>#<split>``
        and carry their source recording and sample range.

    Raises:
        DataError: unknown strategy, a training part shorter than one window (time), a
            missing group column, a group value no record has or an empty train split
            (group), each naming the column/record and the available values.

    Example:
        >>> cfg = TrainingConfig.from_dict({"data": {"split": "group", "group_key": "load",
        ...                                          "test_groups": [3]}}).data
        >>> splits, info = make_splits(pool, cfg, window_length=2048)
        >>> sorted(set(splits["test"].metadata["load"]))
        [3.0]
    """
    strategy = data_config.split
    info: dict[str, Any] = {"strategy": strategy, "seed": int(seed)}
    if strategy == "record":
        parts = _record_split(pool, data_config.val_fraction, data_config.test_fraction, seed)
        splits = {name: pool.subset(parts[name]) for name in SPLITS}
        info.update(val_fraction=data_config.val_fraction,
                    test_fraction=data_config.test_fraction,
                    stratified_by="class x severity (severity -1 = unknown)")
        info.update(_counts_and_ids(splits, with_ranges=False))
    elif strategy == "time":
        gap = int(window_length if data_config.split_gap is None else data_config.split_gap)
        splits, dropped = _time_split(pool, data_config, int(window_length), gap)
        info.update(val_fraction=data_config.val_fraction,
                    test_fraction=data_config.test_fraction, split_gap=gap,
                    window_length=int(window_length), dropped=dropped)
        info.update(_counts_and_ids(splits, with_ranges=True))
    elif strategy == "group":
        parts = _group_split(pool, data_config, seed)
        splits = {name: pool.subset(parts[name]) for name in SPLITS}
        info.update(group_key=data_config.group_key,
                    test_groups=_group_values(data_config.test_groups, "test_groups",
                                              data_config.group_key),
                    val_groups=_group_values(data_config.val_groups, "val_groups",
                                             data_config.group_key),
                    val_fraction=None if data_config.val_groups else data_config.val_fraction)
        info.update(_counts_and_ids(splits, with_ranges=False))
    else:
        raise DataError(f"unknown data.split {strategy!r}; choose one of {STRATEGIES}.")
    return splits, info


def resolve_splits(data: LoadedDataset, config: TrainingConfig
                   ) -> tuple[dict[str, RecordSplit], dict]:
    """The train/val/test splits :func:`build_dataloaders` uses for a loaded dataset.

    * unsplit file (imported recordings): :func:`make_splits` by ``data.split``;
    * stored split (synthetic or pre-split file) and ``data.split = record``: the stored
      split, unchanged (``split_info["stored"] = True``);
    * stored split and ``time``/``group``: the stored records are pooled and re-split.

    The split seed is ``synthetic.seed`` for synthetic data (the seed of its stored split)
    and 0 for files, so a file's split does not change with the training seed.

    Args:
        data: the dataset as read.
        config: uses ``config.data`` and ``synthetic.seed``.

    Returns:
        ``(splits, split_info)`` as for :func:`make_splits`.

    Raises:
        DataError: as :func:`make_splits`.

    Example:
        >>> splits, info = resolve_splits(read_dataset("data/cwru.h5"), config)
    """
    dc = config.data
    seed = int(config.synthetic.seed) if data.source == "synthetic" else 0
    if data.split_strategy == "none":
        splits, info = make_splits(data.splits[UNSPLIT], dc, dc.window_length, seed=seed)
        info["stored"] = False
        return splits, info
    if dc.split == "record":
        splits = {name: data.splits[name] for name in SPLITS}
        # The strategy that made the stored split decides the leakage rules it is checked by.
        info: dict[str, Any] = {"strategy": data.split_strategy, "stored": True}
        if data.source == "synthetic":
            info.update(seed=seed, val_fraction=dc.val_fraction, test_fraction=dc.test_fraction,
                        stratified_by="class x severity")
        info.update(_counts_and_ids(splits, with_ranges=not all(
            s.has_default_provenance for s in splits.values())))
        return splits, info
    pool = RecordSplit.concat([data.splits[name] for name in SPLITS])
    splits, info = make_splits(pool, dc, dc.window_length, seed=seed)
    info["stored"] = False
    info["resplit_from"] = data.split_strategy
    return splits, info
