"""Data layer: synthetic journal-bearing generator, HDF5 datasets, splits, windows and loaders.

One module per concern (no import cycles; each imports only those above it):

* :mod:`~pfdtrain.data.records`: ``RecordSplit``, ``LoadedDataset``, ``DataError``;
* :mod:`~pfdtrain.data.storage`: the HDF5 layout, ``write_dataset``/``read_dataset``, hash;
* :mod:`~pfdtrain.data.splits`: record/time/group splits and the leakage gate;
* :mod:`~pfdtrain.data.synthetic` and :mod:`~pfdtrain.data.synthetic_cache`: the generator
  and its cached dataset file;
* :mod:`~pfdtrain.data.windows`: ``WindowDataset``, ``DataBundle``, ``build_dataloaders``;
* :mod:`~pfdtrain.data.importers`: recordings in their native layouts → a dataset file.

Example:
    >>> from pfdtrain.data import build_dataloaders
    >>> bundle = build_dataloaders(config)
    >>> inputs, targets = next(iter(bundle.train_loader))  # [B, 1, L] float32, [B] int64
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module that defines it. Loaded on first access (PEP 562), so importing
# one data module (e.g. ``pfdtrain.data.spectral`` from the models) does not import the
# whole data layer, its config dependency included: no import cycle through this package.
_EXPORTS: dict[str, str] = {
    "CLASS_NAMES": "synthetic", "SEVERITY_NAMES": "synthetic", "generate_record": "synthetic",
    "generate_records": "synthetic", "ensure_synthetic_dataset": "synthetic_cache",
    "build_dataloaders": "windows", "DataBundle": "windows", "WindowDataset": "windows",
    "check_no_leakage": "splits", "make_splits": "splits", "resolve_splits": "splits",
    "DataError": "records", "DataLeakageError": "records", "RecordSplit": "records",
    "LoadedDataset": "records", "EpochShuffleSampler": "sampler", "read_dataset": "storage",
    "write_dataset": "storage", "RecordingError": "importers.readers",
    "read_signal": "importers.readers", "import_manifest": "importers.manifest",
    "import_cwru": "importers.cwru", "LAYOUTS": "importers",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pfdtrain.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pfdtrain.data.{_EXPORTS[name]}"), name)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "CLASS_NAMES",
    "SEVERITY_NAMES",
    "generate_record",
    "generate_records",
    "ensure_synthetic_dataset",
    "build_dataloaders",
    "DataBundle",
    "WindowDataset",
    "check_no_leakage",
    "DataError",
    "DataLeakageError",
    "EpochShuffleSampler",
    "RecordSplit",
    "LoadedDataset",
    "read_dataset",
    "write_dataset",
    "RecordingError",
    "read_signal",
    "import_manifest",
    "import_cwru",
    "LAYOUTS",
    "make_splits",
    "resolve_splits",
]
