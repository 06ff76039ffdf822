"""Datasets larger than memory: streamed batches equal in-memory ones (issue 10 §5)."""

from __future__ import annotations

import filecmp
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data import DataError, RecordSplit, build_dataloaders, write_dataset
from pfdtrain.data.signal_store import H5Signals, LazySignals
from pfdtrain.data.storage import content_hash, read_dataset
from pfdtrain.data.synthetic import generate_records, generation_workers
from pfdtrain.data.synthetic_cache import ensure_synthetic_dataset, synthetic_dataset_path


def config(cache: Path, in_memory: str, **data: object) -> TrainingConfig:
    return TrainingConfig.from_dict({
        "seed": 3,
        "data": {"cache_dir": str(cache), "window_length": 800, "window_stride": 300,
                 "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 8,
                 "in_memory": in_memory, **data},
        "synthetic": {"records_per_class": 12, "record_duration": 0.5, "seed": 9},
    })


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def unsplit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Imported-style file: unsplit recordings of several lengths, a text and a number column."""
    rng = np.random.default_rng(4)
    lengths = [15000, 12300, 19200, 11700, 16665, 14400, 21000, 13200]
    split = RecordSplit.from_records(
        [rng.standard_normal(n).astype(np.float32) * (1 + i % 3) for i, n in enumerate(lengths)],
        [i % 2 for i in range(8)], [f"rec-{i}" for i in range(8)],
        metadata={"load": [0, 1, 2, 3, 0, 1, 2, 3], "bearing": list("AABBCCDD")})
    path = tmp_path_factory.mktemp("files") / "unsplit.h5"
    write_dataset(path, {"records": split}, class_names=["a", "b"], sampling_rate=1000.0,
                  source="test rig", split_strategy="none")
    return path


def batches(loader: torch.utils.data.DataLoader | None, epochs: int = 1) -> list:
    if loader is None:
        return []
    out = []
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        out.extend(loader)
    return out


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, dict):
                assert all(torch.equal(u[k], v[k]) for k in u) and u.keys() == v.keys()
            else:
                assert u.dtype == v.dtype and torch.equal(u, v)


def assert_streams_like_memory(memory_cfg: TrainingConfig, stream_cfg: TrainingConfig,
                               with_metadata: bool = False) -> None:
    memory = build_dataloaders(memory_cfg, with_metadata=with_metadata)
    streamed = build_dataloaders(stream_cfg, with_metadata=with_metadata)
    assert isinstance(memory.train_loader.dataset.signals, np.ndarray)
    assert isinstance(streamed.train_loader.dataset.signals, LazySignals)
    assert streamed.content_hash == memory.content_hash
    assert streamed.split_info == memory.split_info
    assert_same(batches(streamed.train_loader, 2), batches(memory.train_loader, 2))
    assert_same(batches(streamed.val_loader), batches(memory.val_loader))
    assert_same(batches(streamed.test_loader), batches(memory.test_loader))


@pytest.mark.parametrize("with_metadata", [False, True])
def test_stored_split_streams_the_same_batches(cache: Path, with_metadata: bool) -> None:
    assert_streams_like_memory(config(cache, "true"), config(cache, "false"), with_metadata)


@pytest.mark.parametrize("split", [
    {"split": "time", "val_fraction": 0.2, "test_fraction": 0.2},
    {"split": "group", "group_key": "bearing", "test_groups": ["D"]},
    {"split": "group", "group_key": "load", "test_groups": [3], "val_groups": [2]},
    {"split": "record", "val_fraction": 0.25, "test_fraction": 0.25},
])
def test_unsplit_file_split_while_streaming_gives_the_same_batches(cache: Path, unsplit: Path,
                                                                   split: dict) -> None:
    assert_streams_like_memory(config(cache, "true", source=str(unsplit), **split),
                               config(cache, "false", source=str(unsplit), **split))


def test_worker_processes_open_their_own_handles(cache: Path) -> None:
    memory = build_dataloaders(config(cache, "true"))
    streamed = build_dataloaders(config(cache, "false", num_workers=2))
    assert_same(batches(streamed.train_loader), batches(memory.train_loader))
    sources = streamed.train_loader.dataset.signals.sources
    # The main process read nothing for the batches: only the workers opened the file.
    assert all(os.getpid() not in s._handles for s in sources)
    restored = pickle.loads(pickle.dumps(sources[0]))
    assert restored._handles == {} and restored.length == sources[0].length


def test_noisy_copies_of_a_streamed_dataset(cache: Path) -> None:
    memory = build_dataloaders(config(cache, "true")).test_loader.dataset.with_noise(8.0, 5)
    streamed = build_dataloaders(config(cache, "false")).test_loader.dataset.with_noise(8.0, 5)
    for i in (0, 7, len(memory) - 1):
        assert torch.equal(streamed[i][0], memory[i][0])
    idx = [9, 2, 30, 2]
    assert torch.equal(streamed.__getitems__(idx).collated[0], memory.__getitems__(idx).collated[0])


def test_auto_streams_above_the_budget_only(cache: Path) -> None:
    small = build_dataloaders(config(cache, "auto"))  # ~2 MiB, default budget 2048 MiB
    assert isinstance(small.train_loader.dataset.signals, np.ndarray)
    big = build_dataloaders(config(cache, "auto", memory_budget_mb=1))
    assert isinstance(big.train_loader.dataset.signals, LazySignals)


def test_yaml_booleans_are_accepted_for_in_memory() -> None:
    cfg = TrainingConfig.from_dict({"data": {"in_memory": False}})
    assert cfg.data.in_memory == "false"
    assert TrainingConfig.from_dict({"data": {"in_memory": True}}).data.in_memory == "true"


def test_streamed_file_is_checked_like_a_read_one(cache: Path, tmp_path: Path) -> None:
    path = ensure_synthetic_dataset(config(cache, "true"))
    data = read_dataset(path, in_memory=False)  # verifies the hash chunk by chunk
    assert content_hash(data.splits, data.class_names, data.sampling_rate) == data.content_hash
    tampered = tmp_path / "tampered.h5"
    tampered.write_bytes(path.read_bytes())
    with h5py.File(tampered, "r+") as f:
        f["val/signals"][100] += 1.0
    with pytest.raises(DataError, match="content hash mismatch"):
        build_dataloaders(config(cache, "false", source=str(tampered)))
    with h5py.File(tampered, "r+") as f:
        f["val/signals"][100] = np.nan
    with pytest.raises(DataError, match=r"split 'val' holds 1 NaN/inf sample\(s\); the first is "
                                        r"sample 100 of record"):
        read_dataset(tampered, verify_hash=False, in_memory=False)


def test_lazy_signals_slice_concatenate_and_read_like_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5000).astype(np.float32), rng.standard_normal(3000).astype(
        np.float32)
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["a"], f["b"] = a, b
    la, lb = LazySignals.from_file(path, "a"), LazySignals.from_file(path, "b")
    pieces = [la[100:900], lb[0:3000], la[4000:5000], lb[2500:2600], la[0:0]]
    arrays = [a[100:900], b, a[4000:5000], b[2500:2600], a[0:0]]
    cat = LazySignals.concatenate(pieces)
    expected = np.concatenate(arrays)
    assert len(cat) == expected.size and cat.shape == expected.shape
    assert np.array_equal(np.asarray(cat), expected)
    assert np.array_equal(np.asarray(cat[750:4000]), expected[750:4000])
    assert np.array_equal(np.concatenate(list(cat.iter_chunks(333))), expected)
    # Windows inside segments, in any order, overlapping and repeated.
    starts = np.array([0, 700, 800, 805, 3700, 4800, 3900, 805, 4850])
    ends_in_segment = [(0, 800), (800, 3800), (3800, 4800), (4800, 4900)]
    assert all(any(lo <= s and s + 50 <= hi for lo, hi in ends_in_segment) for s in starts)
    got = cat.read_windows(starts, 50)
    assert np.array_equal(got, np.stack([expected[s:s + 50] for s in starts]))


def test_files_are_written_contiguous(cache: Path) -> None:
    # Streaming relies on plain contiguous datasets (no chunking, no compression).
    with h5py.File(ensure_synthetic_dataset(config(cache, "true")), "r") as f:
        for name in ("train", "val", "test"):
            assert f[name]["signals"].chunks is None
            assert f[name]["signals"].compression is None


def test_generation_is_the_same_file_for_any_number_of_workers(tmp_path: Path) -> None:
    files = []
    for workers in (1, 2):
        cfg = config(tmp_path / f"w{workers}", "true")
        cfg.synthetic.records_per_class = 8
        cfg.synthetic.workers = workers
        files.append(ensure_synthetic_dataset(cfg))
    # The worker count is not part of the cache key: one file name for any number.
    assert files[0].name == files[1].name == synthetic_dataset_path(cfg).name
    assert filecmp.cmp(files[0], files[1], shallow=False)
    assert read_dataset(files[0]).content_hash == read_dataset(files[1]).content_hash
    cfg = config(tmp_path, "true").synthetic
    cfg.records_per_class = 4
    one, two = generate_records(cfg, workers=1), generate_records(cfg, workers=2)
    assert all(np.array_equal(one[k], two[k]) for k in one)


def test_generation_workers_auto() -> None:
    assert generation_workers(0, 10) == 1  # too few records to pay for a pool
    assert 1 <= generation_workers(0, 10_000) <= min(os.cpu_count() or 1, 8)
    assert generation_workers(4, 2) == 2 and generation_workers(1, 500) == 1
    assert isinstance(H5Signals, type)
