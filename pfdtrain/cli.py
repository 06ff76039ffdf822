"""``pfdtrain`` command line.

    pfdtrain train [--config my.yaml] [--set optimizer.lr=3e-4 ...]
    pfdtrain config                      # the full default config, commented
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Optional, Sequence

from pfdtrain import __version__
from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.errors import PfdtrainError


def _load_config(args: argparse.Namespace) -> TrainingConfig:
    config = TrainingConfig.from_yaml(args.config) if args.config else TrainingConfig()
    return apply_overrides(config, args.set or [])


def _cmd_train(args: argparse.Namespace) -> int:
    from pfdtrain.pipeline import run_training  # torch import only when needed

    config = _load_config(args)
    run_training(config, progress_bar=None if not args.no_progress else False)
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

    config = sub.add_parser("config", help="print the full configuration, commented")
    add_config_args(config)
    config.set_defaults(func=_cmd_config)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PfdtrainError as exc:
        message = textwrap.fill(str(exc), width=100, subsequent_indent="  ",
                                break_long_words=False, break_on_hyphens=False)
        print(f"pfdtrain: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pfdtrain: interrupted", file=sys.stderr)
        return 130
