"""Generalisation benchmark (issue 11 §6): what holds up on a machine the model was not
trained on: another speed, another load, a noisier sensor.

    python bench/bench_generalization.py [--tasks cwru-0to1 sim-speed sim-load]
        [--rows baseline augment fft envelope order ...] [--seeds 0 1 2]
        [--work bench/work/generalization] [--out bench/results/generalization.json]

Tasks (each an ordinary train + evaluate, one run folder per task × row × seed under
``--work``):

* ``cwru-0to1`` — the real CWRU recordings in ``../shared/data/cwru-12k-de`` (or
  ``--cwru-root``): trained on 0 HP (validation cut from the end of each 0 HP recording),
  tested on every 1 HP recording (a load never seen in training). Skipped, and said so in
  the results, when the folder is absent.
* ``sim-speed`` — the rolling-element simulator: trained on the lower half of the speed range
  (1200–2100 rpm), tested on the upper half (2100–3000 rpm).
* ``sim-load`` — the simulator: trained on loads 0.25 and 0.5, tested on 0.75 and 1.0.

Every trained model is evaluated on its test recordings clean and with white noise at SNR
10, 5, 0 and −4 dB (noise seed 0), source-only and with AdaBN (``--adapt-bn``: batch-norm
statistics re-estimated on the unlabeled test windows; reported apart, it uses target data).

Rows (``ROWS``): today's configuration, + augmentation (the augment section of
``recipes/cross-condition.yaml``), + each input transform, and augmentation combined with the
spectral transforms; AdaBN is a column of every row. The table names the best row of each
task (source-only clean and noisy accuracy). Results are kept
per run in ``<work>/results.jsonl``, so an interrupted benchmark continues where it stopped
and rows can be added later; the JSON and Markdown results are rewritten from all of them
(``--summary``: only that, training nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import yaml
from bench_common import machine_info, write_results

from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.evaluation.evaluate import evaluate_checkpoint
from pfdtrain.pipeline import run_training
from pfdtrain.utils.logging import setup_logging

SNRS_DB: tuple[float, ...] = (10.0, 5.0, 0.0, -4.0)
CWRU_ROOT = Path("../shared/data/cwru-12k-de")

# Shared by every task: CNN1D as configured today, 2048-sample windows.
COMMON = ["data.window_length=2048", "data.window_stride=1024", "data.split=group",
          "callbacks.lr_monitor.verbose=false"]
SIMULATOR = ["synthetic.kind=rolling_element", "synthetic.sampling_rate=12000",
             "synthetic.record_duration=1.0", "synthetic.records_per_class=16"]
# The order transform needs whole revolutions inside a window: a 2048-sample window at 12 kHz
# covers 5.1 turns at CWRU's 1797 rpm and 3.4 at the simulator's slowest 1200 rpm. The
# samples per revolution keep the orders up to the input's Nyquist frequency at the slowest
# speed (CWRU: 384/2 = 192 orders = 5.7 kHz at 29.5 Hz; simulator: 600/2 = 300 orders = 6 kHz
# at 20 Hz), so the resonances the impacts ring survive the resampling.
TASKS: dict[str, dict[str, Any]] = {
    "cwru-0to1": {"what": "CWRU 12 kHz DE, train 0 HP → test 1 HP (real recordings)",
                  "overrides": ["data.group_key=load", "data.test_groups=[1]"],
                  "order": ["data.transform_params.samples_per_rev=384",
                            "data.transform_params.revolutions=4"],
                  "needs_cwru": True},
    "sim-speed": {"what": "simulator, train 1200–2100 rpm → test 2100–3000 rpm",
                  "overrides": SIMULATOR + ["data.group_key=speed_band", "data.test_groups=[1]"],
                  "order": ["data.transform_params.samples_per_rev=600",
                            "data.transform_params.revolutions=3"]},
    "sim-load": {"what": "simulator, train load 0.25, 0.5 → test 0.75, 1.0",
                 "overrides": SIMULATOR + ["data.group_key=load",
                                           "data.test_groups=[0.75, 1.0]"],
                 "order": ["data.transform_params.samples_per_rev=600",
                           "data.transform_params.revolutions=3"]},
}
# The augmentation row is the recipe's augment section (recipes/cross-condition.yaml), so
# the documented recipe is exactly what was measured.
RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "cross-condition.yaml"
_RECIPE = yaml.safe_load(RECIPE.read_text())
AUGMENT = [f"augment.{key}={json.dumps(value)}" for key, value in _RECIPE["augment"].items()]
# The whole recipe: the augmentation and best_model.pth chosen by the validation loss.
RECIPE_OVERRIDES = AUGMENT + [f"checkpoint.{key}={json.dumps(value)}"
                              for key, value in _RECIPE["checkpoint"].items()]
ROWS: dict[str, dict[str, Any]] = {
    "baseline": {"what": "today's configuration (CNN1D, raw z-scored windows)", "overrides": []},
    "val-loss": {"what": "today's configuration, best_model.pth by val_loss",
                 "overrides": RECIPE_OVERRIDES[len(AUGMENT):]},
    "augment": {"what": "+ augmentation (shift, speed ±5 %, scale, noise −6…20 dB)",
                "overrides": AUGMENT},
    "fft": {"what": "+ input transform fft", "overrides": ["data.transform=fft"]},
    "envelope": {"what": "+ input transform envelope", "overrides": ["data.transform=envelope"]},
    "order": {"what": "+ input transform order", "overrides": ["data.transform=order"]},
    "recipe": {"what": "the recipe: augmentation, best_model.pth by val_loss "
                         "(recipes/cross-condition.yaml)", "overrides": RECIPE_OVERRIDES},
    "augment-fft": {"what": "+ augmentation + input transform fft",
                    "overrides": AUGMENT + ["data.transform=fft"]},
    "augment-envelope": {"what": "+ augmentation + input transform envelope",
                         "overrides": AUGMENT + ["data.transform=envelope"]},
}
# The columns that decide the best row (source-only: no target data): clean and noisy.
DECIDING = ("accuracy", "noise:0", "noise:-4")


def run_key(task: str, row: str, seed: int) -> str:
    return f"{task}/{row}/seed{seed}"


def run_one(task: str, row: str, seed: int, args: argparse.Namespace, cwru_h5: Path) -> dict:
    """Train one task × row × seed and evaluate its best checkpoint (source-only and AdaBN)."""
    work = Path(args.work)
    overrides = (COMMON + TASKS[task]["overrides"] + ROWS[row]["overrides"]
                 + [f"seed={seed}", f"num_epochs={args.epochs}", f"output_dir={work}/runs",
                    f"name={task}-{row}-seed{seed}", f"data.cache_dir={work}/data"])
    if "data.transform=order" in overrides:
        overrides += TASKS[task]["order"]
    if TASKS[task].get("needs_cwru"):
        overrides.append(f"data.source={cwru_h5}")
    config = apply_overrides(TrainingConfig(), overrides)
    run_dir = work / "runs" / config.name
    started = time.perf_counter()
    if not (run_dir / "checkpoints" / "best_model.pth").is_file():
        run_training(config, progress_bar=False)
    train_s = time.perf_counter() - started
    metrics = evaluate_checkpoint(run_dir / "checkpoints" / "best_model.pth",
                                  out_dir=run_dir / "evaluation", snrs=SNRS_DB, adapt_bn=True)
    adapted = metrics["adapt_bn"]
    return {"key": run_key(task, row, seed), "task": task, "row": row, "seed": seed,
            "overrides": overrides, "train_and_eval_s": round(time.perf_counter() - started, 1),
            "train_s": round(train_s, 1), "epoch": metrics["epoch"],
            "num_test_windows": metrics["num_windows"],
            "accuracy": metrics["accuracy"], "adabn_accuracy": adapted["accuracy"],
            "recording_accuracy": metrics["recording"]["accuracy"],
            "adabn_recording_accuracy": adapted["recording"]["accuracy"],
            "noise": {k: v["accuracy"] for k, v in metrics["robustness"].items()},
            "adabn_noise": {k: v["accuracy"] for k, v in adapted["robustness"].items()}}


def _columns() -> list[tuple[str, str]]:
    cols = [("accuracy", "clean"), ("adabn_accuracy", "clean, AdaBN")]
    for snr in SNRS_DB:
        cols += [(f"noise:{snr:g}", f"{snr:g} dB"), (f"adabn_noise:{snr:g}", f"{snr:g} dB, AdaBN")]
    return cols


def _value(run: dict, column: str) -> float:
    if ":" in column:
        block, snr = column.split(":")
        return run[block][snr]
    return run[column]


def summarise(runs: list[dict]) -> dict:
    """mean ± std (population over seeds: n − 1 would need ≥ 2 seeds) per task × row × column,
    in percent (as evaluate reports them), with the seeds and every per-seed value."""
    summary: dict = {}
    for task in TASKS:
        for row in ROWS:
            mine = sorted((r for r in runs if r["task"] == task and r["row"] == row),
                          key=lambda r: r["seed"])
            if not mine:
                continue
            cells = {}
            for column, _ in _columns():
                values = [_value(r, column) for r in mine]  # already percent
                cells[column] = {"mean": round(statistics.fmean(values), 2),
                                 "std": round(statistics.pstdev(values), 2),
                                 "per_seed": [round(v, 2) for v in values]}
            summary.setdefault(task, {})[row] = {"seeds": [r["seed"] for r in mine], **cells}
    return summary


def markdown(summary: dict, skipped: dict, args: argparse.Namespace) -> str:
    cols = _columns()
    lines = [f"Generalisation benchmark (`bench/bench_generalization.py`): CNN1D, {args.epochs} "
             f"epochs, 2048-sample windows; window accuracy % on the test recordings, mean ± "
             f"std over seeds; AdaBN columns use the unlabeled test windows.", ""]
    for task, rows in summary.items():
        lines += [f"**{task}** — {TASKS[task]['what']}", "",
                  "| row | seeds | " + " | ".join(label for _, label in cols) + " |",
                  "| --- | --- |" + " ---: |" * len(cols)]
        for row, cells in rows.items():
            what = ROWS[row]["what"]
            lines.append(f"| {row}: {what} | {','.join(map(str, cells['seeds']))} | "
                         + " | ".join(f"{cells[c]['mean']:.2f} ± {cells[c]['std']:.2f}"
                                      for c, _ in cols) + " |")
        best = max(rows, key=lambda r: statistics.fmean(rows[r][c]["mean"] for c in DECIDING))
        lines += ["", f"Best row on {task} (highest mean of the source-only clean, 0 dB and "
                      f"−4 dB accuracies): **{best}**.", ""]
    for task, why in skipped.items():
        lines.append(f"*{task} skipped: {why}*")
    return "\n".join(lines) + "\n"


def ensure_cwru(args: argparse.Namespace) -> Path:
    """The CWRU import of ``--cwru-root``, made once under ``--work``."""
    h5 = Path(args.work) / "cwru.h5"
    if not h5.is_file():
        from pfdtrain.data.importers.cwru import import_cwru

        import_cwru(Path(args.cwru_root), h5)
    return h5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cwru-root", default=str(CWRU_ROOT))
    parser.add_argument("--work", default="bench/work/generalization")
    parser.add_argument("--out", default="bench/results/generalization.json")
    parser.add_argument("--summary", action="store_true",
                        help="train nothing: rewrite the results from the runs done so far")
    args = parser.parse_args()
    setup_logging(level="WARNING")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    done_file = work / "results.jsonl"
    runs = {r["key"]: r for r in (json.loads(line) for line in done_file.open()
                                  if line.strip())} if done_file.is_file() else {}
    results: dict = {"machine": machine_info(), "args": vars(args)}
    skipped, cwru_h5 = {}, None
    if "cwru-0to1" in args.tasks:
        if not any(Path(args.cwru_root).glob("*.mat")):
            skipped["cwru-0to1"] = f"no CWRU .mat files in {args.cwru_root} (see its README)"
        elif not args.summary:
            cwru_h5 = ensure_cwru(args)
    for seed in args.seeds:
        for task in args.tasks:
            if task in skipped:
                continue
            for row in args.rows:
                key = run_key(task, row, seed)
                if key in runs or args.summary:
                    continue
                runs[key] = run_one(task, row, seed, args, cwru_h5)
                with done_file.open("a") as handle:
                    handle.write(json.dumps(runs[key]) + "\n")
                print(json.dumps({k: runs[key][k] for k in ("key", "accuracy", "adabn_accuracy",
                                                            "noise", "train_and_eval_s")}),
                      flush=True)
    summary = summarise(list(runs.values()))
    results.update({"tasks": {t: TASKS[t]["what"] for t in TASKS},
                    "rows": {r: ROWS[r]["what"] for r in ROWS}, "skipped": skipped,
                    "summary": summary, "runs": sorted(runs.values(), key=lambda r: r["key"])})
    write_results(args.out, results)
    table = markdown(summary, skipped, args)
    Path(args.out).with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
