"""The synthetic dataset cache: one generated HDF5 file per generator configuration.

:func:`ensure_synthetic_dataset` returns ``<data.cache_dir>/synthetic-<12 hex>.h5``, where
the hex hashes the :class:`~pfdtrain.config.training_config.SyntheticConfig`, the generator
version and the split settings; the file is generated on first use (stored split by
record, stratified by class × severity) and reused afterwards (docs/data.md §5).

Example:
    >>> ensure_synthetic_dataset(TrainingConfig())  # doctest: +SKIP
    PosixPath('data/synthetic-3f9c1a2b7d4e.h5')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data.records import FORMAT, DataError, LoadedDataset, RecordSplit
from pfdtrain.data.splits import stratified_record_split
from pfdtrain.data.storage import keep_in_memory, read_dataset, write_dataset
from pfdtrain.data.synthetic_kinds import generator_module
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)

# The settings every kind shares. The journal key holds exactly these (with the resolved
# sampling rate), as it did before kinds existed, so journal cache files keep their names.
_SHARED_FIELDS: tuple[str, ...] = ("sampling_rate", "record_duration", "records_per_class",
                                   "seed", "noise_level")
# File name prefix per kind (journal files keep the historical synthetic-<hex>.h5).
_FILE_PREFIX: dict[str, str] = {"journal": "synthetic", "rolling_element": "synthetic-rolling"}


def synthetic_cache_key(config: TrainingConfig) -> dict:
    """Everything that determines the synthetic file's content (stored as generator_config).

    The key holds the kind, its generator version and its own settings (the
    ``synthetic.rolling_element`` section for that kind), the shared generator settings with
    the sampling rate resolved, and the split settings.

    Example:
        >>> synthetic_cache_key(TrainingConfig())["synthetic"]["sampling_rate"]
        6400
    """
    syn = config.synthetic
    shared = {name: getattr(syn, name) for name in _SHARED_FIELDS}
    shared["sampling_rate"] = syn.effective_sampling_rate
    key = {
        "format": FORMAT,
        "generator_version": generator_module(syn.kind).GENERATOR_VERSION,
        "synthetic": shared,
        "split": {"strategy": "record, stratified by class x severity",
                  "val_fraction": config.data.val_fraction,
                  "test_fraction": config.data.test_fraction,
                  "seed": syn.seed},
    }
    if syn.kind != "journal":
        shared["kind"] = syn.kind
        key[syn.kind] = dataclasses.asdict(getattr(syn, syn.kind))
    return key


def synthetic_dataset_path(config: TrainingConfig) -> Path:
    """``<data.cache_dir>/<prefix>-<12 hex>.h5``: the prefix names the kind (``synthetic`` for
    journal, ``synthetic-rolling``), the hex is a hash of the cache key."""
    key = json.dumps(synthetic_cache_key(config), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(config.data.cache_dir) / f"{_FILE_PREFIX[config.synthetic.kind]}-{digest}.h5"


def _generate_synthetic(config: TrainingConfig, path: Path) -> LoadedDataset:
    key = synthetic_cache_key(config)
    cfg = config.synthetic
    generator = generator_module(cfg.kind)
    class_names = list(generator.class_names(cfg))
    start = time.perf_counter()
    data = generator.generate_records(cfg, workers=cfg.workers, progress=True)
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
            metadata={k: data[k][idx] for k in generator.METADATA_FIELDS},
        )
    rate = float(cfg.effective_sampling_rate)
    digest = write_dataset(path, splits, class_names=class_names,
                           sampling_rate=rate, source="synthetic",
                           generator_config=key)
    elapsed = time.perf_counter() - start
    logger.info("generated synthetic %s dataset %s: %d records (%s) in %.1f s", cfg.kind, path,
                generator.num_records(cfg), ", ".join(f"{k} {len(v)}" for k, v in parts.items()),
                elapsed)
    return LoadedDataset(path, splits, class_names, rate, "synthetic",
                         digest, json.loads(json.dumps(key, sort_keys=True)))


def load_synthetic_dataset(config: TrainingConfig, in_memory: Optional[bool] = True
                           ) -> LoadedDataset:
    """The synthetic dataset for ``config`` read into memory, generated first if needed.

    Same rules as :func:`ensure_synthetic_dataset` (which returns only the path); used by
    the loaders so a freshly generated file is not read back from disk.

    Args:
        config: the run's configuration.
        in_memory: False streams the signals from the file (``read_dataset(...,
            in_memory=False)``); None decides by ``data.in_memory`` and
            ``data.memory_budget_mb`` (:func:`~pfdtrain.data.storage.keep_in_memory`).

    Example:
        >>> data = load_synthetic_dataset(TrainingConfig())  # doctest: +SKIP
        >>> sorted(data.splits), data.sampling_rate
        (['test', 'train', 'val'], 6400.0)
    """
    path = synthetic_dataset_path(config)
    key = json.loads(json.dumps(synthetic_cache_key(config), sort_keys=True))

    def in_memory_for(file: Path) -> bool:
        if in_memory is not None:
            return in_memory
        return keep_in_memory(file, config.data.in_memory, config.data.memory_budget_mb)

    if path.exists():
        try:
            data = read_dataset(path, verify_hash=True, in_memory=in_memory_for(path))
            if data.generator_config == key:
                logger.info("reusing synthetic dataset %s", path)
                return data
            reason = "its stored generator config differs from this run's"
        except DataError as exc:
            reason = str(exc)
        logger.warning("regenerating %s: %s", path, reason)
    data = _generate_synthetic(config, path)
    if in_memory_for(path):
        return data
    # Streamed: hand out the file, not the arrays just written (their memory goes now).
    return read_dataset(path, verify_hash=False, in_memory=False)


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
    return load_synthetic_dataset(config).path
