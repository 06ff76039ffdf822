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
from pfdtrain.data.synthetic import (CLASS_NAMES, GENERATOR_VERSION, METADATA_FIELDS,
                                     generate_records, num_records)
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)



def synthetic_cache_key(config: TrainingConfig) -> dict:
    """Everything that determines the synthetic file's content (stored as generator_config)."""
    synthetic = dataclasses.asdict(config.synthetic)
    # How many processes generate the records does not change a byte of the file (records
    # are seeded by index), so it must not change the file's name either.
    synthetic.pop("workers")
    return {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "synthetic": synthetic,
        "split": {"strategy": "record, stratified by class x severity",
                  "val_fraction": config.data.val_fraction,
                  "test_fraction": config.data.test_fraction,
                  "seed": config.synthetic.seed},
    }


def synthetic_dataset_path(config: TrainingConfig) -> Path:
    """``<data.cache_dir>/synthetic-<12 hex>.h5``; the hex is a hash of the cache key."""
    key = json.dumps(synthetic_cache_key(config), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(config.data.cache_dir) / f"synthetic-{digest}.h5"


def _generate_synthetic(config: TrainingConfig, path: Path) -> LoadedDataset:
    key = synthetic_cache_key(config)
    cfg = config.synthetic
    start = time.perf_counter()
    data = generate_records(cfg, workers=cfg.workers, progress=True)
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
            metadata={k: data[k][idx] for k in METADATA_FIELDS},
        )
    digest = write_dataset(path, splits, class_names=CLASS_NAMES,
                           sampling_rate=float(cfg.sampling_rate), source="synthetic",
                           generator_config=key)
    elapsed = time.perf_counter() - start
    logger.info("generated synthetic dataset %s: %d records (%s) in %.1f s", path,
                num_records(cfg), ", ".join(f"{k} {len(v)}" for k, v in parts.items()), elapsed)
    return LoadedDataset(path, splits, list(CLASS_NAMES), float(cfg.sampling_rate), "synthetic",
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
