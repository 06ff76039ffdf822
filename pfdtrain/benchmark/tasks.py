"""Transfer tasks of the benchmark: which recordings are source, target and test.

A *transfer task* trains on the recordings of one operating condition (the source) and
tests on another's (the target). :func:`write_transfer_task` writes it as two ordinary
dataset files, so every run of the benchmark is an ordinary ``pfdtrain train``:

* ``<task>.h5`` (unsplit): the source recordings whole (metadata ``domain = source``) and
  the **second half** of every target recording (``domain = target``). The runs split it
  with ``data.split: group``, ``data.group_key: domain``, ``data.test_groups: [target]``;
  validation is cut from the end of each source recording, so model selection sees the
  source alone.
* ``<task>-target.h5``: the **first half** of every target recording, the unlabeled data that
  domain adaptation aligns to (``data.target_source``). Adaptation never sees the windows it
  is tested on, and no method ever reads a target label in training (a stricter protocol
  than the transductive one of most published UDA benchmarks, which adapt on the test
  windows themselves).

Only the classes present on both sides are kept, relabelled in their original order: the
shared CWRU folder has no normal recording at 1 HP, so its 0 HP ↔ 1 HP tasks have 9 classes.

Example:
    >>> task = write_transfer_task(pool, names, 12000.0, source=pool.metadata["load"] == 0,
    ...                            target=pool.metadata["load"] == 1, out_dir=Path("out/data"),
    ...                            name="cwru-0to1", description="CWRU 0 HP → 1 HP")
    ...                                                     # doctest: +SKIP
    >>> task.classes                                         # doctest: +SKIP
    ('IR007', 'IR014', ...)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from pfdtrain.data.records import DataError, RecordSplit, metadata_array
from pfdtrain.data.storage import read_dataset, write_dataset

SOURCE, TARGET = "source", "target"
TARGET_PIECE, ADAPT_PIECE = "test", "adapt"  # record-id suffixes of the two target halves


@dataclasses.dataclass(frozen=True)
class TransferFiles:
    """The two files of a transfer task and what they hold."""

    data: Path
    target: Path
    classes: tuple[str, ...]
    source_recordings: int
    target_recordings: int
    dropped_classes: tuple[str, ...]

    def overrides(self) -> list[str]:
        """Config overrides that train on the source and test on the target's second half."""
        return [f"data.source={self.data}", "data.split=group", "data.group_key=domain",
                f"data.test_groups=[{TARGET}]", "data.val_groups=[]"]

    def adaptation_overrides(self) -> list[str]:
        """The unlabeled target of domain adaptation: the target's first half."""
        return [f"data.target_source={self.target}"]


def _halves(split: RecordSplit, indices: np.ndarray, gap: int) -> tuple[RecordSplit, RecordSplit]:
    """Every record of ``indices`` cut in two: ``[0, half - gap)`` and ``[half, length)``."""
    firsts, seconds = [], []
    for i in indices:
        lo, _ = split.ranges[i]
        n = int(split.lengths[i])
        half = n // 2
        firsts.append((i, 0, max(half - gap, 0), lo))
        seconds.append((i, half, n, lo))

    def cut(parts: list, suffix: str) -> RecordSplit:
        idx = np.array([p[0] for p in parts], dtype=np.int64)
        return RecordSplit.from_records(
            [split.record(int(i))[a:b] for i, a, b, _ in parts], split.labels[idx],
            [f"{split.record_ids[i]}#{suffix}" for i, *_ in parts], split.severities[idx],
            {k: v[idx] for k, v in split.metadata.items()},
            sources=[split.sources[i] for i, *_ in parts],
            ranges=np.array([[lo + a, lo + b] for _, a, b, lo in parts], dtype=np.int64))

    return cut(firsts, ADAPT_PIECE), cut(seconds, TARGET_PIECE)


def _relabel(split: RecordSplit, mapping: dict[int, int], domain: str) -> RecordSplit:
    meta = dict(split.metadata)
    meta["domain"] = metadata_array([domain] * len(split))
    return dataclasses.replace(split, labels=np.array([mapping[int(y)] for y in split.labels],
                                                      dtype=np.int64), metadata=meta)


def write_transfer_task(pool: RecordSplit, class_names: Sequence[str], sampling_rate: float, *,
                        source: np.ndarray, target: np.ndarray, out_dir: Path, name: str,
                        description: str, pool_hash: str, min_length: int, gap: int = 0
                        ) -> TransferFiles:
    """Write ``<out_dir>/<name>.h5`` and ``<name>-target.h5`` (kept when already there).

    Args:
        pool: every recording of the dataset.
        class_names: the dataset's class names (index = label).
        sampling_rate: Hz.
        source: bool mask over ``pool``: the recordings to train (and validate) on.
        target: bool mask: the recordings of the other condition (halved: adapt / test).
        out_dir: where the files go.
        name: the task's name (file stem).
        description: where the data came from (stored in the files).
        pool_hash: content hash of the pool's dataset: files written from other data (or
            with other settings) are rewritten, never reused.
        min_length: samples each target half must hold (one window).
        gap: samples left out between the two target halves (e.g. one window).

    Raises:
        DataError: no source or no target recording, no class on both sides, or target
            recordings too short to halve.
    """
    source, target = np.asarray(source, bool), np.asarray(target, bool)
    if source.shape != (len(pool),) or target.shape != (len(pool),):
        raise ValueError("source and target must be masks over the pool's recordings")
    if (source & target).any():
        raise DataError(f"task {name}: {int((source & target).sum())} recording(s) are both "
                        f"source and target; the conditions must not overlap")
    if not source.any() or not target.any():
        side = SOURCE if not source.any() else TARGET
        raise DataError(f"task {name}: no {side} recording; the folder lacks that condition")
    src_labels = set(pool.labels[source].tolist())
    tgt_labels = set(pool.labels[target].tolist())
    shared = sorted(src_labels & tgt_labels)
    if not shared:
        raise DataError(f"task {name}: no class has recordings on both sides")
    dropped = tuple(class_names[c] for c in sorted((src_labels | tgt_labels) - set(shared)))
    mapping = {old: new for new, old in enumerate(shared)}
    keep = np.isin(pool.labels, shared)
    classes = tuple(class_names[c] for c in shared)
    tgt_idx = np.flatnonzero(target & keep)
    short = [pool.record_ids[i] for i in tgt_idx if pool.lengths[i] // 2 - gap < min_length]
    if short:
        raise DataError(f"task {name}: target recording(s) {', '.join(short[:5])} are too "
                        f"short: the target is halved into adaptation and test parts, each "
                        f"holding at least one window of {min_length} samples, {gap} samples "
                        f"apart. Use a shorter data.window_length or longer recordings.")
    files = TransferFiles(out_dir / f"{name}.h5", out_dir / f"{name}-target.h5", classes,
                          int((source & keep).sum()), int(tgt_idx.size), dropped)
    recipe = {"benchmark_task": name, "pool_hash": pool_hash, "gap": int(gap),
              "classes": list(classes), "source": [pool.record_ids[i] for i in
                                                   np.flatnonzero(source & keep)],
              "target": [pool.record_ids[i] for i in tgt_idx]}
    if all(_written_from(p, recipe) for p in (files.data, files.target)):
        return files
    adapt, test = _halves(pool, tgt_idx, gap)
    main = RecordSplit.concat([_relabel(pool.subset(np.flatnonzero(source & keep)), mapping,
                                        SOURCE), _relabel(test, mapping, TARGET)])
    what = f"{description}; benchmark task {name}"
    write_dataset(files.data, {"records": main}, class_names=classes,
                  sampling_rate=sampling_rate, source=what, generator_config=recipe,
                  split_strategy="none")
    write_dataset(files.target, {"records": _relabel(adapt, mapping, TARGET)},
                  class_names=classes, sampling_rate=sampling_rate,
                  source=f"{what} (target adaptation half)", generator_config=recipe,
                  split_strategy="none")
    return files


def _written_from(path: Path, recipe: dict) -> bool:
    """Whether ``path`` exists and was written by this task from the same data and settings."""
    try:
        return read_dataset(path, verify_hash=False, in_memory=False).generator_config == recipe
    except (OSError, DataError):
        return False
