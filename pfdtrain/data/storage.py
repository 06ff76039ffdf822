"""Dataset files on disk: the ``pfdtrain-dataset-v1`` HDF5 layout and its content hash.

One HDF5 file holds a whole dataset (docs/data.md §4): per split (or one unsplit
``records`` group) all records concatenated in one float32 array with an offsets table,
labels, ids, severities and per-record metadata. :func:`write_dataset` writes atomically
(temp file, fsync, ``os.replace``) and stores a sha256 over the content;
:func:`read_dataset` checks the format, structure and (optionally) that hash.

Example:
    >>> split = RecordSplit.from_records([np.zeros(8000)], [0], ["rig-a-001"])
    >>> digest = write_dataset("rig.h5", {"records": split}, class_names=["normal"],
    ...                        sampling_rate=12000.0, source="rig A")  # doctest: +SKIP
    >>> read_dataset("rig.h5").content_hash == digest  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from pfdtrain.data.records import (FORMAT, SPLIT_STRATEGIES, SPLITS, UNSPLIT, DataError,
                                   LoadedDataset, RecordSplit, is_text_metadata)
from pfdtrain.data.signal_store import LazySignals
from pfdtrain.utils.io import atomic_path



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
        if isinstance(arr, LazySignals):  # streamed: hashed chunk by chunk, same digest
            h.update(f"{name}|{np.dtype(dtype).str}|{arr.shape}|".encode())
            for chunk in arr.iter_chunks():
                h.update(memoryview(np.ascontiguousarray(chunk, dtype=np.dtype(dtype))))
            return
        arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(memoryview(arr))  # the array's own buffer: no copy of a large dataset

    for split_name in _split_names(splits):
        split = splits[split_name]
        add(f"{split_name}/signals", split.signals, "<f4")
        add(f"{split_name}/record_offsets", split.record_offsets, "<i8")
        add(f"{split_name}/labels", split.labels, "<i8")
        add(f"{split_name}/severities", split.severities, "<i8")
        h.update(f"{split_name}/record_ids|".encode() + json.dumps(list(split.record_ids)).encode())
        for key in sorted(split.metadata):
            values = split.metadata[key]
            if is_text_metadata(values):  # text columns: only files that have them change
                h.update(f"{split_name}/metadata/{key}|str|".encode()
                         + json.dumps([str(v) for v in values]).encode())
            else:
                add(f"{split_name}/metadata/{key}", values, "<f8")
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
                        f"Rewrite the file with pfdtrain.data.write_dataset.")
    count, first = _non_finite(split.signals)
    if count:
        # NaN/inf would turn every loss and gradient into NaN several minutes into training.
        record = int(np.searchsorted(off, first, side="right")) - 1
        raise DataError(f"{where}: split '{name}' holds {count} NaN/inf sample(s); the "
                        f"first is sample {first - int(off[record])} of record "
                        f"{split.record_ids[record]}. Clean or leave out that recording and "
                        f"write the file again (pfdtrain data import refuses such recordings).")


def _non_finite(signals: Union[np.ndarray, LazySignals]) -> tuple[int, int]:
    """(number of NaN/inf samples, index of the first); a streamed split chunk by chunk."""
    chunks = signals.iter_chunks() if isinstance(signals, LazySignals) else [signals]
    count, first, position = 0, -1, 0
    for chunk in chunks:
        bad = ~np.isfinite(chunk)
        n = int(bad.sum())
        if n and first < 0:
            first = position + int(np.argmax(bad))
        count += n
        position += chunk.shape[0]
    return count, first


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
    if not list(class_names):
        raise DataError(f"{path}: no class names given; name every class index "
                        f"(class_names=[...]).")
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
                # HDF5's default contiguous layout (no chunks, no compression): a streamed
                # window is then one plain read at a computable file offset.
                g.create_dataset("signals", data=np.asarray(split.signals, dtype="<f4"))
                g.create_dataset("record_offsets", data=np.asarray(split.record_offsets, "<i8"))
                g.create_dataset("labels", data=np.asarray(split.labels, dtype="<i8"))
                g.create_dataset("record_ids", data=np.array(split.record_ids, dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
                g.create_dataset("severities", data=np.asarray(split.severities, dtype="<i8"))
                meta = g.create_group("metadata")
                for key, values in split.metadata.items():
                    if is_text_metadata(values):
                        meta.create_dataset(key, data=np.array([str(v) for v in values],
                                                               dtype=object),
                                            dtype=h5py.string_dtype("utf-8"))
                    else:
                        meta.create_dataset(key, data=np.asarray(values, dtype="<f8"))
                if not split.has_default_provenance:  # pieces of recordings (e.g. time split)
                    g.create_dataset("sources", data=np.array(split.sources, dtype=object),
                                     dtype=h5py.string_dtype("utf-8"))
                    g.create_dataset("ranges", data=np.asarray(split.ranges, dtype="<i8"))
    return digest


def missing_file_error(path: Path) -> DataError:
    """The error for a dataset file that does not exist (shared by reader and leakage check)."""
    return DataError(f"dataset file {path} does not exist. Set data.source to 'synthetic' to "
                     f"use the built-in generator, or to the path of an .h5 file written by "
                     f"pfdtrain.data.write_dataset.")


def read_dataset(path: Union[str, Path], verify_hash: bool = True,
                 in_memory: bool = True) -> LoadedDataset:
    """Read a dataset file into memory and check its format and structure.

    Args:
        path: an ``.h5`` file in the ``pfdtrain-dataset-v1`` layout.
        verify_hash: recompute the content hash and compare it with the stored one.
        in_memory: False leaves the signals in the file: every split's ``signals`` is a
            :class:`~pfdtrain.data.signal_store.LazySignals` (windows are read per batch;
            the NaN check and the hash read the file in chunks). Everything else (offsets,
            labels, ids, metadata) is read into memory either way.

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
        raise missing_file_error(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}): it is truncated, damaged "
                        f"or not a dataset file. Write it again (pfdtrain data import; delete "
                        f"it if it is a synthetic cache) or point data.source at a valid "
                        f"file.") from None
    with f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise DataError(f"{path} is not a pfdtrain dataset (format attribute {fmt!r}, "
                            f"expected {FORMAT!r}). Convert the recordings with "
                            f"pfdtrain.data.write_dataset.")
        try:
            class_names = list(json.loads(f.attrs["class_names"]))
            sampling_rate = float(f.attrs["sampling_rate"])
            stored_hash = str(f.attrs["content_hash"])
            source = str(f.attrs.get("source", ""))
            generator_config = json.loads(f.attrs.get("generator_config", "null"))
            strategy = str(f.attrs.get("split_strategy", "record"))
            splits = {name: _read_split(f[name], None if in_memory else path)
                      for name in ((UNSPLIT,) if strategy == "none" else SPLITS)}
        except (KeyError, ValueError, TypeError, OSError) as exc:  # OSError: unreadable data
            raise DataError(f"{path} is incomplete or damaged ({exc}); every split needs "
                            f"signals, record_offsets, labels, record_ids and severities. "
                            f"Rewrite it with pfdtrain.data.write_dataset.") from None
    if not class_names:
        raise DataError(f"{path} lists no class names (attribute class_names is empty); a "
                        f"dataset needs at least one labelled class. Write it again with the "
                        f"class names (pfdtrain data import takes them from the labels).")
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


def _read_split(g: h5py.Group, stream_from: Optional[Path] = None) -> RecordSplit:
    meta = g.get("metadata")
    signals = g["signals"]
    return RecordSplit(
        signals=(signals[()].astype(np.float32, copy=False) if stream_from is None
                 else LazySignals.from_file(stream_from, signals.name, signals.shape[0])),
        record_offsets=g["record_offsets"][()].astype(np.int64, copy=False),
        labels=g["labels"][()].astype(np.int64, copy=False),
        record_ids=[str(s) for s in g["record_ids"].asstr()[()]],
        severities=g["severities"][()].astype(np.int64, copy=False),
        metadata={k: _read_metadata(meta[k]) for k in meta} if meta is not None else {},
        sources=[str(s) for s in g["sources"].asstr()[()]] if "sources" in g else None,
        ranges=g["ranges"][()].astype(np.int64, copy=False) if "ranges" in g else None,
    )


def _read_metadata(d: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(d.dtype) is not None:  # a text column (e.g. bearing codes)
        return np.array([str(s) for s in d.asstr()[()]], dtype=object)
    return d[()].astype(np.float64, copy=False)


def signal_bytes(path: Union[str, Path]) -> Optional[int]:
    """Bytes the signals of every split of a dataset file take in memory (float32), or None
    when the file cannot be read as a dataset (:func:`read_dataset` then says why)."""
    try:
        with h5py.File(path, "r") as f:
            return sum(int(f[name]["signals"].size) * 4 for name in (*SPLITS, UNSPLIT)
                       if name in f and "signals" in f[name])
    except (OSError, KeyError, TypeError):
        return None


def keep_in_memory(path: Union[str, Path], mode: str, budget_mb: float) -> bool:
    """Whether to read a dataset file's signals into memory (``data.in_memory``).

    Args:
        path: the dataset file.
        mode: ``"true"``, ``"false"`` or ``"auto"`` (in memory when the signals take at most
            ``budget_mb`` MiB).
        budget_mb: the memory budget of ``auto`` (``data.memory_budget_mb``).

    Example:
        >>> keep_in_memory("data/huge.h5", "auto", 2048)  # doctest: +SKIP
        False
    """
    if mode in ("true", "false"):
        return mode == "true"
    size = signal_bytes(path)
    return size is None or size <= budget_mb * 2 ** 20


def verify_content_hash(data: LoadedDataset) -> None:
    """Raise DataError when the arrays no longer match the file's stored content hash."""
    actual = content_hash(data.splits, data.class_names, data.sampling_rate)
    if actual != data.content_hash:
        raise DataError(f"{data.path}: content hash mismatch (stored {data.content_hash[:12]}, "
                        f"computed {actual[:12]}): the file was modified after it was written. "
                        f"Regenerate it, or rewrite it with pfdtrain.data.write_dataset.")
