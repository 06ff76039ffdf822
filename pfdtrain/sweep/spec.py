"""The sweep spec: base config, search space, metric, pruner and sampler, checked up front.

Every key of the search space is validated before any trial runs: it must name a config
key (the did-you-mean hint of ``--set`` applies), its range must not be empty, and its
bounds or choices must be values that key accepts (each is applied to the base config the
way ``--set`` would apply it).

Example:
    >>> spec = load_spec(Path("recipes/sweep-example.yaml"))
    >>> spec.config_for({"optimizer.lr": 3e-3}).optimizer.lr
    0.003
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from pfdtrain.config.training_config import ConfigError, TrainingConfig, apply_overrides
from pfdtrain.errors import PfdtrainError
from pfdtrain.utils.naming import did_you_mean


class SweepError(PfdtrainError):
    """A sweep cannot run as asked (spec, storage or study); the message names the fix."""


def _median(**kwargs: Any) -> Any:
    import optuna
    return optuna.pruners.MedianPruner(**kwargs)


def _successive_halving(**kwargs: Any) -> Any:
    import optuna
    return optuna.pruners.SuccessiveHalvingPruner(**kwargs)


def _no_pruner(**kwargs: Any) -> Any:
    import optuna
    return optuna.pruners.NopPruner(**kwargs)


def _tpe(**kwargs: Any) -> Any:
    import optuna
    return optuna.samplers.TPESampler(**kwargs)


def _random(**kwargs: Any) -> Any:
    import optuna
    return optuna.samplers.RandomSampler(**kwargs)


@dataclass(frozen=True)
class Choice:
    """A registry entry of :data:`PRUNERS` or :data:`SAMPLERS`.

    Args:
        build: makes the Optuna object from the spec's options.
        what: one line for the help, the README table and errors.
        options: the option names the spec may give (others are refused by name).

    Example:
        >>> PRUNERS["median"].build(n_startup_trials=2)
    """

    build: Callable[..., Any]
    what: str
    options: tuple[str, ...]


#: ``pruner:`` names (a name, or a mapping ``{name: ..., <option>: ...}``).
PRUNERS: dict[str, Choice] = {
    "median": Choice(_median, "stop a trial whose best value so far is worse than the median "
                     "of the finished trials at the same epoch",
                     ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials")),
    "successive_halving": Choice(_successive_halving, "asynchronous successive halving: keep "
                                 "the best 1/reduction_factor of the trials at each rung",
                                 ("min_resource", "reduction_factor",
                                  "min_early_stopping_rate", "bootstrap_count")),
    "none": Choice(_no_pruner, "no pruning: every trial trains all its epochs", ()),
}

#: ``sampler:`` names (a name, or a mapping ``{name: ..., seed: N, <option>: ...}``).
SAMPLERS: dict[str, Choice] = {
    "tpe": Choice(_tpe, "Tree-structured Parzen Estimator (random for its first "
                  "n_startup_trials)", ("seed", "n_startup_trials", "multivariate",
                                        "constant_liar")),
    "random": Choice(_random, "independent uniform (or log-uniform) draws", ("seed",)),
}

PARAM_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
SPEC_KEYS = ("base", "config", "set", "metric", "direction", "pruner", "sampler", "trials",
             "space")
# The sweep itself decides where each trial's run folder goes.
RESERVED_KEYS = ("name", "output_dir")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space.

    Args:
        key: the dotted config key, e.g. ``optimizer.lr``.
        type: ``float``, ``int`` or ``categorical``.
        low: lower bound (float, int).
        high: upper bound, inclusive (float, int).
        log: sample on a log scale (float, int).
        step: grid step (float, int).
        choices: the values (categorical).

    Example:
        >>> Param("optimizer.lr", "float", low=1e-4, high=1e-2, log=True).suggest(trial)
    """

    key: str
    type: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple = ()

    def suggest(self, trial: Any) -> Any:
        """The trial's value of this key (Optuna records it under the config key)."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    def describe(self) -> dict:
        """The dimension as a plain dict (the study records it, to refuse a changed space)."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        return {"type": self.type, "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}


@dataclass
class SweepSpec:
    """A parsed, validated sweep spec (see :func:`load_spec`).

    Args:
        base: the base config with ``set`` applied (what every trial starts from).
        space: the search space, by config key.
        metric: the history key a trial is scored by.
        direction: ``maximize`` or ``minimize``.
        pruner: a :data:`PRUNERS` name and its options.
        sampler: a :data:`SAMPLERS` name and its options (``seed`` included).
        trials: the default number of finished trials.
        path: the spec file.

    Example:
        >>> spec = load_spec(Path("recipes/sweep-example.yaml"))
        >>> spec.metric, spec.direction
        ('val_acc', 'maximize')
    """

    base: TrainingConfig
    space: dict[str, Param]
    metric: str = "val_acc"
    direction: str = "maximize"
    pruner: tuple[str, dict] = ("median", {})
    sampler: tuple[str, dict] = ("tpe", {})
    trials: int = 20
    path: Optional[Path] = None
    where: str = field(default="the sweep spec")

    def config_for(self, params: dict[str, Any], **fixed: Any) -> TrainingConfig:
        """The base config with ``params`` (config key → value) and ``fixed`` top-level keys
        (e.g. ``name``, ``output_dir``) applied and validated."""
        overrides = [f"{key}={json.dumps(value)}" for key, value in params.items()]
        overrides += [f"{key}={json.dumps(value)}" for key, value in fixed.items()]
        return apply_overrides(self.base, overrides)

    def make_pruner(self) -> Any:
        """The study's pruner: the :data:`PRUNERS` entry the spec names, built with its
        options (a new object each call)."""
        name, options = self.pruner
        return PRUNERS[name].build(**options)

    def make_sampler(self, trial_number: int = 0) -> Any:
        """The sampler for trial ``trial_number``: a ``seed`` is offset by the trial number, so
        a trial's random draws do not depend on which worker runs it, and the random
        sampler's trials never draw the same values from the same seed (TPE's draws after its
        startup trials also depend on the trials finished so far)."""
        name, options = self.sampler
        options = dict(options)
        if options.get("seed") is not None:
            options["seed"] = int(options["seed"]) + int(trial_number)
        return SAMPLERS[name].build(**options)

    def identity(self) -> dict:
        """What a study holds fixed: the space, the metric, the direction and the config every
        trial starts from (a hash of the base config with ``set:`` applied, less ``name`` and
        ``output_dir``, which the sweep sets per trial)."""
        return {"space": {k: p.describe() for k, p in self.space.items()},
                "metric": self.metric, "direction": self.direction,
                "config": self.config_hash()}

    def config_hash(self) -> str:
        """A hash of the resolved base config (``set:`` applied), ``name``/``output_dir`` left
        out: a changed ``base:``, ``config:`` or ``set:`` changes it."""
        data = {k: v for k, v in self.base.to_dict().items() if k not in RESERVED_KEYS}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- parsing
def _fail(where: str, problem: str) -> SweepError:
    return SweepError(f"{where}: {problem}")


def _named_choice(value: Any, registry: dict[str, Choice], what: str, where: str
                  ) -> tuple[str, dict]:
    if value is None:
        return next(iter(registry)), {}
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, dict):
        options = dict(value)
        name = options.pop("name", next(iter(registry)))
    else:
        raise _fail(where, f"{what} must be a name or a mapping with a 'name', got {value!r}")
    if name not in registry:
        raise _fail(where, f"unknown {what} {name!r}; choose from {', '.join(registry)}."
                    f"{did_you_mean(str(name), registry)}")
    for option in options:
        if option not in registry[name].options:
            accepted = ", ".join(registry[name].options) or "none"
            raise _fail(where, f"{what} {name!r} takes no option {option!r}; its options: "
                        f"{accepted}.{did_you_mean(str(option), registry[name].options)}")
    try:
        registry[name].build(**options)  # the library's own checks of the option values
    except (TypeError, ValueError) as exc:
        raise _fail(where, f"{what} {name!r} options {options}: {exc}") from None
    return name, options


def _number(value: Any, where: str, what: str, integer: bool) -> Any:
    if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, f"{what} must be a finite number, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise _fail(where, f"{what} must be a whole number for type int, got {value!r}; "
                        f"use type: float for a real-valued key")
        return int(value)
    return float(value)


def _parse_param(key: str, raw: Any, base: TrainingConfig, where: str) -> Param:
    at = f"{where}: space: {key!r}"
    if not isinstance(raw, dict):
        raise SweepError(f"{at} must be a mapping like {{type: float, low: 1.0e-4, high: "
                         f"1.0e-2, log: true}} or {{type: categorical, choices: [32, 64]}}, "
                         f"got {raw!r}")
    if key.split(".")[0] in RESERVED_KEYS:
        raise SweepError(f"{at}: the sweep sets {key} itself (each trial is "
                         f"<out>/runs/trial-NNNN); remove it from the space")
    kind = raw.get("type", "categorical" if "choices" in raw else None)
    if kind not in PARAM_TYPES:
        raise SweepError(f"{at}: type {kind!r} is not a search-space type; use one of "
                         f"{', '.join(PARAM_TYPES)}.{did_you_mean(str(kind), PARAM_TYPES)}")
    allowed = ("type", "choices") if kind == "categorical" else ("type", "low", "high", "log",
                                                                 "step")
    for option in raw:
        if option not in allowed:
            raise SweepError(f"{at}: a {kind} dimension takes {', '.join(allowed)}, not "
                             f"{option!r}.{did_you_mean(str(option), allowed)}")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepError(f"{at}: empty choices; list the values to try, e.g. choices: "
                             f"[32, 64]")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise SweepError(f"{at}: choice {choice!r} is not a single value (Optuna "
                                 f"records numbers, strings, booleans or null); sweep each "
                                 f"item of a list as its own key instead")
        if len(set(map(repr, choices))) != len(choices):
            raise SweepError(f"{at}: choices {choices} repeat a value; list each value once")
        param = Param(key, kind, choices=tuple(choices))
        probe = list(choices)
    else:
        integer = kind == "int"
        for needed in ("low", "high"):
            if needed not in raw:
                raise SweepError(f"{at}: a {kind} dimension needs low and high, e.g. "
                                 f"{{type: {kind}, low: 1, high: 10}}")
        low = _number(raw["low"], at, "low", integer)
        high = _number(raw["high"], at, "high", integer)
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise SweepError(f"{at}: log must be true or false, got {log!r}")
        step = raw.get("step")
        if step is not None:
            step = _number(step, at, "step", integer)
            if step <= 0:
                raise SweepError(f"{at}: step must be > 0, got {step!r}")
            if log and (not integer or step != 1):
                raise SweepError(f"{at}: log and step cannot be combined; drop one of them")
        if low >= high:
            raise SweepError(f"{at}: empty range low={low!r} >= high={high!r}; give low < high "
                             f"(or fix the key with `set:` instead of sweeping it)")
        if log and low <= 0:
            raise SweepError(f"{at}: a log range needs low > 0, got low={low!r}; use e.g. "
                             f"low: 1.0e-5, or log: false")
        param = Param(key, kind, low=low, high=high, log=log, step=step)
        probe = [low, high]
    # Apply the values the way `--set` would: an unknown key gets the did-you-mean hint, a
    # value the key does not accept (wrong type, out of its allowed range) is named here.
    for value in probe:
        try:
            config = apply_overrides(base, [f"{key}={json.dumps(value)}"])
        except ConfigError as exc:
            raise SweepError(f"{at}: {exc}. Fix the key or its values in the space") from None
        if not _is_leaf(config.to_dict(), key):
            raise SweepError(f"{at}: {key} is a config section, not a single key; sweep one "
                             f"of its keys, e.g. {key}.<key>")
    return param


def _check_model_params(space: dict[str, Param], base: TrainingConfig, where: str) -> None:
    """``model.params.X`` is free-form in the config: check X against the model's constructor
    now, not after three failed trials (skipped when ``model.name`` itself is swept)."""
    if "model.name" in space:
        return
    from pfdtrain.models import get_model_class
    from pfdtrain.utils.naming import keyword_parameters

    accepted = [p for p in keyword_parameters(get_model_class(base.model.name))
                if p not in ("num_classes", "in_channels", "dropout")]
    for key in space:
        parts = key.split(".")
        if parts[:2] == ["model", "params"] and len(parts) == 3 and parts[2] not in accepted:
            raise SweepError(f"{where}: space: {key!r}: model {base.model.name!r} takes no "
                             f"parameter {parts[2]!r}; its parameters: {', '.join(accepted)}."
                             f"{did_you_mean(parts[2], accepted)}")


def _is_leaf(data: dict, key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return not isinstance(node, dict)


def _base_config(raw: dict, spec_dir: Path, where: str) -> TrainingConfig:
    if "base" in raw and "config" in raw:
        raise SweepError(f"{where}: give either base: (a config file) or config: (a mapping), "
                         f"not both")
    if raw.get("base") is not None:
        path = Path(str(raw["base"]))
        path = path if path.is_absolute() else spec_dir / path
        if not path.is_file():
            raise SweepError(f"{where}: base config {path} not found (base: is relative to the "
                             f"spec file's folder); fix the path or write one with "
                             f"`pfdtrain config > {path.name}`")
        try:
            config = TrainingConfig.from_yaml(path)
        except ConfigError as exc:
            raise SweepError(f"{where}: base config {path}: {exc}") from None
    elif raw.get("config") is not None:
        if not isinstance(raw["config"], dict):
            raise SweepError(f"{where}: config: must be a mapping of config keys")
        try:
            config = TrainingConfig.from_dict(raw["config"])
        except ConfigError as exc:
            raise SweepError(f"{where}: config: {exc}") from None
    else:
        config = TrainingConfig()
    fixed = raw.get("set") or {}
    if not isinstance(fixed, dict):
        raise SweepError(f"{where}: set: must be a mapping of config keys to values, e.g. "
                         f"{{num_epochs: 8, optimizer.weight_decay: 0.0}}")
    try:
        return apply_overrides(config, [f"{k}={json.dumps(v)}" for k, v in fixed.items()])
    except ConfigError as exc:
        raise SweepError(f"{where}: set: {exc}") from None


def parse_spec(raw: Any, spec_dir: Path = Path("."), where: str = "the sweep spec",
               path: Optional[Path] = None) -> SweepSpec:
    """Validate a spec mapping (see the README's "Hyperparameter sweeps").

    Args:
        raw: the spec as read from YAML.
        spec_dir: the folder ``base:`` is relative to.
        where: how errors name the spec (its file).
        path: the spec file, when there is one.

    Raises:
        SweepError: the first problem, naming it and the fix.
    """
    if not isinstance(raw, dict):
        raise SweepError(f"{where} must be a mapping with at least a space:, got {raw!r}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise SweepError(f"{where}: unknown spec key {key!r}; spec keys: "
                             f"{', '.join(SPEC_KEYS)}.{did_you_mean(str(key), SPEC_KEYS)}")
    base = _base_config(raw, spec_dir, where)
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise SweepError(f"{where}: space: is missing or empty; name at least one config key, "
                         f"e.g. space: {{optimizer.lr: {{type: float, low: 1.0e-4, high: "
                         f"1.0e-2, log: true}}}}")
    space = {str(k): _parse_param(str(k), v, base, where) for k, v in space_raw.items()}
    _check_model_params(space, base, where)
    metric = raw.get("metric", "val_acc")
    if not isinstance(metric, str) or not metric:
        raise SweepError(f"{where}: metric must be a history key such as val_acc, got "
                         f"{metric!r}")
    if metric.startswith("test_"):
        raise SweepError(f"{where}: metric {metric!r} would select on the test split, which is "
                         f"evaluated once after training and never for selection; use a val_* "
                         f"key such as val_acc or val_loss")
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise SweepError(f"{where}: direction {direction!r} is not one of "
                         f"{', '.join(DIRECTIONS)}.{did_you_mean(str(direction), DIRECTIONS)}")
    if metric.endswith("_loss") and direction == "maximize":
        raise SweepError(f"{where}: metric {metric} is a loss but direction is maximize (the "
                         f"default); set direction: minimize")
    trials = raw.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SweepError(f"{where}: trials must be a whole number >= 1, got {trials!r}")
    return SweepSpec(base=base, space=space, metric=metric, direction=direction,
                     pruner=_named_choice(raw.get("pruner"), PRUNERS, "pruner", where),
                     sampler=_named_choice(raw.get("sampler"), SAMPLERS, "sampler", where),
                     trials=trials, path=path, where=where)


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a spec file.

    Raises:
        SweepError: a missing or unreadable file, or the first problem in it.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep spec {path} not found; give the path of a spec YAML file "
                         f"(e.g. recipes/sweep-example.yaml)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep spec {path} is not valid YAML: {exc}") from None
    return parse_spec(raw, spec_dir=path.parent, where=str(path), path=path)


def registries_markdown() -> str:
    """The README's table of ``pruner:`` and ``sampler:`` names, from :data:`PRUNERS` and
    :data:`SAMPLERS`.

    Example:
        >>> print(registries_markdown().splitlines()[0])
        | spec key | name | what | options |
    """
    lines = ["| spec key | name | what | options |", "| --- | --- | --- | --- |"]
    for key, registry in (("pruner", PRUNERS), ("sampler", SAMPLERS)):
        for name, choice in registry.items():
            options = ", ".join(f"`{o}`" for o in choice.options) or "—"
            lines.append(f"| `{key}:` | `{name}` | {choice.what} | {options} |")
    return "\n".join(lines)
