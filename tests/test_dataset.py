"""HDF5 datasets, record-level splits, leakage checks, windows and loaders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import pfdtrain.data.storage as storage_mod
import pfdtrain.data.synthetic_cache as synthetic_cache_mod
from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data import (
    CLASS_NAMES,
    DataBundle,
    DataError,
    DataLeakageError,
    EpochShuffleSampler,
    RecordSplit,
    WindowDataset,
    build_dataloaders,
    check_no_leakage,
    ensure_synthetic_dataset,
    write_dataset,
)
from pfdtrain.data.splits import stratified_record_split
from pfdtrain.data.storage import content_hash, read_dataset

# 12 records per class = 3 per (class x severity) cell: 1 train, 1 val, 1 test each.
# 0.5 s records at 6.4 kHz = 3200 samples → (3200 - 800) // 400 + 1 = 7 windows.
RECORD_LEN, WINDOW, STRIDE = 3200, 800, 400


def tiny_config(cache_dir: Path, **data: object) -> TrainingConfig:
    return TrainingConfig.from_dict({
        "seed": 3,
        "data": {"cache_dir": str(cache_dir), "window_length": WINDOW, "window_stride": STRIDE,
                 "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 8, **data},
        "synthetic": {"records_per_class": 12, "record_duration": 0.5, "seed": 9},
    })


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def h5_path(cache: Path) -> Path:
    return ensure_synthetic_dataset(tiny_config(cache))


@pytest.fixture(scope="module")
def bundle(cache: Path, h5_path: Path) -> DataBundle:
    return build_dataloaders(tiny_config(cache))


# ---------------------------------------------------------------- file layout and cache
def test_hdf5_layout_and_hash(h5_path: Path) -> None:
    assert h5_path.name.startswith("synthetic-") and len(h5_path.stem) == len("synthetic-") + 12
    with h5py.File(h5_path, "r") as f:
        assert f.attrs["format"] == "pfdtrain-dataset-v1"
        assert json.loads(f.attrs["class_names"]) == list(CLASS_NAMES)
        assert f.attrs["sampling_rate"] == 6400.0
        assert f.attrs["source"] == "synthetic"
        assert f.attrs["split_strategy"] == "record"
        gen = json.loads(f.attrs["generator_config"])
        assert gen["synthetic"]["records_per_class"] == 12 and gen["split"]["val_fraction"] == 0.25
        total = 0
        for name in ("train", "val", "test"):
            g = f[name]
            n = g["labels"].shape[0]
            total += n
            assert g["signals"].dtype == np.float32 and g["signals"].ndim == 1
            assert g["record_offsets"].dtype == np.int64 and g["record_offsets"].shape == (n + 1,)
            assert g["labels"].dtype == np.int64 and g["severities"].dtype == np.int64
            assert g["record_ids"].shape == (n,)
            assert h5py.check_string_dtype(g["record_ids"].dtype).encoding == "utf-8"
            assert g["record_ids"].asstr()[0].startswith("syn-")
            assert g["record_offsets"][-1] == g["signals"].shape[0] == n * RECORD_LEN
            assert sorted(g["metadata"]) == sorted(
                ["speed_hz", "load", "temperature", "viscosity", "sommerfeld"])
            assert all(g["metadata"][k].dtype == np.float64 for k in g["metadata"])
        assert total == 12 * len(CLASS_NAMES)
        stored = f.attrs["content_hash"]
    data = read_dataset(h5_path)  # verifies the hash
    assert content_hash(data.splits, data.class_names, data.sampling_rate) == stored


def test_reuse_and_new_file_on_config_change(cache: Path, h5_path: Path) -> None:
    mtime = h5_path.stat().st_mtime_ns
    assert ensure_synthetic_dataset(tiny_config(cache)) == h5_path
    assert h5_path.stat().st_mtime_ns == mtime  # reused, not rewritten
    # window settings do not change the stored data, so they share the file
    assert ensure_synthetic_dataset(tiny_config(cache, window_length=400)) == h5_path
    changed = tiny_config(cache, val_fraction=0.3)
    assert synthetic_cache_mod.synthetic_dataset_path(changed) != h5_path
    changed.synthetic.noise_level = 0.5
    assert synthetic_cache_mod.synthetic_dataset_path(changed) != h5_path


def test_regenerates_damaged_or_stale_file(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.synthetic.records_per_class = 4
    path = synthetic_cache_mod.synthetic_dataset_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")  # e.g. left by a crash of an older, non-atomic writer
    assert ensure_synthetic_dataset(cfg) == path
    good_hash = read_dataset(path).content_hash
    with h5py.File(path, "r+") as f:  # same name, other generator settings inside
        f.attrs["generator_config"] = json.dumps({"synthetic": {"seed": -1}})
    ensure_synthetic_dataset(cfg)
    data = read_dataset(path)
    assert data.generator_config["synthetic"]["records_per_class"] == 4
    assert data.content_hash == good_hash
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_interrupted_generation_leaves_no_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(storage_mod.h5py.Group, "create_group", boom)
    cfg = tiny_config(tmp_path)
    cfg.synthetic.records_per_class = 4
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(cfg)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- splits and leakage
def test_split_is_stratified_and_leak_free(h5_path: Path) -> None:
    data = read_dataset(h5_path)
    check_no_leakage(h5_path)
    check_no_leakage(data)
    ids = [set(s.record_ids) for s in data.splits.values()]
    assert len(set.union(*ids)) == sum(len(s) for s in ids) == 12 * len(CLASS_NAMES)
    for split in data.splits.values():  # 3 records per cell → one in each split
        cells = list(zip(split.labels.tolist(), split.severities.tolist()))
        assert len(cells) == len(set(cells)) == len(CLASS_NAMES) * 4


def test_split_counts_and_tiny_cells() -> None:
    labels, sev = np.zeros(10, int), np.zeros(10, int)
    parts = stratified_record_split(labels, sev, 0.15, 0.15, seed=1)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 2, 2]  # 1.5 rounds up
    again = stratified_record_split(labels, sev, 0.15, 0.15, seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = stratified_record_split(labels, sev, 0.15, 0.15, seed=2)
    assert not np.array_equal(parts["val"], other["val"])
    for n, expected in ((1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1])):
        tiny = stratified_record_split(np.zeros(n, int), np.zeros(n, int), 0.5, 0.5, seed=0)
        assert [len(tiny[k]) for k in ("train", "val", "test")] == expected


def test_leakage_detected_in_corrupted_copy(cache: Path, h5_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "leaky.h5"
    shutil.copy(h5_path, bad)
    with h5py.File(bad, "r+") as f:
        leaked = f["train"]["record_ids"].asstr()[0]
        ids = f["test"]["record_ids"].asstr()[()].tolist()
        ids[0] = leaked
        f["test"]["record_ids"][...] = np.array(ids, dtype=object)
    with pytest.raises(DataLeakageError, match=rf"1 record id\(s\).*{leaked} \(t\w+/t\w+\)"):
        check_no_leakage(bad)
    with pytest.raises(DataLeakageError, match=leaked):
        build_dataloaders(tiny_config(cache, source=str(bad)))
    assert issubclass(DataLeakageError, DataError) and issubclass(DataError, ValueError)
    with pytest.raises(DataLeakageError):
        check_no_leakage({"train": ["a", "b"], "val": ["c"], "test": ["b"]})


# ---------------------------------------------------------------- windows
def make_split() -> RecordSplit:
    rng = np.random.default_rng(0)
    records = [rng.normal(size=n).astype(np.float32) for n in (1000, 800, 1799)]
    return RecordSplit.from_records(records, [0, 1, 2], ["r-a", "r-b", "r-c"])


def test_windows_stay_inside_records() -> None:
    split = make_split()
    ds = WindowDataset.from_split(split, window_length=800, window_stride=300,
                                  normalization="none")
    expected = [(1000 - 800) // 300 + 1, 1, (1799 - 800) // 300 + 1]  # 1, 1, 4
    assert ds.num_windows == len(ds) == sum(expected)
    assert np.bincount(ds.window_record).tolist() == expected
    for i in range(len(ds)):
        r = ds.window_record[i]
        start = ds.window_starts[i]
        assert split.record_offsets[r] <= start
        assert start + 800 <= split.record_offsets[r + 1]
        x, y = ds[i]
        assert x.shape == (1, 800) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and y.ndim == 0 and int(y) == split.labels[r]
        np.testing.assert_array_equal(x[0].numpy(), split.signals[start:start + 800])
    np.testing.assert_array_equal(ds.labels, split.labels[ds.window_record])
    assert ds.signals is split.signals  # windows are views into the one array, no copy


def test_record_shorter_than_window_named() -> None:
    with pytest.raises(ValueError, match=r"r-b has 800 samples.*window of 900"):
        WindowDataset.from_split(make_split(), window_length=900, window_stride=100)


@pytest.mark.parametrize("method", ["none", "zscore", "minmax", "rms"])
def test_normalisations(method: str) -> None:
    split = make_split()
    split.signals[1000:1800] = 2.5  # record r-b is constant: zero std and range
    ds = WindowDataset.from_split(split, 800, 400, normalization=method)
    x = ds[0][0][0].numpy().astype(np.float64)
    raw = split.signals[:800].astype(np.float64)
    if method == "none":
        np.testing.assert_allclose(x, raw, rtol=1e-6)
    elif method == "zscore":
        assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, abs=1e-4)
    elif method == "minmax":
        assert x.min() == pytest.approx(0.0, abs=1e-6) and x.max() == pytest.approx(1.0)
    else:
        assert np.sqrt(np.mean(x ** 2)) == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(x * np.sqrt(np.mean(raw ** 2)), raw, rtol=1e-4, atol=1e-5)
    flat = ds[int(np.flatnonzero(ds.window_record == 1)[0])][0].numpy()
    assert np.isfinite(flat).all()
    if method in ("zscore", "minmax"):
        assert np.all(flat == 0)


# ---------------------------------------------------------------- loaders
def test_bundle_and_batches(bundle: DataBundle, h5_path: Path) -> None:
    assert bundle.class_names == list(CLASS_NAMES) and bundle.num_classes == 11
    assert bundle.sampling_rate == 6400.0 and bundle.input_length == WINDOW
    assert bundle.path == h5_path
    with h5py.File(h5_path, "r") as f:
        assert bundle.content_hash == f.attrs["content_hash"]
    windows = (RECORD_LEN - WINDOW) // STRIDE + 1
    for loader in (bundle.train_loader, bundle.val_loader, bundle.test_loader):
        assert len(loader.dataset) == 44 * windows
        x, y = next(iter(loader))
        assert x.shape == (8, 1, WINDOW) and x.dtype == torch.float32
        assert y.shape == (8,) and y.dtype == torch.int64
    assert isinstance(bundle.train_loader.sampler, EpochShuffleSampler)
    assert bundle.train_loader.drop_last is False
    assert isinstance(bundle.val_loader.sampler, torch.utils.data.SequentialSampler)


def test_train_order_reproducible_and_changes_per_epoch(cache: Path, bundle: DataBundle) -> None:
    def first_batch(b: DataBundle, epoch: int) -> torch.Tensor:
        b.train_loader.sampler.set_epoch(epoch)
        return next(iter(b.train_loader))[0]

    again = build_dataloaders(tiny_config(cache))
    torch.testing.assert_close(first_batch(bundle, 0), first_batch(again, 0))
    assert not torch.equal(first_batch(bundle, 0), first_batch(bundle, 1))
    other_seed = tiny_config(cache)
    other_seed.seed = 4
    assert not torch.equal(first_batch(bundle, 0), first_batch(build_dataloaders(other_seed), 0))


def test_empty_val_split_gives_no_loader(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, val_fraction=0.0)
    cfg.synthetic.records_per_class = 8
    b = build_dataloaders(cfg)
    assert b.val_loader is None and b.test_loader is not None


def test_errors_for_missing_file_wrong_format_and_long_window(cache: Path, h5_path: Path,
                                                              tmp_path: Path) -> None:
    missing = tmp_path / "nope.h5"
    with pytest.raises(DataError, match=r"nope\.h5 does not exist.*synthetic"):
        build_dataloaders(tiny_config(cache, source=str(missing)))
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataError, match=r"foreign\.h5 is not a pfdtrain dataset"):
        build_dataloaders(tiny_config(cache, source=str(foreign)))
    with pytest.raises(DataError, match=rf"window_length = 4000 .*{RECORD_LEN} samples.*"
                                        rf"window_length <= {RECORD_LEN}"):
        build_dataloaders(tiny_config(cache, window_length=4000))


def test_real_data_of_variable_length_round_trips(tmp_path: Path, cache: Path) -> None:
    train = RecordSplit.from_records([np.ones(2000), np.zeros(900)], [1, 2], ["rig-1", "rig-2"],
                                     metadata={"speed_hz": [50.0, float("nan")]})
    test = RecordSplit.from_records([np.ones(1200)], [1], ["rig-3"])
    path = tmp_path / "rig.h5"
    write_dataset(path, {"train": train, "test": test}, class_names=CLASS_NAMES,
                  sampling_rate=6400.0, source="test rig")
    b = build_dataloaders(tiny_config(cache, source=str(path)))
    assert len(b.train_loader.dataset) == 4 + 1 and b.val_loader is None
    assert os.path.basename(str(b.path)) == "rig.h5"
    data = read_dataset(path)
    assert data.splits["train"].severities.tolist() == [-1, -1]
    assert np.isnan(data.splits["train"].metadata["speed_hz"][1])


def test_metadata_batches_for_physics_training(cache: Path, h5_path: Path) -> None:
    bundle = build_dataloaders(tiny_config(cache), with_metadata=True)
    inputs, targets, metadata = next(iter(bundle.train_loader))
    assert inputs.shape[0] == targets.shape[0] == metadata["speed_hz"].shape[0]
    assert set(metadata) >= {"speed_hz", "load", "temperature", "sommerfeld"}
    assert metadata["speed_hz"].dtype == torch.float32
    assert torch.all((metadata["speed_hz"] > 50) & (metadata["speed_hz"] < 70))
    ds = bundle.train_loader.dataset
    record = int(ds.window_record[0])
    assert float(ds[0][2]["load"]) == pytest.approx(float(ds.metadata["load"][record]))


def test_noisy_copies_have_the_requested_snr_and_fixed_noise(bundle: DataBundle) -> None:
    clean_ds = bundle.test_loader.dataset.with_noise(None)
    clean_ds.normalization = "none"
    for snr in (20.0, 10.0, 5.0):
        noisy = clean_ds.with_noise(snr, noise_seed=7)
        measured = []
        for i in range(len(noisy)):
            clean, noisy_x = clean_ds[i][0].numpy(), noisy[i][0].numpy()
            measured.append(10 * np.log10(clean.var() / (noisy_x - clean).var()))
        assert abs(np.mean(measured) - snr) < 0.3
        assert torch.equal(noisy[0][0], clean_ds.with_noise(snr, noise_seed=7)[0][0])
    assert bundle.test_loader.dataset.snr_db is None  # the original dataset is untouched
