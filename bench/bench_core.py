"""Core benchmark: trainer overhead, generator throughput, the default run.

    python bench/bench_core.py [--skip-default-run] [--out bench/results/core.json]

(a) time per epoch of ``CNNTrainer`` against a plain hand-written PyTorch loop on the same
    model, data and seed (ratio > 1 means the trainer is slower);
(b) synthetic generator throughput in records/s;
(c) wall time and test accuracy of the default ``pfdtrain train`` (a subprocess, generation
    included, with a fresh data cache).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data import build_dataloaders, generate_records
from pfdtrain.models import build_model
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.utils.logging import setup_logging
from pfdtrain.utils.reproducibility import set_seed


def _plain_epoch(model, loader, optimizer, criterion, max_grad_norm):
    """The reference: what a user would write by hand (with the same sample weighting)."""
    model.train()
    total_loss, correct, total = 0.0, 0, 0
    for inputs, targets in loader:
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        total_loss += loss.item() * inputs.size(0)
        correct += (outputs.argmax(1) == targets).sum().item()
        total += targets.size(0)
    return total_loss / total, 100.0 * correct / total


def bench_trainer_overhead(config: TrainingConfig, epochs: int) -> dict:
    data = build_dataloaders(config)
    timings = {}
    for kind in ("plain", "trainer", "plain_again", "trainer_again"):
        set_seed(config.seed, config.deterministic)
        model = build_model(config.model.name, num_classes=data.num_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.optimizer.lr)
        per_epoch = []
        if kind.startswith("plain"):
            for epoch in range(epochs):
                data.train_loader.sampler.set_epoch(epoch)
                start = time.perf_counter()
                _plain_epoch(model, data.train_loader, optimizer, nn.CrossEntropyLoss(), 1.0)
                per_epoch.append(time.perf_counter() - start)
        else:
            trainer = CNNTrainer(model, data.train_loader, optimizer=optimizer, max_grad_norm=1.0,
                                 progress_bar=False)
            for epoch in range(epochs):
                trainer.current_epoch = epoch
                start = time.perf_counter()
                trainer.train_epoch()
                per_epoch.append(time.perf_counter() - start)
        timings[kind] = min(per_epoch)  # min over epochs: least disturbed by the machine
    plain = min(timings["plain"], timings["plain_again"])
    trainer_t = min(timings["trainer"], timings["trainer_again"])
    windows = len(data.train_loader.dataset)
    return {"train_windows": windows, "window_length": data.input_length,
            "plain_loop_s_per_epoch": round(plain, 3),
            "trainer_s_per_epoch": round(trainer_t, 3),
            "trainer_over_plain_ratio": round(trainer_t / plain, 3),
            "trainer_windows_per_s": round(windows / trainer_t, 1)}


def bench_generator(config: TrainingConfig, records: int) -> dict:
    start = time.perf_counter()
    generate_records(config.synthetic, indices=list(range(records)))
    elapsed = time.perf_counter() - start
    return {"records": records, "seconds": round(elapsed, 3),
            "records_per_s": round(records / elapsed, 1),
            "record_duration_s": config.synthetic.record_duration,
            "sampling_rate": config.synthetic.effective_sampling_rate}


def bench_default_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pfdtrain", "train", "--no-progress",
                        "--set", f"data.cache_dir={tmp}/data", "--set", f"output_dir={tmp}/runs",
                        "--set", "name=default"], check=True)
        wall = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "runs/default/test_metrics.json").read_text())
        history = json.loads((Path(tmp) / "runs/default/history.json").read_text())
    return {"wall_time_s": round(wall, 1), "test_accuracy": round(metrics["accuracy"], 2),
            "test_macro_f1": round(metrics["macro_f1"], 4),
            "final_val_acc": round(history["val_acc"][-1], 2),
            "epochs": len(history["train_loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/core.json")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per loop")
    parser.add_argument("--records", type=int, default=200, help="records generated for (b)")
    parser.add_argument("--skip-default-run", action="store_true")
    args = parser.parse_args()
    setup_logging(level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainingConfig()
        config.data.cache_dir = tmp
        results = {
            "machine": {"cpu_count": torch.get_num_threads(), "torch": torch.__version__,
                        "python": platform.python_version(), "platform": platform.platform()},
            "trainer_overhead": bench_trainer_overhead(config, args.epochs),
            "generator": bench_generator(config, args.records),
        }
    if not args.skip_default_run:
        results["default_run"] = bench_default_run()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
