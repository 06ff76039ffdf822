"""Data layer: synthetic journal-bearing generator, HDF5 datasets, windows and loaders.

Example:
    >>> from pfdtrain.data import build_dataloaders
    >>> bundle = build_dataloaders(config)
    >>> inputs, targets = next(iter(bundle.train_loader))  # [B, 1, L] float32, [B] int64
"""

from pfdtrain.data.dataset import (
    DataBundle,
    DataError,
    DataLeakageError,
    LoadedDataset,
    RecordSplit,
    WindowDataset,
    build_dataloaders,
    check_no_leakage,
    ensure_synthetic_dataset,
    read_dataset,
    write_dataset,
)
from pfdtrain.data.importing import (RecordingError, import_cwru, import_manifest,
                                     read_signal)
from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.data.splits import make_splits, resolve_splits
from pfdtrain.data.synthetic import CLASS_NAMES, SEVERITY_NAMES, generate_record, generate_records

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
    "make_splits",
    "resolve_splits",
]
