"""Reliability benchmark: SIGKILL at random moments, resume, compare bit for bit.

    python bench/bench_reliability.py [--trials 20] [--kills 2] [--seed 0]
                                      [--out bench/results/reliability.json]

Each trial starts ``pfdtrain train`` on a small synthetic config with mid-epoch recovery
saves (``checkpoint.every_n_steps``), SIGKILLs it at a moment drawn uniformly over the
time a whole run takes (start-up, data, epochs, checkpoint writes and the final test
evaluation alike), does the same to ``--kills - 1`` of the processes that continue it, and
then lets the last one finish. A trial whose first process finishes before its kill moment
(the shared machine got faster than the reference) is drawn again over the duration just
seen, so every trial has at least one SIGKILL. A kill before the run folder exists is followed by the same
``train`` again; a kill after that by ``pfdtrain resume`` (which also covers a folder with
no checkpoint yet). A trial counts as **bitwise equal** when its history and every tensor
of its ``final_model.pth`` equal those of an uninterrupted run, and as **clean** when its
``events.jsonl`` has each ``epoch_complete`` exactly once and no temp file is left.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from pfdtrain.training.checkpoint import load_checkpoint_file

CONFIG = {
    "num_epochs": 4,
    "data": {"window_length": 1024, "window_stride": 1024, "batch_size": 16,
             "val_fraction": 0.25, "test_fraction": 0.25},
    "synthetic": {"record_duration": 1.0, "records_per_class": 24},
    "model": {"name": "cnn1d", "params": {"base_channels": 8}},
    "scheduler": {"name": "onecycle"},
    "gradient_accumulation_steps": 2,
    "callbacks": {"early_stopping": {"enabled": False}},
    "checkpoint": {"every_n_steps": 5},
}


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pfdtrain", *args, "--no-progress"],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _run_to_end(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = _start(args, cwd)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pfdtrain {' '.join(args)} failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def _outcome(run: Path) -> tuple[dict, dict]:
    history = json.loads((run / "history.json").read_text())
    weights = load_checkpoint_file(run / "checkpoints" / "final_model.pth")["model_state_dict"]
    return history, weights


def _clean(run: Path, epochs: int) -> bool:
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    completed = [e["epoch"] for e in events if e["event"] == "epoch_complete"]
    return completed == list(range(1, epochs + 1)) and not list(run.rglob("*.tmp"))


def _kill_repeatedly(run: Path, name: str, work: Path, kills: int, expected: float,
                     rng: random.Random) -> list[dict]:
    """Start (or continue) the run ``kills`` times, each SIGKILLed at a random moment of the
    ``expected`` seconds a whole run takes, unless it finishes first."""
    record = []
    for _ in range(kills):
        resume = (run / "config.yaml").exists()
        started = time.perf_counter()
        proc = _start(["resume", str(run)] if resume else
                      ["train", "--config", "run.yaml", "--set", f"name={name}"], work)
        delay = rng.uniform(0.0, expected)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            record.append({"after_s": round(delay, 3), "killed": True, "resume": resume})
            continue
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: exit {proc.returncode}: {proc.stderr.read()[-3000:]}")
        record.append({"after_s": round(delay, 3), "killed": False, "resume": resume,
                       "finished_after_s": round(time.perf_counter() - started, 3)})
        break
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--out", type=Path, default=Path("bench/results/reliability.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "run.yaml").write_text(yaml.safe_dump(CONFIG))
        _run_to_end(["train", "--config", "run.yaml", "--set", "name=warm-up"], work)  # data
        reference_time = _run_to_end(["train", "--config", "run.yaml", "--set", "name=ref"], work)
        ref_history, ref_weights = _outcome(work / "runs" / "ref")

        trials = []
        expected = reference_time  # follows the machine's load: see below
        for trial in range(args.trials):
            name = f"trial-{trial:03d}"
            run = work / "runs" / name
            for attempt in range(5):
                kills = _kill_repeatedly(run, name, work, args.kills, expected, rng)
                if kills[0]["killed"] or attempt == 4:  # the 5th is kept, killed or not
                    break
                # finished before its kill moment (the machine got faster): a trial without
                # a kill proves nothing, so draw again over the duration just seen
                expected = kills[0]["finished_after_s"]
                shutil.rmtree(run)
            if kills[-1]["killed"]:
                resume = (run / "config.yaml").exists()
                _run_to_end(["resume", str(run)] if resume else
                            ["train", "--config", "run.yaml", "--set", f"name={name}"], work)
            history, weights = _outcome(run)
            equal = history == ref_history and weights.keys() == ref_weights.keys() and all(
                torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
            clean = _clean(run, CONFIG["num_epochs"])
            trials.append({"trial": trial, "kills": kills, "bitwise_equal": equal,
                           "clean": clean})
            print(f"{name}: kills at {[k['after_s'] for k in kills if k['killed']]} s -> "
                  f"{'bitwise equal' if equal else 'DIFFERENT'}, "
                  f"{'clean' if clean else 'NOT CLEAN'}", flush=True)

    killed = sum(k["killed"] for t in trials for k in t["kills"])
    result = {
        "benchmark": "SIGKILL at random moments, then resume to the end",
        "command": "python bench/bench_reliability.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "config": CONFIG,
        "reference_wall_time_s": round(reference_time, 2),
        "tried": len(trials),
        "sigkills": killed,
        "trials_with_a_kill": sum(any(k["killed"] for k in t["kills"]) for t in trials),
        "bitwise_equal": sum(t["bitwise_equal"] for t in trials),
        "clean_folders": sum(t["clean"] for t in trials),
        "trials": trials,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tried {result['tried']} ({killed} SIGKILLs): {result['bitwise_equal']} bitwise "
          f"equal, {result['clean_folders']} clean -> {args.out}")


if __name__ == "__main__":
    main()
