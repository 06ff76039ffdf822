"""``pfdtrain sweep SPEC``: an Optuna study whose trials are ordinary run folders.

    pfdtrain sweep recipes/sweep-example.yaml --trials 20
    pfdtrain sweep spec.yaml --storage postgresql://user:pw@db-host/sweeps   # on each machine
    pfdtrain sweep spec.yaml --summary

Each trial is the spec's base config with the trial's values applied, trained by
``run_training`` into ``<out>/runs/trial-NNNN`` (``pfdtrain resume`` and the dashboard read
it like any run). The trial's value is the best value of the spec's metric over the run's
epochs in the spec's direction (the epoch a ``checkpoint.monitor`` on that metric would pick);
the test split is never looked at. Every epoch the metric is reported to the study's pruner
through :class:`~pfdtrain.sweep.pruning.OptunaPruningCallback`.

Several workers (processes on one machine sharing the default journal file, or machines
sharing an RDB URL) run one study: a worker starts a new trial only while the finished
(complete + pruned) and running trials are fewer than the requested count, so ``--trials N``
means N finished trials in all, however many workers run, none run twice. A worker killed
mid-trial leaves its trial RUNNING; the next worker to look marks it FAILED
(:mod:`pfdtrain.sweep.storage`) and the study goes on without counting it.

Example:
    >>> summary = run_sweep(Path("recipes/sweep-example.yaml"), trials=4)   # doctest: +SKIP
    >>> summary["best"]["params"]                                            # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

from pfdtrain.errors import PfdtrainError
from pfdtrain.sweep.pruning import OptunaPruningCallback
from pfdtrain.sweep.spec import PRUNERS, SAMPLERS, SweepError, SweepSpec, load_spec
from pfdtrain.sweep.storage import (Heartbeat, WorkerLock, fail_dead_trials, is_rdb_url,
                                    journal_path, open_storage)
from pfdtrain.sweep.summary import summarise

# Seconds a worker with nothing to start waits before looking again (the other workers'
# trials finish, or fail and leave room for another).
POLL_SECONDS = 1.0
# A worker gives up after this many failed trials in a row: something is wrong with every
# configuration, not with one.
MAX_CONSECUTIVE_FAILURES = 3
SPEC_ATTR = "pfdtrain_spec"


def trial_value(history: dict[str, list[float]], metric: str, direction: str) -> float:
    """The best value of ``metric`` over the run's epochs (NaN epochs ignored)."""
    values = [float(v) for v in history.get(metric, []) if v == v]
    if not values:
        return math.nan
    return max(values) if direction == "maximize" else min(values)


def _load_study(spec: SweepSpec, storage: Any, name: str, create: bool) -> Any:
    import optuna

    if create:
        study = optuna.create_study(storage=storage, study_name=name,
                                    direction=spec.direction, load_if_exists=True,
                                    pruner=spec.make_pruner(), sampler=spec.make_sampler())
    else:
        try:
            study = optuna.load_study(study_name=name, storage=storage,
                                      pruner=spec.make_pruner(), sampler=spec.make_sampler())
        except KeyError:
            names = optuna.get_all_study_names(storage)
            raise SweepError(f"no study named {name!r} in this storage (it holds "
                             f"{', '.join(names) or 'no study'}); pass --study NAME of an "
                             f"existing one, or run the sweep first") from None
    wanted = spec.direction.upper()
    if study.direction.name != wanted:
        raise SweepError(f"study {name!r} {study.direction.name.lower()}s its value but the spec "
                         f"says direction: {spec.direction}; use --study with a new name, or "
                         f"the direction the study was created with")
    recorded = study.user_attrs.get(SPEC_ATTR)
    mine = spec.identity()
    if recorded is None and create:
        study.set_user_attr(SPEC_ATTR, mine)
    elif recorded is not None and recorded != mine:
        changed = [k for k in mine if recorded.get(k) != mine[k]]
        raise SweepError(f"study {name!r} was created with another {' and '.join(changed)} "
                         f"than this spec has; its trials are not comparable with new ones. "
                         f"Use --study NEW_NAME (or another --out) for the changed spec, or "
                         f"restore the spec it was run with")
    return study


def _run_trial(study: Any, spec: SweepSpec, out: Path, worker: WorkerLock,
               echo: Callable[[str], Any], target: int) -> str:
    """Ask, train and tell one trial; its final state's name."""
    from optuna.trial import TrialState

    from pfdtrain.pipeline import run_training

    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize: this loop runs them itself
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trial = study.ask()
    trial.set_user_attr("worker", worker.record())
    # A fresh sampler per trial, seeded from the trial number (see SweepSpec.make_sampler).
    study.sampler = spec.make_sampler(trial.number)
    run_dir = out / "runs" / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    if (run_dir / "config.yaml").exists():
        # Trial numbers restart with a new study: this folder is another study's trial.
        study.tell(trial, state=TrialState.FAIL)
        raise SweepError(f"{run_dir} already holds a run, but trial {trial.number} of study "
                         f"{study.study_name!r} is new: the folder belongs to another study "
                         f"(was its study.journal removed, or --storage/--study changed?). Use "
                         f"another --out, or move {out / 'runs'} away")
    started = time.perf_counter()
    pruning = OptunaPruningCallback(trial, spec.metric)
    try:
        params = {key: param.suggest(trial) for key, param in spec.space.items()}
        config = spec.config_for(params, name=run_dir.name, output_dir=str(run_dir.parent))
        with Heartbeat(study, trial):
            result = run_training(config, progress_bar=False, quiet=True,
                                  extra_callbacks=[pruning])
    except SweepError:
        study.tell(trial, state=TrialState.FAIL)
        raise
    except PfdtrainError as exc:
        # This configuration cannot train (e.g. a combination the config refuses): the
        # trial fails with the reason and the study goes on with others.
        trial.set_user_attr("failure", str(exc)[:1000])
        study.tell(trial, state=TrialState.FAIL)
        echo(f"trial {trial.number} failed: {exc}")
        return "FAIL"
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)  # Ctrl-C or a bug: recorded, then raised
        raise
    value = trial_value(result.history, spec.metric, spec.direction)
    seconds = time.perf_counter() - started
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in params.items())
    if pruning.pruned_epoch is not None:
        study.tell(trial, state=TrialState.PRUNED)
        what = f"pruned after epoch {pruning.pruned_epoch + 1}"
        state = "PRUNED"
    elif math.isnan(value):
        trial.set_user_attr("failure", f"{spec.metric} was NaN in every epoch")
        study.tell(trial, state=TrialState.FAIL)
        what, state = f"failed: {spec.metric} was NaN in every epoch", "FAIL"
    else:
        study.tell(trial, value)
        what, state = "complete", "COMPLETE"
    finished = len(study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED)))
    echo(f"[{finished}/{target}] trial {trial.number} {what}: best {spec.metric} "
         f"{value:.4f} ({shown}) in {seconds:.0f} s; {run_dir}")
    return state


def run_sweep(spec_path: Path, *, trials: Optional[int] = None, storage: Optional[str] = None,
              study_name: Optional[str] = None, out: Optional[Path] = None,
              summary_only: bool = False, echo: Callable[[str], Any] = print) -> dict:
    """Run (or join, or continue) the sweep of ``spec_path``; its summary.

    Args:
        spec_path: the spec YAML file.
        trials: finished trials wanted in the study, over all workers (default: the spec's).
        storage: an Optuna RDB URL or a journal file (default ``<out>/study.journal``).
        study_name: the study (default: the spec file's name without ``.yaml``).
        out: the sweep's folder for run folders, ``best.yaml`` and the default journal
            (default ``sweeps/<study>``).
        summary_only: train nothing; write ``best.yaml`` and print the table.
        echo: where progress lines go.

    Returns:
        What :func:`~pfdtrain.sweep.summary.summarise` wrote to ``summary.json``.

    Raises:
        SweepError: a bad spec, storage or study, or a metric the runs do not log.
    """
    import optuna
    from optuna.trial import TrialState

    spec = load_spec(Path(spec_path))
    name = study_name or Path(spec_path).name.rsplit(".", 1)[0]
    out = Path(out) if out is not None else Path("sweeps") / name
    target = int(trials if trials is not None else spec.trials)
    if target < 1:
        raise SweepError(f"--trials must be >= 1, got {target}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    backend = open_storage(storage, out, create=not summary_only)
    study = _load_study(spec, backend, name, create=not summary_only)
    if summary_only:
        return summarise(study, spec, out, echo)
    where = storage if is_rdb_url(storage) else journal_path(storage, out)
    echo(f"sweep {name}: {target} trials of {spec.metric} ({spec.direction}), pruner "
         f"{spec.pruner[0]}, sampler {spec.sampler[0]}; study in {where}, runs in {out / 'runs'}")
    failures = 0
    with WorkerLock(out / "workers") as worker:
        while True:
            for number in fail_dead_trials(study, worker):
                echo(f"trial {number} marked failed: its worker ended mid-trial; the study "
                     f"goes on without it")
            counts = {s: len(study.get_trials(deepcopy=False, states=(s,)))
                      for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)}
            finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
            if finished >= target:
                break
            if finished + counts[TrialState.RUNNING] >= target:
                time.sleep(POLL_SECONDS)  # the last trials run elsewhere; one may yet fail
                continue
            state = _run_trial(study, spec, out, worker, echo, target)
            failures = failures + 1 if state == "FAIL" else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise SweepError(f"{failures} trials in a row failed (reasons in the table of "
                                 f"`pfdtrain sweep {spec_path} --summary` and each run's "
                                 f"train.log); fix the spec's space or base config")
    return summarise(study, spec, out, echo)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pfdtrain.utils.logging import setup_logging

    setup_logging(level="WARNING")
    run_sweep(Path(args.spec), trials=args.trials, storage=args.storage, study_name=args.study,
              out=Path(args.out) if args.out else None, summary_only=args.summary)
    return 0


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``pfdtrain sweep`` (pruners and samplers listed from their registries)."""
    p = subparsers.add_parser(
        "sweep", help="hyperparameter search (Optuna): trials are ordinary run folders",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Search the spec's space over any config key; each trial is a run folder under "
            "<out>/runs. Start the same command in several processes or on several machines "
            "(--storage URL) to share one study. Trial value: the best value of the spec's "
            "metric over the run's epochs.", width=88) + "\n\npruners:\n"
                    + "\n".join(f"  {k:<20} {v.what}" for k, v in PRUNERS.items())
                    + "\n\nsamplers:\n"
                    + "\n".join(f"  {k:<20} {v.what}" for k, v in SAMPLERS.items()))
    p.add_argument("spec", help="the sweep spec YAML (base config, space, metric, pruner)")
    p.add_argument("--trials", type=int, help="finished trials wanted in the study, over all "
                   "workers (default: the spec's trials:)")
    p.add_argument("--storage", help="Optuna RDB URL (postgresql://USER:PW@HOST/DB, "
                   "sqlite:///FILE) or a journal file (default: <out>/study.journal)")
    p.add_argument("--study", help="study name (default: the spec file's name)")
    p.add_argument("--out", help="folder of the trials' run folders, best.yaml and the default "
                   "journal (default: sweeps/<study>)")
    p.add_argument("--summary", action="store_true",
                   help="train nothing: write best.yaml, print the trials and importances")
    p.set_defaults(func=_cmd_sweep)
    return p


__all__ = ["run_sweep", "add_sweep_parser", "trial_value"]
