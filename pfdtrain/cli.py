"""``pfdtrain`` command line.

    pfdtrain train [--config my.yaml] [--set optimizer.lr=3e-4 ...]
    pfdtrain resume runs/<name> [--epochs N]
    pfdtrain inspect runs/<name>/checkpoints/best_model.pth
    pfdtrain evaluate runs/<name>/checkpoints/best_model.pth [--data file.h5] [--split test|all]
                     [--by load ...] [--adapt-bn]
    pfdtrain predict runs/<name>/checkpoints/best_model.pth recording.mat [--variable X]
                     [--adapt-bn]
    pfdtrain predict --model runs/<name>/export/best_model.onnx recording.mat
    pfdtrain export runs/<name>/checkpoints/best_model.pth [--format onnx|torchscript]
                    [--quantize int8] [--out FILE]
    pfdtrain data import --manifest recordings.csv --out data/mine.h5
    pfdtrain benchmark cwru-loads --root DIR [--seeds 0 1 2] [--methods ...] [--out DIR]
    pfdtrain sweep SPEC.yaml [--trials N] [--storage URL] [--study NAME] [--summary]
    pfdtrain dashboard [runs/] [--host 127.0.0.1] [--port 8765] [--benchmarks DIR]
    pfdtrain config                      # the full default config, commented
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence

from torch.distributed.elastic.multiprocessing.errors import record

from pfdtrain import __version__
from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.errors import HANDLED_ERRNOS, PfdtrainError, output_error


def _load_config(args: argparse.Namespace) -> TrainingConfig:
    config = TrainingConfig.from_yaml(args.config) if args.config else TrainingConfig()
    return apply_overrides(config, args.set or [])


def _cmd_train(args: argparse.Namespace) -> int:
    from pfdtrain.pipeline import run_training  # torch import only when needed

    config = _load_config(args)
    run_training(config, progress_bar=None if not args.no_progress else False)
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from pfdtrain.pipeline import resume_training

    resume_training(Path(args.run_dir), num_epochs=args.epochs,
                    progress_bar=None if not args.no_progress else False)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pfdtrain.training.checkpoint import (INTEGRITY_KEY, OPTIONAL_KEYS, REQUIRED_KEYS,
                                              load_checkpoint_file, validate_checkpoint_keys)

    checkpoint = load_checkpoint_file(args.checkpoint)
    problems = validate_checkpoint_keys(checkpoint)
    summary = {
        "file": str(args.checkpoint),
        "model_class": checkpoint.get("model_class"),
        "model_kwargs": checkpoint.get("model_kwargs"),
        "epoch": checkpoint.get("epoch"),
        "epochs_completed": checkpoint.get("epochs_completed"),
        "global_step": checkpoint.get("global_step"),
        "mid_epoch_batches_done": (checkpoint.get("data_state") or {}).get("batches_done"),
        "best_val_acc": checkpoint.get("best_val_acc"),
        "best_val_loss": checkpoint.get("best_val_loss"),
        "history_keys": sorted(checkpoint.get("history") or {}),
        "last_epoch": {k: v[-1] for k, v in (checkpoint.get("history") or {}).items() if v},
        "metadata": checkpoint.get("metadata"),
        "pfdtrain_version": checkpoint.get("pfdtrain_version"),
        "torch_version": checkpoint.get("torch_version"),
        "timestamp": checkpoint.get("timestamp"),
        "integrity": (f"verified ({checkpoint[INTEGRITY_KEY]['algorithm']} "
                      f"{checkpoint[INTEGRITY_KEY]['digest'][:16]}…)" if INTEGRITY_KEY in checkpoint
                      else "not recorded (written before pfdtrain 0.2; loaded unverified)"),
        "keys": {key: key in checkpoint for key in REQUIRED_KEYS + OPTIONAL_KEYS},
        "problems": problems,
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            if key == "keys":
                for name, present in value.items():
                    need = "required" if name in REQUIRED_KEYS else "optional"
                    print(f"  {'ok ' if present else 'MISSING'} {name} ({need})")
                continue
            if key == "metadata" and isinstance((value or {}).get("split"), dict):
                # the record ids of every split run to thousands of names; --json has them
                value = {**value, "split": {k: v for k, v in value["split"].items()
                                            if k != "ids"}}
            print(f"{key:<{width}}  {value}")
    if problems:
        print(f"pfdtrain: {args.checkpoint} does not meet the guide's checkpoint contract: "
              f"{'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    config = _load_config(args)
    sys.stdout.write(config.to_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pfdtrain",
        description="Train vibration-based machine fault classifiers.")
    parser.add_argument("--version", action="version", version=f"pfdtrain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
        p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optimizer.lr=3e-4 "
                            "(repeatable; values are YAML)")

    train = sub.add_parser("train", help="train a model (default: CNN1D on synthetic data)")
    add_config_args(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    resume = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    resume.add_argument("run_dir", help="the run folder, e.g. runs/cnn1d-20261126-101500")
    resume.add_argument("--epochs", type=int, help="total epochs (default: the run's num_epochs)")
    resume.add_argument("--no-progress", action="store_true", help="no progress bar")
    resume.set_defaults(func=_cmd_resume)

    inspect = sub.add_parser("inspect", help="print a checkpoint's metadata and check its keys")
    inspect.add_argument("checkpoint", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=_cmd_inspect)

    from pfdtrain.benchmark.runner import add_benchmark_parser
    from pfdtrain.cli_data import add_data_parser
    from pfdtrain.dashboard.server import add_dashboard_parser
    from pfdtrain.evaluation.evaluate import add_evaluate_parser
    from pfdtrain.evaluation.predict import add_predict_parser
    from pfdtrain.export.exporter import add_export_parser
    from pfdtrain.sweep.runner import add_sweep_parser

    add_evaluate_parser(sub)
    add_predict_parser(sub)
    add_export_parser(sub)
    add_data_parser(sub)
    add_benchmark_parser(sub)
    add_sweep_parser(sub)
    add_dashboard_parser(sub)

    config = sub.add_parser("config", help="print the full configuration, commented")
    add_config_args(config)
    config.set_defaults(func=_cmd_config)
    return parser


def _print_error(exc: Exception) -> int:
    message = textwrap.fill(str(exc), width=100, subsequent_indent="  ",
                            break_long_words=False, break_on_hyphens=False)
    distributed = os.environ.get("WORLD_SIZE", "1") != "1"
    where = f" (rank {os.environ.get('RANK')})" if distributed else ""
    print(f"pfdtrain: error{where}: {message}", file=sys.stderr)
    return 2


@record  # under torchrun: the failing rank's traceback goes into the job's error report
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PfdtrainError as exc:
        return _print_error(exc)
    except OSError as exc:
        # a filesystem refusal that no write site wrapped (e.g. a read-only folder met by
        # a library): still one paragraph naming the path and the fix, not a traceback
        if exc.errno not in HANDLED_ERRNOS:
            raise
        return _print_error(output_error(exc))
    except KeyboardInterrupt:
        print("pfdtrain: interrupted", file=sys.stderr)
        return 130
