"""A study's results: the best config as YAML, the table of trials, parameter importances.

Example:
    >>> summary = summarise(study, spec, Path("sweeps/lr"))
    >>> TrainingConfig.from_yaml(summary["best_config"])     # what `pfdtrain train` takes
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable

from pfdtrain.config.training_config import ConfigError, TrainingConfig, apply_overrides
from pfdtrain.sweep.spec import SweepSpec
from pfdtrain.utils.io import atomic_open, write_json

BEST_FILE = "best.yaml"
SUMMARY_FILE = "summary.json"
# PED-ANOVA compares the best trials with the rest: fewer finished trials than this give
# importances that mean nothing, so the summary says so instead.
MIN_TRIALS_FOR_IMPORTANCE = 4


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def is_surplus(trial: Any) -> bool:
    """Whether ``trial`` was ended unrun because the study already had its trials (two
    workers started the last one together, see :func:`~pfdtrain.sweep.runner.admitted`)."""
    return bool(trial.user_attrs.get("surplus"))


def trial_rows(study: Any) -> list[dict]:
    """One dict per trial that ran: number, state, value, params, run folder, why it failed
    (surplus trials, ended unrun, are left out)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if is_surplus(t):
            continue
        value = t.value if t.values else None
        if t.state.name == "PRUNED" and t.intermediate_values:
            # the trial value's own rule (best over its epochs), as the progress line says;
            # Optuna gives a pruned trial its last reported value, not the best
            best = max if study.direction.name == "MAXIMIZE" else min
            value = best(t.intermediate_values.values())
        rows.append({"number": t.number, "state": t.state.name, "value": value,
                     "epochs": len(t.intermediate_values), "params": dict(t.params),
                     "run_dir": t.user_attrs.get("run_dir"),
                     "failure": t.user_attrs.get("failure")})
    return rows


def table(rows: list[dict], metric: str) -> str:
    """The trials as an aligned text table."""
    head = ["#", "state", metric, "epochs", "params", "run folder"]
    body = [[str(r["number"]), r["state"].lower(),
             "" if r["value"] is None else _fmt(r["value"]), str(r["epochs"]),
             " ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()),
             (r["run_dir"] or "") + (f"  ({r['failure']})" if r["failure"] else "")]
            for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1]
                     for line in [head, *body])


def importances(study: Any) -> tuple[dict[str, float], str]:
    """``(param → importance, note)``; the note explains an empty result."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} completed "
                    f"trials (this study has {len(complete)}; pruned and failed trials do not "
                    f"count); run more trials")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # PED-ANOVA: no scikit-learn needed (Optuna's default fANOVA needs it)
            found = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError) as exc:
        return {}, f"parameter importances could not be computed: {exc}"
    return dict(found), ""


def best_config(trial: Any, spec: SweepSpec) -> TrainingConfig:
    """The config trial ``trial`` trained, as a new run's: its run folder's ``config.yaml``
    (what it really ran, whatever the spec says now), else rebuilt from the spec and its
    params; ``name`` and ``output_dir`` are the base config's either way."""
    run_dir = trial.user_attrs.get("run_dir")
    saved = Path(run_dir) / "config.yaml" if run_dir else None
    if saved is not None and saved.is_file():
        try:
            config = TrainingConfig.from_yaml(saved)
        except (ConfigError, OSError):
            config = None
        if config is not None:
            return apply_overrides(config, [f"name={json.dumps(spec.base.name)}",
                                            f"output_dir={json.dumps(spec.base.output_dir)}"])
    return spec.config_for(trial.params)


def summarise(study: Any, spec: SweepSpec, out: Path, echo: Callable[[str], Any] = print
              ) -> dict:
    """Write ``<out>/best.yaml`` and ``<out>/summary.json``; print the table and importances.

    Args:
        study: the ``optuna.Study``.
        spec: the sweep spec (its base config is what ``best.yaml`` starts from).
        out: the sweep's output folder.
        echo: where the lines go.

    Returns:
        The summary written to ``summary.json`` (``best_config`` is the YAML's path, or None
        while no trial has completed).
    """
    from optuna.trial import TrialState

    out = Path(out)
    rows = trial_rows(study)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL",
                                                              "RUNNING")}
    echo(f"study {study.study_name}: {len(rows)} trials ({counts['COMPLETE']} complete, "
         f"{counts['PRUNED']} pruned, {counts['FAIL']} failed, {counts['RUNNING']} running); "
         f"trial value = best {spec.metric} over its epochs ({spec.direction})")
    if rows:
        echo(table(rows, spec.metric))
    best = None
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        trial = study.best_trial
        config = best_config(trial, spec)
        header = (f"# pfdtrain sweep {study.study_name}: best of {counts['COMPLETE']} completed "
                  f"trials, trial {trial.number} ({spec.metric} = {trial.value:.4f}, "
                  f"run folder {trial.user_attrs.get('run_dir')})\n"
                  f"# params: {json.dumps(trial.params)}\n"
                  f"# train it: pfdtrain train --config {out / BEST_FILE}\n")
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / BEST_FILE, "w") as handle:
            handle.write(header + config.to_yaml())
        best = {"number": trial.number, "value": trial.value, "params": trial.params,
                "run_dir": trial.user_attrs.get("run_dir")}
        echo(f"best: trial {trial.number}, {spec.metric} = {trial.value:.4f} "
             f"({', '.join(f'{k}={_fmt(v)}' for k, v in trial.params.items())}); full config "
             f"in {out / BEST_FILE}")
    else:
        echo("best: none yet (no trial has completed), so no best.yaml")
    found, note = importances(study)
    if found:
        echo("parameter importances (PED-ANOVA): "
             + ", ".join(f"{k} {v:.2f}" for k, v in found.items()))
    else:
        echo(note)
    summary = {"study": study.study_name, "metric": spec.metric, "direction": spec.direction,
               "counts": counts, "best": best, "importances": found,
               "importances_note": note or None,
               "best_config": str(out / BEST_FILE) if best else None, "trials": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SUMMARY_FILE, summary)
    return summary
