"""DDP throughput: training windows/s with 1 and 2 processes launched by torchrun.

    python bench/bench_ddp.py [--epochs 4] [--out bench/results/ddp.json]

Every run trains CNN1D on the default synthetic dataset (generated once, shared) with
`torchrun --standalone --nproc_per_node=N -m pfdtrain train`. Throughput is measured from
the dashboard events: training windows of the whole dataset divided by the wall time of the
epochs after the first (which pays start-up costs), validation included. Settings:

- 1 process, batch 32;
- 2 processes, batch 16 each (the same global batch of 32: the same optimisation);
- 2 processes, batch 32 each (global batch 64: fewer, larger steps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = (("1 process x 32", 1, 32), ("2 processes x 16", 2, 16), ("2 processes x 32", 2, 32))


def run(nproc: int, batch: int, epochs: int, workdir: Path, name: str) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "pfdtrain", "train", "--no-progress",
           "--set", f"name={name}", "--set", f"num_epochs={epochs}",
           "--set", f"data.batch_size={batch}", "--set", f"output_dir={workdir}/runs",
           "--set", f"data.cache_dir={workdir}/data", "--set", "callbacks.early_stopping.enabled=false",
           "--set", "checkpoint.enabled=false"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in
              (workdir / "runs" / name / "events.jsonl").read_text().splitlines()]
    epochs_done = [e for e in events if e["event"] == "epoch_complete"]
    steady = epochs_done[-1]["elapsed_time"] - epochs_done[0]["elapsed_time"]
    log = (workdir / "runs" / name / "train.log").read_text()
    train_windows = int(log.split("Data: ")[1].split("classes, ")[1].split(" train")[0])
    return {"processes": nproc, "batch_per_process": batch, "global_batch": nproc * batch,
            "train_windows": train_windows,
            "seconds_per_epoch": round(steady / (len(epochs_done) - 1), 3),
            "windows_per_s": round(train_windows * (len(epochs_done) - 1) / steady, 1),
            "final_val_acc": round(epochs_done[-1]["val_acc"], 2),
            "wall_time_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default="bench/results/ddp.json")
    args = parser.parse_args()
    results = {"cpu_count": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, nproc, batch in SETTINGS:
            results["runs"][label] = run(nproc, batch, args.epochs, Path(tmp),
                                         f"p{nproc}-b{batch}")
            print(label, json.dumps(results["runs"][label]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
