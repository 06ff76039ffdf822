"""Input-pipeline benchmark (issue 10 §4): windows/s of the loader, side by side in one run.

    python bench/bench_loader.py [--epochs 3] [--out bench/results/loader.json]

On an array shaped like the default training split (704 records of 19,200 samples, 3,520
windows of 6,400 samples, stride 3,200, batches of 32, shuffled by EpochShuffleSampler):

* ``batched``: the loader ``build_dataloaders`` builds (``WindowDataset.__getitems__``: one
  indexed read per batch, the batch normalised together; ``collate_windows``), for every
  normalisation, in the main process and with 2 worker processes;
* ``per_window``: the previous path, one ``__getitem__`` per window and ``default_collate``
  (kept in the dataset for single-index access, so this times the real old code);
* ``memory_copy``: numpy copying the same number of bytes (one batch's worth of float32 from
  consecutive places of the signal array into a new array), the ceiling for any loader;
* ``torch_std_mean_zscore``: the obvious torch kernel (``std_mean`` + one pass) on the same
  indexed reads, for comparison with pfdtrain's BLAS-dot statistics.

Loading runs on one torch thread per process. Every figure is the best of ``--epochs``
passes over the 3,520 windows (the machine is shared, the best pass is the least disturbed
one); each row also keeps every pass.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch
from bench_common import machine_info, write_results
from torch.utils.data import DataLoader, Dataset

from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.data.windows import NORMALIZATIONS, PerWindowDataset, WindowDataset, collate_windows

RECORDS, RECORD_LEN, WINDOW, STRIDE, BATCH = 704, 19_200, 6400, 3200, 32


def passes(run: Callable[[], int], epochs: int) -> dict:
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    return {"windows_per_s": round(max(rates)), "passes": [round(r) for r in rates]}


def loader_run(dataset: Dataset, workers: int = 0, batched: bool = True) -> Callable[[], int]:
    sampler = EpochShuffleSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=workers,
                        collate_fn=collate_windows if batched else None,
                        persistent_workers=workers > 0)
    epoch = [0]

    def run() -> int:
        sampler.set_epoch(epoch[0])
        epoch[0] += 1
        return sum(int(batch[0].shape[0]) for batch in loader)
    return run


def memory_copy_run(signals: np.ndarray, windows: int) -> Callable[[], int]:
    chunk = BATCH * WINDOW

    def run() -> int:
        done, position = 0, 0
        while done < windows:
            n = min(BATCH, windows - done)
            if position + n * WINDOW > signals.size:
                position = 0
            signals[position:position + n * WINDOW].copy()
            position += chunk
            done += n
        return done
    return run


def torch_std_mean_run(ds: WindowDataset) -> Callable[[], int]:
    sampler = EpochShuffleSampler(len(ds), seed=0)
    sliding = np.lib.stride_tricks.sliding_window_view(ds.signals, WINDOW)

    def run() -> int:
        starts = ds.window_starts[np.fromiter(sampler, dtype=np.int64)]
        for k in range(0, starts.size, BATCH):
            x = torch.from_numpy(sliding[starts[k:k + BATCH]])  # the same indexed read
            std, mean = torch.std_mean(x, dim=1, keepdim=True, correction=0)
            ((x - mean) / std.clamp_min(1e-12)).unsqueeze(1)
        return int(starts.size)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="passes per figure (best kept)")
    parser.add_argument("--out", default="bench/results/loader.json")
    args = parser.parse_args()
    # One thread per process, as in DataLoader workers: the batched path never parallelises
    # (its chunks stay under torch's grain size), and on this shared 2-core machine torch's
    # two OpenMP threads collapse the element-wise passes (about 10x slower than one thread).
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    signals = rng.standard_normal(RECORDS * RECORD_LEN).astype(np.float32)
    offsets = np.arange(RECORDS + 1, dtype=np.int64) * RECORD_LEN
    labels = np.arange(RECORDS) % 11

    def dataset(normalization: str) -> WindowDataset:
        return WindowDataset(signals, offsets, labels, WINDOW, STRIDE, normalization)

    n = len(dataset("zscore"))
    results: dict = {
        "machine": machine_info(),
        "setup": {"windows_per_epoch": n, "window_length": WINDOW, "batch_size": BATCH,
                  "bytes_per_window": WINDOW * 4, "best_of_passes": args.epochs},
    }
    rows: dict = {"memory_copy": passes(memory_copy_run(signals, n), args.epochs)}
    for method in NORMALIZATIONS:
        rows[f"batched_{method}"] = passes(loader_run(dataset(method)), args.epochs)
    rows["batched_zscore_2_workers"] = passes(loader_run(dataset("zscore"), workers=2),
                                              args.epochs)
    rows["batched_none_2_workers"] = passes(loader_run(dataset("none"), workers=2), args.epochs)
    for method in ("none", "zscore"):
        rows[f"per_window_{method}"] = passes(
            loader_run(PerWindowDataset(dataset(method)), batched=False), args.epochs)
    rows["torch_std_mean_zscore"] = passes(torch_std_mean_run(dataset("none")),
                                              args.epochs)
    copy_rate = rows["memory_copy"]["windows_per_s"]
    for row in rows.values():
        row["vs_memory_copy"] = round(row["windows_per_s"] / copy_rate, 3)
    for method in ("none", "zscore"):
        rows[f"batched_{method}"]["vs_per_window"] = round(
            rows[f"batched_{method}"]["windows_per_s"]
            / rows[f"per_window_{method}"]["windows_per_s"], 2)
    results["windows_per_s"] = rows
    write_results(args.out, results)


if __name__ == "__main__":
    main()
