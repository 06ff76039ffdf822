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
(complete + pruned) and running trials are fewer than the requested count, and a trial it
asks for is run only when fewer than N complete, pruned or running trials have lower numbers
(:func:`admitted`: two workers that start together cannot both take the last place), so
``--trials N`` means N finished trials in all, however many workers run, none run twice.
A worker killed
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
from pfdtrain.sweep.storage import (Heartbeat, WorkerLock, fail_dead_trials, hide_password,
                                    is_rdb_url, journal_path, open_storage)
from pfdtrain.sweep.summary import summarise

# Seconds a worker with nothing to start waits before looking again (the other workers'
# trials finish, or fail and leave room for another).
POLL_SECONDS = 1.0
# A worker gives up after this many failed trials in a row: something is wrong with every
# configuration, not with one.
MAX_CONSECUTIVE_FAILURES = 3
SPEC_ATTR = "pfdtrain_spec"
# How the error for a changed spec names the keys of SweepSpec.identity()
IDENTITY_NAMES = {"config": "base config (base:/config: with set:)"}


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
    elif recorded is not None and any(recorded[k] != mine[k] for k in mine if k in recorded):
        # (a study recorded before a key was added is checked on the keys it has)
        changed = [IDENTITY_NAMES.get(k, k) for k in mine
                   if k in recorded and recorded[k] != mine[k]]
        raise SweepError(f"study {name!r} was created with another {' and '.join(changed)} "
                         f"than this spec has; its trials are not comparable with new ones. "
                         f"Use --study NEW_NAME (or another --out) for the changed spec, or "
                         f"restore the spec it was run with")
    return study


def admitted(study: Any, number: int, target: int) -> bool:
    """Whether trial ``number``, just asked, fits in the study's ``target`` trials.

    Workers check the counts before ``ask()``, but two that check together both see room
    for one more. The storage numbers trials one at a time, so the trial with the lower
    number wins: this one is admitted when fewer than ``target`` trials with lower numbers
    are complete, pruned or running.
    """
    from optuna.trial import TrialState

    ahead = [t for t in study.get_trials(deepcopy=False, states=(
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)) if t.number < number]
    return len(ahead) < target


def _run_trial(study: Any, storage: Any, spec: SweepSpec, out: Path, worker: WorkerLock,
               echo: Callable[[str], Any], target: int) -> str:
    """Ask, train and tell one trial; its final state's name (``SURPLUS``: a trial beyond
    ``target`` that was ended unrun; ``ENDED``: another worker ended it while it ran)."""
    import optuna

    from pfdtrain.pipeline import run_training

    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize: this loop runs them itself
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trial = study.ask()
    # Beat from the start: Optuna's stale-trial check skips trials that never beat.
    with Heartbeat(storage, study, trial):
        try:
            return _train_trial(study, trial, spec, out, worker, echo, target, run_training)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker marked it failed (it took this worker for dead): the study
            # already goes on without it.
            echo(f"trial {trial.number} was ended by another worker while it ran; it is not "
                 f"counted, going on")
            return "ENDED"


def _train_trial(study: Any, trial: Any, spec: SweepSpec, out: Path, worker: WorkerLock,
                 echo: Callable[[str], Any], target: int, run_training: Callable) -> str:
    from optuna.trial import TrialState

    trial.set_user_attr("worker", worker.record())
    if not admitted(study, trial.number, target):
        # Another worker started the last trial at the same moment: end this one unrun. It
        # is no failure (not counted, not in the table) and gets no run folder.
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        return "SURPLUS"
    # A fresh sampler per trial, seeded from the trial number (see SweepSpec.make_sampler).
    # Swapping it after ask() still applies to this trial: Optuna samples lazily, when
    # suggest_* asks for a value, not in ask().
    study.sampler = spec.make_sampler(trial.number)
    run_dir = out / "runs" / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    if (run_dir / "config.yaml").exists():
        # Trial numbers restart with a new study: this folder is another study's trial.
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise _foreign_runs(run_dir, trial.number, study.study_name, out)
    started = time.perf_counter()
    pruning = OptunaPruningCallback(trial, spec.metric)
    try:
        params = {key: param.suggest(trial) for key, param in spec.space.items()}
        config = spec.config_for(params, name=run_dir.name, output_dir=str(run_dir.parent))
        result = run_training(config, progress_bar=False, quiet=True, extra_callbacks=[pruning])
    except SweepError:
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    except PfdtrainError as exc:
        # This configuration cannot train (e.g. a combination the config refuses): the
        # trial fails with the reason and the study goes on with others.
        trial.set_user_attr("failure", str(exc)[:1000])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        echo(f"trial {trial.number} failed: {exc}")
        return "FAIL"
    except BaseException as exc:
        if not _ended_elsewhere(exc):
            # Ctrl-C or a bug: recorded, then raised
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    value = trial_value(result.history, spec.metric, spec.direction)
    seconds = time.perf_counter() - started
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in params.items())
    if pruning.pruned_epoch is not None:
        trial.set_user_attr("pruned_after_epoch", pruning.pruned_epoch + 1)
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        what = f"pruned after epoch {pruning.pruned_epoch + 1}"
        state = "PRUNED"
    elif math.isnan(value):
        trial.set_user_attr("failure", f"{spec.metric} was NaN in every epoch")
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        what, state = f"failed: {spec.metric} was NaN in every epoch", "FAIL"
    else:
        study.tell(trial, value, skip_if_finished=True)
        what, state = "complete", "COMPLETE"
    finished = len(study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED)))
    echo(f"[{finished}/{target}] trial {trial.number} {what}: best {spec.metric} "
         f"{value:.4f} ({shown}) in {seconds:.0f} s; {run_dir}")
    return state


def _ended_elsewhere(exc: BaseException) -> bool:
    import optuna
    return isinstance(exc, optuna.exceptions.UpdateFinishedTrialError)


def _foreign_runs(run_dir: Path, number: int, study_name: str, out: Path) -> SweepError:
    return SweepError(f"{run_dir} already holds a run, but trial {number} of study "
                      f"{study_name!r} is new: the folder belongs to another study (was its "
                      f"study.journal removed, or --storage/--study changed?). Use another "
                      f"--out, or move {out / 'runs'} away")


def _storage_errors() -> tuple[type, ...]:
    """The exceptions a storage raises when it fails mid-sweep (connection lost, locked)."""
    import optuna

    errors: list[type] = [optuna.exceptions.StorageInternalError]
    try:
        from sqlalchemy.exc import OperationalError
        errors.append(OperationalError)
    except ImportError:  # pragma: no cover - Optuna depends on SQLAlchemy
        pass
    return tuple(errors)


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

    spec = load_spec(Path(spec_path))
    name = study_name or Path(spec_path).name.rsplit(".", 1)[0]
    out = Path(out) if out is not None else Path("sweeps") / name
    target = int(trials if trials is not None else spec.trials)
    if target < 1:
        raise SweepError(f"--trials must be >= 1, got {target}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    backend = open_storage(storage, out, create=not summary_only)
    try:
        return _sweep(spec, spec_path, backend, name, out, target, storage, summary_only, echo)
    except _storage_errors() as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        where = storage if is_rdb_url(storage) else journal_path(storage, out)
        raise SweepError(f"the study's storage {_shown(where)} failed mid-sweep "
                         f"({type(exc).__name__}: {reason}); the finished trials are kept: "
                         f"rerun the same command to continue") from None


def _shown(where: Any) -> str:
    return hide_password(str(where))


def _sweep(spec: SweepSpec, spec_path: Path, backend: Any, name: str, out: Path, target: int,
           storage: Optional[str], summary_only: bool, echo: Callable[[str], Any]) -> dict:
    from optuna.trial import TrialState

    study = _load_study(spec, backend, name, create=not summary_only)
    if summary_only:
        return summarise(study, spec, out, echo)
    if not study.get_trials(deepcopy=False) and (out / "runs" / "trial-0000" / "config.yaml"
                                                 ).exists():
        # A new study would number its first trial 0: refused before it creates one.
        raise _foreign_runs(out / "runs" / "trial-0000", 0, name, out)
    where = storage if is_rdb_url(storage) else journal_path(storage, out)
    echo(f"sweep {name}: {target} trials of {spec.metric} ({spec.direction}), pruner "
         f"{spec.pruner[0]}, sampler {spec.sampler[0]}; study in {_shown(where)}, runs in "
         f"{out / 'runs'}")
    failures = 0
    with WorkerLock(out / "workers") as worker:
        while True:
            for number in fail_dead_trials(study, backend, worker):
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
            state = _run_trial(study, backend, spec, out, worker, echo, target)
            if state == "SURPLUS":
                time.sleep(POLL_SECONDS)  # another worker took the last place
                continue
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
