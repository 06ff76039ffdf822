"""Ablation: the same model trained with and without the physics loss, over several seeds.

    python bench/bench_physics.py [--seeds 0 1 2] [--epochs 10] [--model cnn1d]
                                  [--weight 0.1] [--out bench/results/physics_ablation.json]

Each setting is trained on the default synthetic dataset (same data for every run; the
seed changes initialisation, dropout and data order), then evaluated on the clean test
split and on noisy copies of it (white noise at SNR 20, 10 and 5 dB, added to the raw
windows before normalisation, the same noise for every model). Writes mean ± std of test
accuracy and macro F1 per setting to a JSON file and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.evaluation.metrics import classification_report
from pfdtrain.pipeline import run_training
from pfdtrain.utils.logging import setup_logging

SNRS_DB = (None, 20.0, 10.0, 5.0)


def _condition(snr: float | None) -> str:
    return "clean" if snr is None else f"snr{snr:g}dB"


def run_one(setting: str, seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    overrides = [f"seed={seed}", f"num_epochs={args.epochs}", f"model.name={args.model}",
                 f"output_dir={workdir}/runs", f"name={setting}-seed{seed}",
                 f"data.cache_dir={workdir}/data", "checkpoint.enabled=false",
                 "callbacks.events=false", "callbacks.lr_monitor.verbose=false"]
    if setting == "physics":
        overrides += ["trainer=pinn", f"physics.weight={args.weight}",
                      f"physics.warmup_epochs={args.warmup}"]
    config = apply_overrides(TrainingConfig(), overrides)
    started = time.perf_counter()
    result = run_training(config, progress_bar=False)
    train_time = time.perf_counter() - started
    test_ds = result.data.test_loader.dataset
    scores = {}
    for snr in SNRS_DB:
        loader = DataLoader(test_ds.with_noise(snr, noise_seed=1234) if snr is not None else test_ds,
                            batch_size=config.data.batch_size)
        _, logits, targets = result.trainer.evaluate_with_predictions(loader)
        report = classification_report(targets.numpy(), logits.argmax(1).numpy(),
                                       result.data.class_names)
        scores[_condition(snr)] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    return {"setting": setting, "seed": seed, "epochs_trained": result.trainer.epochs_completed,
            "train_time_s": round(train_time, 1), "scores": scores}


def summarise(runs: list[dict]) -> dict:
    summary: dict = {}
    for setting in sorted({r["setting"] for r in runs}):
        mine = [r for r in runs if r["setting"] == setting]
        summary[setting] = {}
        for condition in (_condition(s) for s in SNRS_DB):
            for metric in ("accuracy", "macro_f1"):
                values = [r["scores"][condition][metric] for r in mine]
                summary[setting][f"{condition}_{metric}"] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return summary


def markdown(summary: dict, args: argparse.Namespace) -> str:
    lines = [f"Physics ablation: {args.model}, {args.epochs} epochs, seeds {args.seeds}, "
             f"physics weight {args.weight} (warm-up {args.warmup} epochs). "
             f"Test accuracy % (mean ± std over seeds).", "",
             "| setting | " + " | ".join(_condition(s) for s in SNRS_DB) + " |",
             "| --- |" + " --- |" * len(SNRS_DB)]
    for setting, values in summary.items():
        cells = [f"{values[f'{_condition(s)}_accuracy']['mean']:.2f} ± "
                 f"{values[f'{_condition(s)}_accuracy']['std']:.2f}" for s in SNRS_DB]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model", default="cnn1d")
    parser.add_argument("--weight", type=float, default=0.1, help="physics loss weight lambda")
    parser.add_argument("--warmup", type=int, default=0, help="lambda warm-up epochs")
    parser.add_argument("--out", default="bench/results/physics_ablation.json")
    args = parser.parse_args()
    setup_logging(level="WARNING")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for setting in ("baseline", "physics"):
                runs.append(run_one(setting, seed, args, Path(tmp)))
                print(json.dumps(runs[-1]), flush=True)
    summary = summarise(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "summary": summary, "runs": runs},
                              indent=2) + "\n")
    table = markdown(summary, args)
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
