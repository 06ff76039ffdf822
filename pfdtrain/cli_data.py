"""``pfdtrain data import``: the command-line side of :mod:`pfdtrain.data.importers`.

Kept out of the data modules (which stay importable without argparse concerns) and out of
``pfdtrain/cli.py`` (which only registers the sub-command). ``--layout`` choices and help
come from the layout registry :data:`pfdtrain.data.importers.LAYOUTS`.

Example:
    >>> sub = parser.add_subparsers(dest="command", required=True)
    >>> add_data_parser(sub)   # then: pfdtrain data import --layout cwru --root DIR --out x.h5
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from pfdtrain.data.importers import LAYOUTS, MANIFEST_LAYOUT
from pfdtrain.data.importers.core import DEFAULT_MIN_LENGTH
from pfdtrain.data.importers.manifest import import_manifest
from pfdtrain.data.importers.readers import RecordingWarning
from pfdtrain.data.records import DataError


def _misplaced(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    return [flag for flag, attr in flags.items() if getattr(args, attr) is not None]


def _cmd_data_import(args: argparse.Namespace) -> int:
    if args.layout != MANIFEST_LAYOUT:
        layout = LAYOUTS[args.layout]
        if args.root is None:
            raise DataError(f"pfdtrain data import --layout {layout.name} needs --root DIR "
                            f"(the folder of the {layout.title} files).")
        misplaced = _misplaced(args, {"--manifest": "manifest", "--classes": "classes",
                                      "--sampling-rate": "sampling_rate"})
        if misplaced:
            raise DataError(f"{', '.join(misplaced)} do(es) not apply to --layout "
                            f"{layout.name} (the layout fixes classes and rate; use --labels "
                            f"{'|'.join(layout.label_sets)}).")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = layout.run(args.root, args.out, label_set=args.labels,
                                 channel=args.channel, target_rate=args.resample,
                                 skip_bad=args.skip_bad, min_length=args.min_length)
    else:
        if args.manifest is None:
            raise DataError(f"pfdtrain data import needs --manifest recordings.csv (or "
                            f"--layout {'|'.join(LAYOUTS)} --root DIR).")
        misplaced = _misplaced(args, {"--root": "root", "--labels": "labels"})
        if misplaced:
            raise DataError(f"{', '.join(misplaced)} only apply to --layout "
                            f"{'|'.join(LAYOUTS)}.")
        classes = None
        if args.classes is not None:
            classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = import_manifest(args.manifest, args.out, target_rate=args.resample,
                                      sampling_rate=args.sampling_rate, channel=args.channel,
                                      classes=classes, skip_bad=args.skip_bad,
                                      min_length=args.min_length)
    # Skipped files are listed below once; other warnings (e.g. an approximated resampling
    # ratio) are printed as they came.
    for w in caught:
        message = str(w.message)
        if not (issubclass(w.category, RecordingWarning)
                and (message.startswith("skipped: ") or message.endswith("not imported."))):
            print(f"pfdtrain: warning: {message}")
    print(summary.line())
    for file, reason in summary.skipped:
        print(f"  skipped {file}: {reason}")
    return 0


def add_data_parser(subparsers: Any) -> None:
    """Add ``data`` (with sub-command ``import``) to the ``pfdtrain`` command line.

    Usage::

        pfdtrain data import --manifest recordings.csv --out data/mine.h5 [--sampling-rate HZ]
            [--resample HZ] [--channel DE] [--classes a,b,c] [--skip-bad] [--min-length N]
        pfdtrain data import --layout cwru --root DIR --out data/cwru.h5
            [--labels 10class|4class] [--channel DE|FE|BA] [--resample HZ] [--skip-bad]

    The handler (``args.func``) prints a one-line summary (and one line per skipped file)
    and returns 0; problems raise :class:`~pfdtrain.errors.PfdtrainError` subclasses.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Example:
        >>> sub = parser.add_subparsers(dest="command", required=True)
        >>> add_data_parser(sub)
    """
    data = subparsers.add_parser("data", help="dataset tools: import recordings")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser(
        "import", help="import recordings (manifest CSV or a public dataset's folder) into "
                       "an HDF5 dataset",
        description="Import recordings into one unsplit pfdtrain dataset file; the train/val/"
                    "test split is chosen when training (data.split: record, time, group).")
    layout_help = "; ".join(f"{name}: a folder of {layout.title} files"
                            for name, layout in LAYOUTS.items())
    imp.add_argument("--layout", choices=[MANIFEST_LAYOUT, *LAYOUTS], default=MANIFEST_LAYOUT,
                     help=f"{MANIFEST_LAYOUT}: a CSV with one row per recording (default); "
                          f"{layout_help}")
    imp.add_argument("--manifest", type=Path, help="manifest CSV (columns path, label, "
                     "optional variable/column, sampling_rate, record_id, metadata...)")
    imp.add_argument("--root", type=Path, help="--layout " + "|".join(LAYOUTS)
                     + ": the dataset's folder (relative or absolute)")
    imp.add_argument("--out", type=Path, required=True, help="dataset file to write (.h5)")
    imp.add_argument("--sampling-rate", type=float, metavar="HZ",
                     help="sampling rate of rows without a sampling_rate cell whose file "
                          "states none (a file stating another is refused)")
    imp.add_argument("--resample", type=float, metavar="HZ",
                     help="resample every recording to this rate")
    channels = "; ".join(f"{name}: {'|'.join(layout.channels)} (default "
                         f"{layout.channels[0]})" for name, layout in LAYOUTS.items())
    imp.add_argument("--channel", help="signal of rows naming none: .mat variable (e.g. DE "
                     f"finds X097_DE_time) or .csv column; {channels}")
    imp.add_argument("--classes", help="class names in index order, comma-separated")
    label_sets = sorted({s for layout in LAYOUTS.values() for s in layout.label_sets})
    labels_help = "; ".join(f"{name}: {'|'.join(layout.label_sets)} (default "
                            f"{layout.label_sets[0]})" for name, layout in LAYOUTS.items())
    imp.add_argument("--labels", choices=label_sets, help=f"label set of a layout; {labels_help}")
    imp.add_argument("--skip-bad", action="store_true",
                     help="skip bad recordings with a warning instead of failing")
    imp.add_argument("--min-length", type=int, default=DEFAULT_MIN_LENGTH, metavar="N",
                     help=f"shortest recording kept, in samples (default {DEFAULT_MIN_LENGTH})")
    imp.set_defaults(func=_cmd_data_import)
