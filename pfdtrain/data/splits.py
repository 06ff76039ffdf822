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

Every split is checked by :func:`check_no_leakage` under the rules of
its strategy, and :func:`make_splits` returns a JSON-able ``split_info`` that names every
record (and time ranges), so a result can be traced to its exact split.

Example:
    >>> splits, info = make_splits(pool, config.data, window_length=2048)
    >>> info["strategy"], info["counts"]
    ('time', {'train': 40, 'val': 40, 'test': 40})
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from pfdtrain.config.training_config import DataConfig, TrainingConfig
from pfdtrain.data.records import (SPLITS, UNSPLIT, DataError, DataLeakageError, LoadedDataset,
                                   RecordSplit, is_text_metadata)
from pfdtrain.data.storage import missing_file_error

STRATEGIES: tuple[str, ...] = ("record", "time", "group")
PIECE_SEPARATOR = "#"  # time-split piece ids: "<record_id>#train"
_MAX_LISTED = 20  # values listed in error messages


class SplitWarning(UserWarning):
    """A split dropped data (e.g. a time-split part shorter than one window)."""


def _fmt_values(values: Sequence[Any]) -> str:
    shown = ", ".join(v if isinstance(v, str) else f"{v:g}" for v in values[:_MAX_LISTED])
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
# Stratified record split and the leakage gate
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
            raise missing_file_error(path)
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
                     strategy: Optional[str] = None, min_gap: int = 0,
                     time_sliced: Sequence[str] = ()) -> None:
    """Refuse splits that share a record, or samples of one recording.

    Two checks, for every split strategy:

    1. No record id appears in more than one split.
    2. Per source recording (``RecordSplit.sources``): with ``strategy`` ``"record"`` or
       ``"group"`` a recording may appear in one split only. Otherwise (``"time"``, or None
       for "whatever the data says") pieces of one recording may sit in several splits, but
       the sample ranges of pieces in different splits must not overlap and must be at least
       ``min_gap`` samples apart. Whole recordings (the default ranges) always overlap, so
       for record-level data check 2 is the same as check 1. ``time_sliced`` names splits
       whose recordings were cut in time under a ``record``/``group`` strategy (validation
       sliced from the training recordings): between two of those splits the time rule
       applies, between any other pair a shared recording is a leak.

    Args:
        path_or_splits: a dataset file, a :class:`LoadedDataset`, or a mapping from split
            name to a :class:`RecordSplit` or to a sequence of record ids.
        strategy: the split strategy that produced the splits (``record``, ``time``,
            ``group``), or None.
        min_gap: samples that must separate pieces of one recording in different splits
            (the time split's ``split_gap``).
        time_sliced: splits (e.g. ``("train", "val")``) that may share recordings under the
            time rule although ``strategy`` keeps recordings whole.

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
    sliced = set(time_sliced)
    problems: list[str] = []
    leaking: set[str] = set()
    for src in sorted(pieces):
        parts = pieces[src]
        in_splits = {p[0] for p in parts}
        if len(in_splits) < 2:
            continue
        if whole and not in_splits <= sliced:
            problems.append(f"{src} ({'/'.join(sorted(in_splits))})")
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
        rule = ("each recording must stay in one split" if whole and not sliced else
                "pieces of one recording in different splits must not share samples"
                + (f" and must be at least {min_gap} samples apart" if min_gap else "")
                + (f" (only {'/'.join(sorted(sliced))} may share a recording)"
                   if whole and sliced else ""))
        raise DataLeakageError(
            f"{len(leaking)} source recording(s) leak across splits{where}"
            f"{f' ({strategy} split)' if strategy else ''}: {shown}{more}; {rule}. Shared "
            f"samples inflate validation/test accuracy; rebuild the splits with "
            f"pfdtrain.data.splits.make_splits.")


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


def _time_split(pool: RecordSplit, val_fraction: float, test_fraction: float,
                window_length: int, gap: int) -> tuple[dict[str, RecordSplit], list[dict]]:
    pieces: dict[str, list[int]] = {name: [] for name in SPLITS}
    spans: dict[str, list[tuple[int, int]]] = {name: [] for name in SPLITS}
    dropped: list[dict] = []
    lengths = pool.lengths
    for i in range(len(pool)):
        n = int(lengths[i])
        for name, (start, end) in time_boundaries(n, val_fraction, test_fraction,
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

def _group_values(values: Sequence[Any], field: str, key: str, text: bool = False
                  ) -> list[Any]:
    """The configured group values in the column's kind: text for a text column (a bearing
    code; a number in the config is read as its text, ``1`` -> ``"1"``), else floats."""
    if text:
        return [str(v).strip() for v in values]
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise DataError(f"data.{field} value {v!r} is not a number; the values of metadata "
                            f"column '{key}' are numbers.") from None
    return out


def _group_split(pool: RecordSplit, dc: DataConfig, seed: int) -> dict[str, np.ndarray]:
    """Record indices per split: held-out values of ``dc.group_key`` to test/val, the rest
    to train; without ``val_groups`` the validation records come from the training groups
    by a record split (possibly none: the caller then slices validation in time)."""
    key = dc.group_key
    if key not in pool.metadata:
        available = sorted(pool.metadata) or ["(none)"]
        raise DataError(f"group split: metadata column '{key}' (data.group_key) does not exist; "
                        f"available columns: {', '.join(available)}. Set data.group_key to one "
                        f"of them, or add the column to the import manifest.")
    column = pool.metadata[key]
    text = is_text_metadata(column)
    if text:
        available: list[Any] = sorted({str(v) for v in column if str(v)})
    else:
        available = sorted({float(v) for v in column[np.isfinite(column)]})
    test_values = _group_values(dc.test_groups, "test_groups", key, text)
    val_values = _group_values(dc.val_groups, "val_groups", key, text)
    if not test_values and not val_values:
        raise DataError(f"group split needs held-out values: set data.test_groups (and "
                        f"optionally data.val_groups) to values of '{key}', available: "
                        f"{_fmt_values(available)}.")
    both = sorted(set(test_values) & set(val_values))
    if both:
        raise DataError(f"group split: value(s) {_fmt_values(both)} of '{key}' are in both "
                        f"data.test_groups and data.val_groups; a group belongs to one split.")

    def members(values: list[Any], field: str) -> np.ndarray:
        mask = np.zeros(len(pool), bool)
        missing = []
        for v in values:
            hit = (np.array([str(x) == v for x in column], dtype=bool) if text
                   else np.isclose(column, v, rtol=1e-9, atol=1e-12))
            if not hit.any():
                missing.append(v)
            mask |= hit
        if values and len(missing) == len(values):
            raise DataError(f"group split: data.{field} {_fmt_values(values)} match(es) no "
                            f"record of metadata column '{key}'; available values: "
                            f"{_fmt_values(available)}.")
        if missing:  # e.g. test_groups [1, 2, 3] on a set that has loads 0 and 1 only
            warnings.warn(f"group split: data.{field} value(s) {_fmt_values(missing)} match no "
                          f"record of '{key}' (available: {_fmt_values(available)}); held out: "
                          f"{_fmt_values([v for v in values if v not in missing])}.",
                          SplitWarning, stacklevel=4)
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


def _slice_validation(splits: dict[str, RecordSplit], val_fraction: float, window_length: int,
                      gap: int) -> tuple[dict[str, RecordSplit], list[dict]]:
    """Validation cut in time from the end of every training recording (the time split's
    rule: ``gap`` samples between the parts), for training sides with too few recordings
    for a record-level validation split. Test stays as it is."""
    pieces, dropped = _time_split(splits["train"], val_fraction, 0.0, window_length, gap)
    return {"train": pieces["train"], "val": pieces["val"], "test": splits["test"]}, dropped


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
        ``strategy``, the parameters used, ``counts`` and ``ids`` per split, ``validation``
        (where the validation split came from: ``records``, ``time`` (the time split),
        ``val_groups``, ``time_slice`` or ``none``), and for the time split and time-sliced
        validation ``split_gap``, ``ranges`` (``[source, start, end]`` per piece) and
        ``dropped`` (parts shorter than one window). ``time_slice``: the record or group
        split left no validation record although ``val_fraction > 0`` (too few training
        recordings), so validation is the last ``val_fraction`` of every training recording,
        ``split_gap`` samples after its training part (``time_sliced`` names the two splits
        that share recordings). Time-split pieces are named ``<record_id>#<split>``
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
    gap = int(window_length if data_config.split_gap is None else data_config.split_gap)
    if strategy == "record":
        parts = _record_split(pool, data_config.val_fraction, data_config.test_fraction, seed)
        splits = {name: pool.subset(parts[name]) for name in SPLITS}
        info.update(val_fraction=data_config.val_fraction,
                    test_fraction=data_config.test_fraction,
                    stratified_by="class x severity (severity -1 = unknown)")
        info["validation"] = "records"
    elif strategy == "time":
        splits, dropped = _time_split(pool, data_config.val_fraction,
                                      data_config.test_fraction, int(window_length), gap)
        info.update(val_fraction=data_config.val_fraction,
                    test_fraction=data_config.test_fraction, split_gap=gap,
                    window_length=int(window_length), dropped=dropped)
        info["validation"] = "time"
    elif strategy == "group":
        parts = _group_split(pool, data_config, seed)
        splits = {name: pool.subset(parts[name]) for name in SPLITS}
        text = is_text_metadata(pool.metadata[data_config.group_key])
        info.update(group_key=data_config.group_key,
                    test_groups=_group_values(data_config.test_groups, "test_groups",
                                              data_config.group_key, text),
                    val_groups=_group_values(data_config.val_groups, "val_groups",
                                             data_config.group_key, text),
                    val_fraction=None if data_config.val_groups else data_config.val_fraction)
        info["validation"] = "val_groups" if data_config.val_groups else "records"
    else:
        raise DataError(f"unknown data.split {strategy!r}; choose one of {STRATEGIES}.")
    if (info["validation"] == "records" and len(splits["val"]) == 0
            and data_config.val_fraction > 0 and len(splits["train"])):
        # Too few training recordings per class for a record-level validation split (CWRU:
        # one per class and load): validate on the end of each training recording instead,
        # with the time split's gap, rather than train without validation.
        try:
            sliced, dropped = _slice_validation(splits, data_config.val_fraction,
                                                int(window_length), gap)
        except DataError as exc:  # recordings too short to give up a slice: keep them whole
            warnings.warn(f"no validation split: too few training recordings for a "
                          f"record-level one, and they are too short to slice one off in "
                          f"time ({exc})", SplitWarning, stacklevel=3)
        else:
            splits = sliced
            info.update(validation="time_slice", time_sliced=["train", "val"], split_gap=gap,
                        window_length=int(window_length), dropped=dropped)
    with_ranges = info["validation"] in ("time", "time_slice")
    if len(splits["val"]) == 0:
        info["validation"] = "none"  # val_fraction 0, or nothing left to validate on
    info.update(_counts_and_ids(splits, with_ranges=with_ranges))
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
        info["validation"] = "records" if len(splits["val"]) else "none"
        info.update(_counts_and_ids(splits, with_ranges=not all(
            s.has_default_provenance for s in splits.values())))
        return splits, info
    pool = RecordSplit.concat([data.splits[name] for name in SPLITS])
    splits, info = make_splits(pool, dc, dc.window_length, seed=seed)
    info["stored"] = False
    info["resplit_from"] = data.split_strategy
    return splits, info
