"""The batched input pipeline gives bitwise the batches of the per-window path (issue 10 §4)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pfdtrain.data.sampler import EpochShuffleSampler, ShardSampler
from pfdtrain.data.windows import (NORMALIZATIONS, PerWindowDataset, WindowBatch,
                                   WindowDataset, collate_windows, normalize_window,
                                   normalize_windows)

PerWindow = PerWindowDataset  # today's path: one __getitem__ per window, default_collate


def make_dataset(method: str, with_metadata: bool = True) -> WindowDataset:
    """Records of several lengths (one flat), 3 + 1 + 5 + 2 = 11 windows of 600 samples."""
    rng = np.random.default_rng(5)
    lengths = [1500, 600, 2400, 1000]
    records = [(rng.standard_normal(n) * (i + 1) + i).astype(np.float32)
               for i, n in enumerate(lengths)]
    records[1][:] = 2.5  # a constant window: zero std, range and (rms aside) no division
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    meta = {"speed_hz": np.array([50.0, 55.5, 60.25, 61.0]), "load": np.array([0.1, 0.2, 0.3,
                                                                               0.4])}
    return WindowDataset(np.concatenate(records), offsets, np.array([0, 1, 2, 1]), 600, 400,
                         method, metadata=meta if with_metadata else None)


def assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y) and len(x) == len(y)
        for u, v in zip(x, y):
            if isinstance(u, dict):
                assert sorted(u) == sorted(v)
                for k in u:
                    assert u[k].dtype == v[k].dtype and torch.equal(u[k], v[k])
            else:
                assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)


def loader_batches(ds: Dataset, sampler: object, **kwargs: object) -> list:
    return list(DataLoader(ds, batch_size=4, sampler=sampler, **kwargs))


@pytest.mark.parametrize("method", NORMALIZATIONS)
@pytest.mark.parametrize("snr_db", [None, 6.0])
@pytest.mark.parametrize("with_metadata", [False, True])
def test_batched_loader_equals_per_window_path(method: str, snr_db: float | None,
                                               with_metadata: bool) -> None:
    ds = make_dataset(method, with_metadata).with_noise(snr_db, noise_seed=11)
    assert len(ds) == 11  # batches of 4: the last one is partial (3 windows)
    for epoch in (0, 1):
        sampler = EpochShuffleSampler(len(ds), seed=2)
        sampler.set_epoch(epoch)
        reference = loader_batches(PerWindow(ds), sampler)
        assert reference[-1][0].shape[0] == 3
        assert_same_batches(loader_batches(ds, sampler, collate_fn=collate_windows), reference)
        # A plain DataLoader (default_collate, as evaluation code builds them) too.
        assert_same_batches(loader_batches(ds, sampler), reference)


def test_mid_epoch_start_and_shards_keep_working() -> None:
    ds = make_dataset("zscore")
    sampler = EpochShuffleSampler(len(ds), seed=2)
    sampler.set_epoch(3)
    sampler.set_start_index(4)  # a mid-epoch resume after one batch of 4
    reference = loader_batches(PerWindow(ds), sampler)
    assert_same_batches(loader_batches(ds, sampler, collate_fn=collate_windows), reference)
    for rank in (0, 1):
        shard = ShardSampler(len(ds), num_replicas=2, rank=rank)
        assert_same_batches(loader_batches(ds, shard, collate_fn=collate_windows),
                            loader_batches(PerWindow(ds), shard))


def test_worker_processes_give_the_same_batches() -> None:
    ds = make_dataset("rms")
    sampler = EpochShuffleSampler(len(ds), seed=1)
    workers = loader_batches(ds, sampler, collate_fn=collate_windows, num_workers=2)
    assert_same_batches(workers, loader_batches(PerWindow(ds), sampler))


@pytest.mark.parametrize("length", [1, 7, 129, 6400, 9001, 20000])
def test_normalize_windows_is_normalize_window_row_by_row(length: int) -> None:
    # Lengths around numpy's pairwise-summation blocks (8, 128) and its 8192-element buffer.
    rng = np.random.default_rng(length)
    x = (rng.standard_normal((9, length)) * 1e3 + 17).astype(np.float32)
    x[4] = -3.25  # flat row
    x[5] = 0.0  # silent row
    x[6] = 5e4 + x[6] * 1e-3  # DC offset far above the vibration: the exact two-pass path
    for method in NORMALIZATIONS:
        batch = normalize_windows(x.copy(), method).numpy()  # in place
        for row in range(x.shape[0]):
            expected = normalize_window(x[row], method)
            assert np.array_equal(batch[row], expected), (method, row)
            assert batch[row].tobytes() == expected.tobytes()  # also the sign of zeros
        # Accurate against float64 two-pass statistics (float32 one-pass sums elsewhere).
        x64 = x.astype(np.float64)
        if method == "zscore":
            std = x64.std(axis=1, keepdims=True)
            reference = (x64 - x64.mean(axis=1, keepdims=True)) / np.where(std > 1e-12, std, 1)
        elif method == "rms":
            rms = np.sqrt((x64 * x64).mean(axis=1, keepdims=True))
            reference = x64 / np.where(rms > 1e-12, rms, 1)
        elif method == "minmax":
            lo, hi = x64.min(axis=1, keepdims=True), x64.max(axis=1, keepdims=True)
            reference = (x64 - lo) / np.where(hi - lo > 1e-12, hi - lo, 1)
        else:
            reference = x64
        np.testing.assert_allclose(batch, reference, rtol=0, atol=1e-5)
        assert np.isfinite(batch).all()


def test_window_batch_behaves_like_a_list_of_samples() -> None:
    ds = make_dataset("minmax")
    batch = ds.__getitems__([5, -1, 0])
    assert isinstance(batch, WindowBatch) and len(batch) == 3
    for item, i in zip(batch, [5, 10, 0]):
        expected = ds[i]
        assert torch.equal(item[0], expected[0]) and torch.equal(item[1], expected[1])
        assert {k: float(v) for k, v in item[2].items()} == {k: float(v) for k, v in
                                                             expected[2].items()}
    assert len(batch[0:2]) == 2
    with pytest.raises(IndexError, match="window 11 out of range 0..10"):
        ds.__getitems__([0, 11])


def test_pickled_dataset_does_not_carry_the_sliding_view() -> None:
    ds = make_dataset("none")
    ds.__getitems__([0, 1])  # builds the sliding view (600 times the signal as an array)
    restored = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 2 * ds.signals.nbytes + 10_000
    assert torch.equal(collate_windows(restored.__getitems__([2]))[0],
                       collate_windows(ds.__getitems__([2]))[0])
