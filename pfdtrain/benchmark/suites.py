"""The benchmark suites: published-style protocols as lists of tasks.

======================  =====================================================================
suite                   tasks
======================  =====================================================================
``journal``             the built-in journal-bearing data, record split; scored clean and at
                        10, 5 and 0 dB SNR
``rolling-element``     the rolling-element simulator: cross-speed (speed band 0 ↔ 1) and
                        cross-load (loads 0.25, 0.5 ↔ 0.75, 1.0) transfers
``cwru-loads``          every i → j load transfer of the CWRU 12 kHz drive-end files in
                        ``--root`` (10 classes where the normal recording exists at both
                        loads, 9 otherwise)
``paderborn``           every transfer between the four Paderborn operating settings in
                        ``--root``, source and target on different bearings
``few-labels``          journal and simulator data with 1 %, 5 % and 20 % of the training
                        windows labeled (where a physics prior should matter)
======================  =====================================================================

A suite builds its tasks (writing the task dataset files under ``<out>/data``) and says
which methods it runs by default, how long, and which physics term ``pinn`` uses.

Example:
    >>> sorted(SUITES)
    ['cwru-loads', 'few-labels', 'journal', 'paderborn', 'rolling-element']
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pfdtrain.benchmark.tasks import write_transfer_task
from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.data.records import SPLITS, UNSPLIT, DataError, LoadedDataset, RecordSplit
from pfdtrain.data.storage import read_dataset
from pfdtrain.errors import PfdtrainError
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)


class BenchmarkError(PfdtrainError, ValueError):
    """A benchmark cannot run as asked (unknown suite or method, unusable ``--root``)."""


# The cross-condition recipe (recipes/cross-condition.yaml, README "Generalisation"): every
# suite trains with it, so each method is measured as a user of the recipe would train it.
RECIPE: tuple[str, ...] = (
    "data.window_length=2048", "data.window_stride=1024", "augment.enabled=true",
    "augment.transforms=[shift, speed, scale, noise]", "augment.noise_probability=0.5",
    "augment.noise_snr_db=[-6, 20]", "augment.speed_factor=[0.95, 1.05]",
    "checkpoint.monitor=val_loss", "checkpoint.mode=min")
QUIET = ("callbacks.lr_monitor.verbose=false",)
SIMULATOR = ("synthetic.kind=rolling_element", "synthetic.sampling_rate=12000",
             "synthetic.record_duration=2.0", "synthetic.records_per_class=16")
# The physics term each data family's `pinn` method uses (README "Physics that earns its
# place"); Paderborn's test rig runs 6203 bearings, CWRU's drive end and the simulator 6205.
JOURNAL_PHYSICS = ("physics.term=journal",)
ROLLING_PHYSICS = ("physics.term=rolling_element",)
PADERBORN_PHYSICS = ROLLING_PHYSICS + (
    "physics.bearing.num_balls=8", "physics.bearing.ball_diameter_mm=6.75",
    "physics.bearing.pitch_diameter_mm=28.55")
LABEL_FRACTIONS = (0.01, 0.05, 0.2)
# The built-in journal data at a quarter of its default size (24 records per class, 264 in
# all): each run of a suite is an epoch budget of seconds, not minutes, on a 2-core machine.
JOURNAL_WINDOWS = ("data.window_length=6400", "data.window_stride=3200",  # 1 s at 6.4 kHz
                   "synthetic.records_per_class=24")


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of a suite.

    Args:
        name: short name (run folder names start with it).
        what: one line for the table.
        overrides: the task's data settings.
        adaptation: the unlabeled target (``data.target_source=...``); empty where the task
            has no target (domain-adaptation methods are then left out, and said so).
        physics: the ``pinn`` method's physics settings for this data.
        checkpoint: the checkpoint scored: ``best_model.pth`` (chosen on the source
            validation split) or ``latest_model.pth`` (the last epoch, where selecting on
            fully labeled validation data would contradict a few-label protocol).
        reference: key of :data:`pfdtrain.benchmark.references.REFERENCES`, or None.
    """

    name: str
    what: str
    overrides: tuple[str, ...]
    adaptation: tuple[str, ...] = ()
    physics: tuple[str, ...] = ROLLING_PHYSICS
    checkpoint: str = "best_model.pth"
    reference: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class SuiteContext:
    """What a suite's builder gets: the data folder, the output folder, the epochs."""

    root: Optional[Path]
    out: Path


@dataclasses.dataclass(frozen=True)
class Suite:
    """A benchmark protocol.

    Args:
        what: one line for ``--help`` and the table.
        build: ``SuiteContext → [Task]`` (writes the task files).
        methods: the methods run when ``--methods`` is not given.
        epochs: epochs per run unless ``--epochs``.
        snrs: extra noise columns (dB SNR, white noise on the test windows).
        needs_root: the suite reads a folder of recordings (``--root``).
        common: settings of every run of the suite (after the recipe).
    """

    what: str
    build: Callable[[SuiteContext], list[Task]]
    methods: tuple[str, ...]
    epochs: int
    snrs: tuple[float, ...] = ()
    needs_root: bool = False
    common: tuple[str, ...] = ()


def _pool(data: LoadedDataset) -> RecordSplit:
    return RecordSplit.concat([data.splits[k] for k in (*SPLITS, UNSPLIT) if k in data.splits])


def _synthetic_file(overrides: tuple[str, ...], out: Path) -> LoadedDataset:
    from pfdtrain.data.synthetic_cache import ensure_synthetic_dataset

    config = apply_overrides(TrainingConfig(), [*overrides, f"data.cache_dir={out / 'cache'}"])
    return read_dataset(ensure_synthetic_dataset(config), verify_hash=False)


def _window(overrides: tuple[str, ...]) -> int:
    return apply_overrides(TrainingConfig(), list(overrides)).data.window_length


def _transfer(data: LoadedDataset, ctx: SuiteContext, name: str, what: str,
              source: np.ndarray, target: np.ndarray, physics: tuple[str, ...],
              reference: Optional[str] = None, window: int = 2048) -> Task:
    pool = _pool(data)
    files = write_transfer_task(pool, data.class_names, data.sampling_rate, source=source,
                                target=target, out_dir=ctx.out / "data", name=name,
                                description=data.source, pool_hash=data.content_hash,
                                min_length=window, gap=window)
    if files.dropped_classes:
        what += f" ({len(files.classes)} classes: no {', '.join(files.dropped_classes)} " \
                f"recording on both sides)"
    return Task(name, what, tuple(files.overrides()), tuple(files.adaptation_overrides()),
                physics, reference=reference)


# ---------------------------------------------------------------- journal
def _journal(ctx: SuiteContext) -> list[Task]:
    return [Task("journal", "built-in journal-bearing data (24 records per class), record "
                 "split (clean and noisy test windows)", ("data.split=record",),
                 physics=JOURNAL_PHYSICS)]


# ---------------------------------------------------------------- rolling element
def _rolling(ctx: SuiteContext) -> list[Task]:
    data = _synthetic_file(SIMULATOR, ctx.out)
    pool = _pool(data)
    band, load = pool.metadata["speed_band"], pool.metadata["load"]
    low, high = np.isin(load, (0.25, 0.5)), np.isin(load, (0.75, 1.0))
    cases = [("sim-speed-0to1", "simulator, speed band 0 (1200–2100 rpm) → band 1 (2100–3000 "
              "rpm)", band == 0, band == 1),
             ("sim-speed-1to0", "simulator, speed band 1 → band 0", band == 1, band == 0),
             ("sim-load-low-to-high", "simulator, loads 0.25, 0.5 → 0.75, 1.0", low, high),
             ("sim-load-high-to-low", "simulator, loads 0.75, 1.0 → 0.25, 0.5", high, low)]
    return [_transfer(data, ctx, name, what, s, t, ROLLING_PHYSICS) for name, what, s, t in cases]


# ---------------------------------------------------------------- CWRU loads
def _imported(ctx: SuiteContext, layout: str, stem: str, **options: str) -> LoadedDataset:
    """``--root`` imported with ``layout`` into ``<out>/data/<stem>.h5`` (again when the
    folder's files or the options changed)."""
    from pfdtrain.data.importers import LAYOUTS

    root = ctx.root
    if root is None or not root.is_dir():
        raise BenchmarkError(f"the suite reads a folder of {LAYOUTS[layout].title} files: pass "
                             f"it with --root DIR ({root} is not a folder)")
    files = sorted(str(p.relative_to(root)) + f":{p.stat().st_size}"
                   for p in root.rglob("*.mat"))
    h5, stamp = ctx.out / "data" / f"{stem}.h5", ctx.out / "data" / f"{stem}.source.json"
    wanted = {"root": str(root.resolve()), "files": files, "options": options}
    if not (h5.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                LAYOUTS[layout].run(root, h5, **options)
            if caught:  # e.g. a README beside the recordings: said once, not per file
                names = [str(w.message).split(":", 1)[0] for w in caught]
                logger.warning("%s: %d file(s) not imported (not %s recordings): %s", root,
                               len(names), LAYOUTS[layout].title, ", ".join(
                                   Path(n).name for n in names[:5]))
        except DataError as exc:
            other = [name for name, lay in LAYOUTS.items() if name != layout]
            raise BenchmarkError(f"--root {root} does not hold {LAYOUTS[layout].title} files "
                                 f"as the suite needs: {exc}. Point --root at such a folder, "
                                 f"or run the suite for the layout it holds (layouts: "
                                 f"{', '.join(other)}; import other recordings with "
                                 f"`pfdtrain data import` and train on them).") from None
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(wanted))
    return read_dataset(h5, verify_hash=False)


def _cwru(ctx: SuiteContext) -> list[Task]:
    data = _imported(ctx, "cwru", "cwru")
    pool = _pool(data)
    loads = sorted({int(x) for x in pool.metadata["load"] if np.isfinite(x)})
    if len(loads) < 2:
        raise BenchmarkError(f"--root {ctx.root} holds CWRU recordings at {len(loads)} load(s) "
                             f"({loads}); a load transfer needs two: add the files of another "
                             f"load (e.g. IR007_1.mat)")
    return [_transfer(data, ctx, f"cwru-{i}to{j}hp", f"CWRU 12 kHz DE, {i} HP → {j} HP",
                      pool.metadata["load"] == i, pool.metadata["load"] == j, ROLLING_PHYSICS,
                      reference="udtl-cwru")
            for i, j in itertools.permutations(loads, 2)]


# ---------------------------------------------------------------- Paderborn
PADERBORN = ("data.window_length=4096", "data.window_stride=4096")  # 64 kHz: 64 ms windows


def _setting(rpm: float, torque: float, force: float) -> str:
    return f"N{round(rpm / 100):02d}_M{round(torque * 10):02d}_F{round(force / 100):02d}"


def _paderborn(ctx: SuiteContext) -> list[Task]:
    data = _imported(ctx, "paderborn", "paderborn", label_set="3class")
    pool = _pool(data)
    meta = pool.metadata
    settings = np.array([_setting(r, t, f) for r, t, f in
                         zip(meta["rpm"], meta["torque_nm"], meta["radial_force_n"])])
    bearings = np.asarray(meta["bearing"], dtype=object)
    # Source and target on different bearings: per class, every other bearing code (sorted)
    # is a source bearing, the rest target bearings.
    side_a = np.zeros(len(pool), bool)
    for label in np.unique(pool.labels):
        codes = sorted(set(bearings[pool.labels == label]))
        if len(codes) < 2:
            raise BenchmarkError(
                f"the paderborn suite trains and tests on different bearings, but class "
                f"{data.class_names[label]} has recordings of one bearing only ({codes[0]}) in "
                f"{ctx.root}; add the folder of another bearing of that class")
        side_a |= (pool.labels == label) & np.isin(bearings, codes[0::2])
    present = sorted(set(settings))
    if len(present) < 2:
        raise BenchmarkError(f"--root {ctx.root} holds Paderborn recordings of "
                             f"{len(present)} operating setting(s) ({present}); a transfer "
                             f"needs two (N15_M07_F10, N09_M07_F10, N15_M01_F10, N15_M07_F04)")
    window = _window(RECIPE + PADERBORN)
    return [_transfer(data, ctx, f"pu-{a}-to-{b}", f"Paderborn {a} → {b}, other bearings",
                      (settings == a) & side_a, (settings == b) & ~side_a, PADERBORN_PHYSICS,
                      window=window)
            for a, b in itertools.permutations(present, 2)]


# ---------------------------------------------------------------- few labels
def _few_labels(ctx: SuiteContext) -> list[Task]:
    tasks = []
    for fraction in LABEL_FRACTIONS:
        pct = f"{fraction * 100:g}"
        # The last epoch is scored: choosing it on fully labeled validation windows would use
        # more labels than the protocol grants.
        few = ("data.split=record", f"data.label_fraction={fraction}",
               "callbacks.early_stopping.enabled=false")
        tasks.append(Task(f"journal-{pct}pct", f"built-in journal data (24 records per "
                          f"class), {pct} % of the training windows labeled", (*JOURNAL_WINDOWS, *few),
                          physics=JOURNAL_PHYSICS, checkpoint="latest_model.pth"))
        tasks.append(Task(f"sim-{pct}pct", f"rolling-element simulator, {pct} % of the "
                          f"training windows labeled", (*SIMULATOR, *few),
                          physics=ROLLING_PHYSICS, checkpoint="latest_model.pth"))
    return tasks


SUITES: dict[str, Suite] = {
    "journal": Suite("built-in journal-bearing data, scored clean and under noise", _journal,
                     ("cnn1d", "wdcnn", "pinn"), epochs=10, snrs=(10.0, 5.0, 0.0),
                     common=JOURNAL_WINDOWS),
    "rolling-element": Suite("rolling-element simulator, cross-speed and cross-load transfers",
                             _rolling, ("cnn1d", "wdcnn", "coral", "mmd", "dann", "pinn"),
                             epochs=20, snrs=(0.0,)),
    "cwru-loads": Suite("CWRU 12 kHz drive end (--root), every load transfer present", _cwru,
                        ("cnn1d", "wdcnn", "coral", "mmd", "dann", "pinn"), epochs=20,
                        snrs=(0.0,), needs_root=True),
    "paderborn": Suite("Paderborn (--root), transfers between operating settings, other "
                       "bearings", _paderborn, ("cnn1d", "wdcnn", "coral", "mmd", "dann",
                                                "pinn"),
                       epochs=20, needs_root=True, common=PADERBORN),
    "few-labels": Suite("1 %, 5 %, 20 % of the training windows labeled: does physics help?",
                        _few_labels, ("cnn1d", "pinn"), epochs=15),
}
