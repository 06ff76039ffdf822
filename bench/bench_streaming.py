"""Datasets larger than memory (issue 10 §5): peak RSS when training streamed, windows/s
streamed from disk beside in memory, and synthetic generation at 1 and 2 processes.

    python bench/bench_streaming.py [--records-per-class 180] [--budget-mb 64]
                                    [--out bench/results/streaming.json]

1. Generation: records/s of ``generate_records`` at 1 and 2 processes on the same records,
   then the benchmark dataset (default 180 records per class = 1,980 3-s records, about
   150 MB of float32 signals) written with 2 processes.
2. Peak RSS (``VmHWM`` of ``/proc/self/status``) of three fresh processes, each training
   one epoch of a CNN1D through ``pfdtrain train`` (main-process loading):
   ``streamed`` (the large dataset, ``data.in_memory=auto`` with ``memory_budget_mb``),
   ``in_memory`` (the same dataset, ``data.in_memory=true``) and ``baseline`` (a 3.4 MB
   dataset in memory: the process's and the model's own needs). The goal is
   ``streamed <= baseline + budget``.
3. Loader throughput: windows/s of the train loader over the large dataset streamed and in
   memory, best of 2 passes. The file was just written, so the page cache holds it: this is
   the HDF5 read path, not the disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import machine_info, write_results

from pfdtrain.config.training_config import SyntheticConfig, TrainingConfig
from pfdtrain.data import build_dataloaders, generate_records
from pfdtrain.data.synthetic_cache import ensure_synthetic_dataset
from pfdtrain.data.signal_store import LazySignals
from pfdtrain.utils.logging import setup_logging


def vm_hwm_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """One training run in this (fresh) process; prints its peak RSS as JSON."""
    from pfdtrain.cli import main as cli_main

    start = time.perf_counter()
    code = cli_main(["train", "--no-progress", *sum((["--set", s] for s in args.set), [])])
    print(json.dumps({"exit": code, "vm_hwm_mb": round(vm_hwm_mb(), 1),
                      "seconds": round(time.perf_counter() - start, 1)}))


def train_settings(cache: Path, records_per_class: int, in_memory: str, budget_mb: int,
                   runs: Path) -> list[str]:
    return [f"data.cache_dir={cache}", f"synthetic.records_per_class={records_per_class}",
            f"data.in_memory={in_memory}", f"data.memory_budget_mb={budget_mb}",
            "num_epochs=1", "model.name=cnn1d", "data.num_workers=0", f"output_dir={runs}",
            "synthetic.workers=2"]


# The baseline's dataset: 132 one-second records (3.4 MB), split 1/1/1 per class x severity
# so that it has the validation split the default early stopping monitors.
TINY = ["synthetic.record_duration=1.0", "data.val_fraction=0.34", "data.test_fraction=0.34"]


def run_child(settings: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *sum((["--set", s] for s in settings), [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines or json.loads(lines[-1])["exit"] != 0:
        raise RuntimeError(f"training run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def loader_rate(config: TrainingConfig, passes: int = 2) -> tuple[float, bool]:
    bundle = build_dataloaders(config)
    loader = bundle.train_loader
    best = 0.0
    for epoch in range(passes):
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        n = sum(int(batch[0].shape[0]) for batch in loader)
        best = max(best, n / (time.perf_counter() - start))
    return best, isinstance(loader.dataset.signals, LazySignals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records-per-class", type=int, default=180)
    parser.add_argument("--budget-mb", type=int, default=64)
    parser.add_argument("--generation-records", type=int, default=220,
                        help="records timed at 1 and 2 processes")
    parser.add_argument("--out", default="bench/results/streaming.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    setup_logging("WARNING")
    results: dict = {"machine": machine_info()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # 1. generation at 1 and 2 processes, the same records
        gen_cfg = SyntheticConfig()
        generation = {"records": args.generation_records,
                      "record_duration_s": gen_cfg.record_duration}
        for workers in (1, 2):
            start = time.perf_counter()
            generate_records(gen_cfg, indices=range(args.generation_records), workers=workers)
            generation[f"records_per_s_{workers}_process"] = round(
                args.generation_records / (time.perf_counter() - start), 1)
        big = TrainingConfig.from_dict({"data": {"cache_dir": str(work / "big"),
                                                 "memory_budget_mb": args.budget_mb},
                                        "synthetic": {"records_per_class":
                                                      args.records_per_class, "workers": 2}})
        start = time.perf_counter()
        path = ensure_synthetic_dataset(big)
        generation["dataset_file_seconds_2_processes"] = round(time.perf_counter() - start, 1)
        size_mb = path.stat().st_size / 2 ** 20
        results["generation"] = generation
        results["dataset"] = {"records": args.records_per_class * 11,
                              "file_mib": round(size_mb, 1), "budget_mib": args.budget_mb}

        # 2. peak RSS of one training epoch, each in a fresh process
        runs = work / "runs"
        rss = {
            "streamed": run_child(train_settings(work / "big", args.records_per_class, "auto",
                                                 args.budget_mb, runs)),
            "in_memory": run_child(train_settings(work / "big", args.records_per_class, "true",
                                                  args.budget_mb, runs)),
            "baseline_tiny_dataset": run_child(train_settings(work / "tiny", 12, "true",
                                                              args.budget_mb, runs) + TINY),
        }
        base = rss["baseline_tiny_dataset"]["vm_hwm_mb"]
        rss["streamed_minus_baseline_mib"] = round(rss["streamed"]["vm_hwm_mb"] - base, 1)
        rss["in_memory_minus_baseline_mib"] = round(rss["in_memory"]["vm_hwm_mb"] - base, 1)
        rss["streamed_within_baseline_plus_budget"] = (
            rss["streamed"]["vm_hwm_mb"] <= base + args.budget_mb)
        results["peak_rss_mib"] = rss

        # 3. windows/s streamed beside in memory (train loader, default window and batch)
        rates = {}
        for mode in ("false", "true"):
            cfg = TrainingConfig.from_dict(big.to_dict())
            cfg.data.in_memory = mode
            rate, streamed = loader_rate(cfg)
            rates["streamed" if streamed else "in_memory"] = round(rate)
        rates["streamed_over_in_memory"] = round(rates["streamed"] / rates["in_memory"], 3)
        results["train_loader_windows_per_s"] = rates
    write_results(args.out, results)


if __name__ == "__main__":
    main()
