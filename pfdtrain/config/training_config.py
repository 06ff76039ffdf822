"""The one training configuration: YAML → ``TrainingConfig`` → trainer → checkpoint (guide §6.3).

Every section is a dataclass whose fields carry their own help text and allowed values, so
the same declaration drives validation, the commented ``pfdtrain config`` output and the
README's configuration reference.

Example:
    >>> cfg = TrainingConfig.from_yaml("my.yaml")
    >>> cfg = apply_overrides(cfg, ["optimizer.lr=3e-4", "num_epochs=5"])
    >>> TrainingConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from pfdtrain.data.augment import AUGMENTATIONS
from pfdtrain.data.synthetic_kinds import SYNTHETIC_KINDS
from pfdtrain.data.transforms import TRANSFORMS, TransformError, check_transform_params
from pfdtrain.errors import PfdtrainError
# The name registries: config choices (and so the README table) are derived from them.
from pfdtrain.models import MODEL_REGISTRY
from pfdtrain.training.cnn_losses import LOSS_NAMES
from pfdtrain.training.domain_losses import DOMAIN_LOSSES
from pfdtrain.training.registry import PHYSICS_TERMS, TRAINERS
from pfdtrain.utils.io import atomic_open


class ConfigError(PfdtrainError, ValueError):
    """A configuration key or value is invalid; the message names the field and the fix."""


def _opt(default: Any, help: str, *, choices: Optional[list] = None, min: Optional[float] = None,
         max: Optional[float] = None, pattern: Optional[str] = None) -> Any:
    """Declare a config field with its help text and constraints (kept in ``field.metadata``)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "pattern": pattern}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help})


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

@dataclass
class DataConfig:
    """Where the records come from and how they are cut into windows and batched."""

    source: str = _opt("synthetic", "'synthetic' (the built-in generator) or the path of an HDF5 "
                       "dataset file in pfdtrain's layout")
    cache_dir: str = _opt("data", "folder where generated datasets are stored and reused")
    window_length: int = _opt(6400, "samples per window fed to the model (6400 = 1.0 s at 6.4 kHz)",
                              min=16)
    window_stride: int = _opt(3200, "hop between consecutive windows inside a record", min=1)
    normalization: str = _opt("zscore", "per-window normalisation",
                              choices=["none", "zscore", "minmax", "rms"])
    split: str = _opt("record", "how records are split: record (whole recordings, stratified by "
                      "class), time (each recording cut in time: train, val, test parts) or group "
                      "(hold out metadata values, e.g. loads)", choices=["record", "time", "group"])
    val_fraction: float = _opt(0.15, "fraction of records (record, group) or of each recording's "
                               "duration (time) for validation", min=0.0, max=0.5)
    test_fraction: float = _opt(0.15, "fraction of records (record) or of each recording's "
                                "duration (time) for the test split", min=0.0, max=0.5)
    label_fraction: float = _opt(1.0, "few labels: fraction of the training windows that keep "
                                 "their label (stratified per class, at least one per class, "
                                 "chosen from seed); the rest are unlabeled (-1) and train only "
                                 "label-free terms (physics). Validation and test keep theirs",
                                 min=0.0, max=1.0)
    split_gap: Optional[int] = _opt(None, "time split: samples left out between the parts "
                                    "(default: one window_length)", min=0)
    group_key: str = _opt("load", "group split: the metadata column whose values are held out "
                          "(numbers such as load, or text such as a bearing code)")
    test_groups: list = _opt([], "group split: values of group_key for the test split, e.g. "
                             "[1, 2, 3] or [KA04, KI04]")
    val_groups: list = _opt([], "group split: values of group_key for validation (empty: "
                            "val_fraction of the remaining records, or of each training "
                            "recording's end when there are too few)")
    # Domain adaptation (trainer: domain_adaptation): where the unlabeled target comes from.
    target_groups: list = _opt([], "domain adaptation: values of group_key whose recordings are "
                               "the unlabeled target; they must be held out of train and val "
                               "(e.g. the test_groups)")
    target_source: Optional[str] = _opt(None, "domain adaptation: an HDF5 dataset file whose "
                                        "recordings are the unlabeled target (same class names "
                                        "and sampling rate)")
    batch_size: int = _opt(32, "windows per batch (per process)", min=1)
    num_workers: int = _opt(0, "DataLoader worker processes (0 = load in the main process)", min=0)
    in_memory: str = _opt("auto", "read the dataset's signals into memory (true), or stream each "
                          "batch's windows from the HDF5 file (false); auto = in memory when the "
                          "signals fit in memory_budget_mb", choices=["auto", "true", "false"])
    memory_budget_mb: int = _opt(2048, "in_memory auto: largest dataset (signals, MiB) kept in "
                                 "memory; larger ones are streamed", min=1)
    transform: str = _opt(next(iter(TRANSFORMS)), "model input made from each normalised "
                          "window (docs/data.md 6.4): " + "; ".join(
                              f"{name} = {cls.what.split(' (')[0]}" for name, cls in TRANSFORMS.items()),
                          choices=list(TRANSFORMS))
    transform_params: dict = _opt({}, "parameters of data.transform, e.g. {band_hz: [2000, "
                                  "5000]}: " + "; ".join(
                                      f"{name}: {', '.join(cls.defaults)}"
                                      for name, cls in TRANSFORMS.items() if cls.defaults))

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse transform parameters that cannot work whatever the data (an unknown
        parameter, an inverted band); the ones that depend on the sampling rate (a band
        above the Nyquist frequency) are checked when the data are loaded. Also refuses a
        ``label_fraction`` outside (0, 1].

        Raises:
            ConfigError: names the key and the fix.
        """
        fraction = self.label_fraction
        if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                or not 0.0 < fraction <= 1.0):
            # 0 would leave no labeled window: the classifier could not learn the classes.
            raise ConfigError(f"data.label_fraction = {fraction!r} must lie in (0, 1]: the "
                              f"fraction of training windows that keep their label, e.g. 0.1 "
                              f"(10 %); 1.0 = every window labeled")
        if self.transform not in TRANSFORMS:
            return  # the choices check names it (with the closest match)
        try:
            check_transform_params(self.transform, self.transform_params)
        except TransformError as exc:
            raise ConfigError(str(exc)) from None


def _number_list(value: Any, where: str, length: Optional[int] = None) -> list[float]:
    """``value`` as a list of finite numbers (``length`` of them when given), else ConfigError."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)
    if not ok or (length is not None and len(value) != length) or not value:
        shape = f"a list of {length} numbers" if length else "a non-empty list of numbers"
        raise ConfigError(f"{where} = {value!r} must be {shape}")
    return [float(v) for v in value]


def _check_bearing_geometry(where: str, num_balls: int, ball_mm: float, pitch_mm: float
                            ) -> None:
    """Refuse ball and pitch diameters the balls cannot have (both bearing sections)."""
    d, pitch = float(ball_mm), float(pitch_mm)
    if d <= 0 or d >= pitch:
        raise ConfigError(f"{where}.ball_diameter_mm = {d:g} must be > 0 and smaller than "
                          f"{where}.pitch_diameter_mm = {pitch:g}: the ball centres lie on the "
                          f"pitch circle (SKF 6205: 7.94 and 39.04 mm)")
    if num_balls * d >= math.pi * pitch:
        raise ConfigError(f"{where}: {num_balls} balls of {d:g} mm do not fit on a "
                          f"{pitch:g} mm pitch circle (Z d >= pi D); lower num_balls or "
                          f"ball_diameter_mm")


def _range(value: Any, where: str, example: str) -> tuple[float, float]:
    """A ``[min, max]`` setting; an inverted (empty) range is a ConfigError with the fix."""
    lo, hi = _number_list(value, where, 2)
    if lo > hi:
        raise ConfigError(f"{where} = {value!r} is an empty range (min {lo:g} > max {hi:g}); "
                          f"give [min, max] with min <= max, e.g. {example}")
    return lo, hi


@dataclass
class RollingElementConfig:
    """Rolling-element bearing simulator (``synthetic.kind: rolling_element``; docs/data.md).

    Defaults: the SKF 6205 deep-groove ball bearing of the CWRU test rig.

    Example:
        >>> cfg = RollingElementConfig(speed_rpm=[1700.0, 1800.0], speed_bands=1)
        >>> cfg.ball_diameter_mm / cfg.pitch_diameter_mm
        0.20338114754098363
    """

    num_balls: int = _opt(9, "number of rolling elements Z", min=3)
    ball_diameter_mm: float = _opt(7.94, "ball diameter d, mm", min=0.0)
    pitch_diameter_mm: float = _opt(39.04, "pitch diameter D, mm (must exceed d)", min=0.0)
    contact_angle_deg: float = _opt(0.0, "contact angle alpha, degrees", min=0.0, max=60.0)
    speed_rpm: list = _opt([1200.0, 3000.0], "shaft speed range [min, max], rpm")
    speed_bands: int = _opt(2, "the speed range cut into this many equal bands; each record "
                            "draws its speed inside its band (metadata speed_band, 0 = slowest)",
                            min=1)
    load_levels: list = _opt([0.25, 0.5, 0.75, 1.0], "radial load levels, fraction of the rated "
                             "load (metadata load): impact amplitude and load-zone width")
    fault_sizes_mm: list = _opt([0.18, 0.36, 0.53], "fault (spall) sizes in mm, one severity "
                                "each (CWRU: 0.007, 0.014, 0.021 in)")
    combined_faults: bool = _opt(False, "add classes with two faults: inner_outer, inner_ball, "
                                 "outer_ball")
    outer_race_position_deg: float = _opt(0.0, "outer-race defect angle from the load-zone "
                                          "centre (0 = 6 o'clock under a downward load)",
                                          min=-180.0, max=180.0)
    slip: list = _opt([0.01, 0.02], "random slip: std of each impact interval as a fraction, "
                      "drawn per record from [min, max]")
    resonances_hz: list = _opt([3000.0, 4000.0], "structural resonances each impact excites, Hz "
                               "(per record +-5 %)")
    damping: list = _opt([0.02, 0.05], "damping ratio range [min, max] of the resonances")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse impossible settings with a ConfigError naming the key and the fix.

        Raises:
            ConfigError: d >= D, balls that do not fit on the pitch circle, an empty or
                non-positive speed range, a single speed cut into several bands, fault sizes
                or load levels that are not positive, slip or damping out of range.
        """
        w = "synthetic.rolling_element"
        _check_bearing_geometry(w, self.num_balls, self.ball_diameter_mm,
                                self.pitch_diameter_mm)
        lo, hi = _range(self.speed_rpm, f"{w}.speed_rpm", "[1200, 3000]")
        if lo <= 0:
            raise ConfigError(f"{w}.speed_rpm = {self.speed_rpm!r}: speeds must be > 0 rpm, "
                              f"e.g. [1200, 3000]")
        if lo == hi and self.speed_bands > 1:
            raise ConfigError(f"{w}.speed_rpm = {self.speed_rpm!r} is a single speed, which "
                              f"cannot be cut into {self.speed_bands} speed_bands; set "
                              f"{w}.speed_bands=1 or widen the range")
        sizes = _number_list(self.fault_sizes_mm, f"{w}.fault_sizes_mm")
        if min(sizes) <= 0:
            raise ConfigError(f"{w}.fault_sizes_mm = {self.fault_sizes_mm!r}: fault sizes must "
                              f"be > 0 mm (the class normal is the fault-free case), e.g. "
                              f"[0.18, 0.36, 0.53]")
        loads = _number_list(self.load_levels, f"{w}.load_levels")
        if min(loads) < 0:
            raise ConfigError(f"{w}.load_levels = {self.load_levels!r}: loads are fractions "
                              f"of the rated load, >= 0, e.g. [0.25, 0.5, 0.75, 1.0]")
        s_lo, s_hi = _range(self.slip, f"{w}.slip", "[0.01, 0.02]")
        if s_lo < 0 or s_hi > 0.1:
            raise ConfigError(f"{w}.slip = {self.slip!r} must lie in [0, 0.1] (1-2 % is "
                              f"typical), e.g. [0.01, 0.02]")
        z_lo, z_hi = _range(self.damping, f"{w}.damping", "[0.02, 0.05]")
        if z_lo <= 0 or z_hi >= 0.5:
            raise ConfigError(f"{w}.damping = {self.damping!r}: damping ratios must lie in "
                              f"(0, 0.5) for ringing resonances, e.g. [0.02, 0.05]")
        if min(_number_list(self.resonances_hz, f"{w}.resonances_hz")) <= 0:
            raise ConfigError(f"{w}.resonances_hz = {self.resonances_hz!r} must be > 0 Hz")


@dataclass
class SyntheticConfig:
    """The built-in physics-based generators (used when ``data.source`` is 'synthetic').

    ``kind`` picks the family (:data:`~pfdtrain.data.synthetic_kinds.SYNTHETIC_KINDS`); the
    other top-level keys apply to every kind.
    """

    kind: str = _opt(next(iter(SYNTHETIC_KINDS)), "data family: " + "; ".join(
        f"{name} ({k.what})" for name, k in SYNTHETIC_KINDS.items()),
        choices=list(SYNTHETIC_KINDS))
    sampling_rate: Optional[int] = _opt(None, "samples per second; null = the kind's default ("
                                        + ", ".join(f"{k.sampling_rate} Hz {name}" for name, k
                                                    in SYNTHETIC_KINDS.items()) + ")", min=1000)
    record_duration: float = _opt(3.0, "seconds per record", min=0.1)
    records_per_class: int = _opt(96, "records per class, spread evenly over the severity levels "
                                  "(journal: 96 x 11 classes = 1056 records)", min=4)
    seed: int = _opt(2026, "generator seed and split seed (journal: record i draws from seed + "
                   "i; rolling_element: from the seed sequence [seed, i])", min=0)
    noise_level: float = _opt(1.0, "scale of the measurement/environment noise layers (1.0 = "
                              "realistic, 0 = none; the machine's own noise, e.g. the journal's fluid film, "
                              "stays)",
                              min=0.0)
    workers: int = _opt(0, "processes generating the records (0 = one per CPU core, at most 8 "
                        "and at most one per 64 records); the file is the same whatever the "
                        "number", min=0)
    rolling_element: RollingElementConfig = _section(
        RollingElementConfig, "rolling-element bearing simulator (kind: rolling_element)")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse a sampling rate whose Nyquist band cannot hold the chosen kind's signal.

        Raises:
            ConfigError: rolling_element resonances above 90 % of the Nyquist frequency.
        """
        if self.kind == "rolling_element":
            self.rolling_element.check()
            nyquist = self.effective_sampling_rate / 2
            top = max(_number_list(self.rolling_element.resonances_hz,
                                   "synthetic.rolling_element.resonances_hz")) * 1.05
            if top > 0.9 * nyquist:
                raise ConfigError(
                    f"synthetic.sampling_rate = {self.effective_sampling_rate} Hz is too low for "
                    f"resonances up to {top:g} Hz (+5 % spread): they must stay below 90 % of "
                    f"the Nyquist frequency ({0.9 * nyquist:g} Hz). Set synthetic.sampling_rate "
                    f">= {math.ceil(top / 0.45)} (e.g. null for 12000) or lower "
                    f"synthetic.rolling_element.resonances_hz")

    @property
    def effective_sampling_rate(self) -> int:
        """``sampling_rate``, or the kind's default rate when it is null."""
        if self.sampling_rate is not None:
            return int(self.sampling_rate)
        return SYNTHETIC_KINDS[self.kind].sampling_rate


@dataclass
class AugmentConfig:
    """Training-window augmentation (:mod:`pfdtrain.data.augment`; docs/data.md §6.3).

    Applied to training windows only, never to validation, test, evaluate or predict. Each
    window's draws are seeded by (``seed``, epoch, window index), so runs are reproducible
    and a resumed run is bitwise the uninterrupted one. Disabled by default.

    Example:
        >>> AugmentConfig(enabled=True, noise_snr_db=[0.0, 20.0]).noise_snr_db
        [0.0, 20.0]
    """

    enabled: bool = _opt(False, "augment the training windows (false: every history stays as "
                         "without this section)")
    transforms: list = _opt(list(AUGMENTATIONS), "the transforms to apply, any of: "
                            + ", ".join(AUGMENTATIONS) + " (applied in that order)")
    seed: int = _opt(0, "augmentation seed; window i of epoch e draws from (seed, e, i)", min=0)
    noise_probability: float = _opt(0.5, "chance a window gets white noise", min=0.0, max=1.0)
    noise_snr_db: list = _opt([0.0, 20.0], "white-noise SNR range [min, max], dB (a noisier "
                              "sensor or plant)")
    scale_probability: float = _opt(0.5, "chance a window's amplitude is scaled", min=0.0,
                                    max=1.0)
    scale_factor: list = _opt([0.8, 1.2], "amplitude gain range [min, max], > 0 (sensor "
                              "sensitivity, transfer path; undone by zscore/minmax/rms "
                              "normalisation)")
    shift_probability: float = _opt(0.5, "chance a window's start is shifted", min=0.0, max=1.0)
    shift_max_fraction: float = _opt(0.5, "largest time shift, fraction of window_length "
                                     "(inside the record when there is room, else circular)",
                                     min=0.0, max=1.0)
    speed_probability: float = _opt(0.5, "chance a window is resampled to another speed",
                                    min=0.0, max=1.0)
    speed_factor: list = _opt([0.95, 1.05], "speed ratio range [min, max], > 0: every "
                              "characteristic frequency moves by the factor")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse unusable settings with a ConfigError naming the key and the fix.

        Raises:
            ConfigError: an unknown or repeated transform, an empty or inverted range, a
                probability outside [0, 1], a gain or speed factor <= 0.
        """
        w = "augment"
        names = self.transforms if isinstance(self.transforms, list) else [self.transforms]
        for name in names:
            _check_constraints(name, {"choices": list(AUGMENTATIONS)}, f"{w}.transforms")
        if len(set(names)) != len(names):
            raise ConfigError(f"{w}.transforms = {self.transforms!r} names a transform twice; "
                              f"list each once, e.g. {list(AUGMENTATIONS)}")
        for key in ("noise", "scale", "shift", "speed"):
            p = getattr(self, f"{key}_probability")
            if not 0.0 <= p <= 1.0:  # also checked on load; here for direct construction
                raise ConfigError(f"{w}.{key}_probability = {p!r} must be a probability in "
                                  f"[0, 1], e.g. 0.5")
        _range(self.noise_snr_db, f"{w}.noise_snr_db", "[0, 20]")
        for key, example in (("scale_factor", "[0.8, 1.2]"), ("speed_factor", "[0.95, 1.05]")):
            lo, _ = _range(getattr(self, key), f"{w}.{key}", example)
            if lo <= 0:
                raise ConfigError(f"{w}.{key} = {getattr(self, key)!r}: factors must be > 0 "
                                  f"(1 = unchanged), e.g. {example}")


@dataclass
class ModelConfig:
    """Which network to build (see ``pfdtrain.models``)."""

    name: str = _opt("cnn1d", "model name",
                     choices=list(MODEL_REGISTRY))
    dropout: float = _opt(0.3, "dropout before the classifier", min=0.0, max=0.95)
    params: dict = _opt({}, "extra constructor arguments of the model, e.g. {base_channels: 32}")


@dataclass
class OptimizerConfig:
    """``create_optimizer`` settings; weight decay never applies to biases or norm layers."""

    name: str = _opt("adamw", "optimizer", choices=["adamw", "adam", "sgd", "rmsprop"])
    lr: float = _opt(1e-3, "learning rate (scale with the global batch size)", min=0.0)
    weight_decay: float = _opt(1e-2, "decoupled (adamw) or L2 weight decay on weights only", min=0.0)
    momentum: float = _opt(0.9, "momentum for sgd and rmsprop", min=0.0, max=1.0)
    betas: list = _opt([0.9, 0.999], "Adam betas [beta1, beta2]")
    eps: float = _opt(1e-8, "numerical epsilon for adam, adamw and rmsprop", min=0.0)
    nesterov: bool = _opt(False, "Nesterov momentum for sgd")


@dataclass
class SchedulerConfig:
    """``create_scheduler`` settings."""

    name: str = _opt("cosine", "learning-rate schedule",
                     choices=["none", "step", "exponential", "cosine", "cosine_warmup", "onecycle",
                              "plateau"])
    step_size: int = _opt(10, "step: epochs between decays", min=1)
    gamma: float = _opt(0.1, "step and exponential: decay factor", min=0.0, max=1.0)
    eta_min: float = _opt(0.0, "cosine and cosine_warmup: final learning rate", min=0.0)
    warmup_epochs: float = _opt(1.0, "cosine_warmup: epochs of linear warm-up", min=0.0)
    max_lr: Optional[float] = _opt(None, "onecycle: peak learning rate (default: optimizer.lr)",
                                   min=0.0)
    pct_start: float = _opt(0.3, "onecycle: fraction of steps spent warming up", min=0.0, max=1.0)
    monitor: str = _opt("val_loss", "plateau: history key to watch")
    mode: str = _opt("min", "plateau: 'min' for a loss, 'max' for an accuracy", choices=["min", "max"])
    factor: float = _opt(0.5, "plateau: LR multiplier on a plateau", min=0.0, max=1.0)
    patience: int = _opt(3, "plateau: epochs without improvement before reducing", min=0)
    threshold: float = _opt(1e-4, "plateau: smallest relative change that counts", min=0.0)
    min_lr: float = _opt(0.0, "plateau: lower bound of the learning rate", min=0.0)


@dataclass
class MixedPrecisionConfig:
    """``torch.amp`` autocast: bf16 on CPU, fp16 with a GradScaler on CUDA."""

    enabled: bool = _opt(False, "train under autocast")
    dtype: str = _opt("auto", "autocast dtype; auto = bfloat16 on CPU, float16 on CUDA",
                      choices=["auto", "bfloat16", "float16"])


@dataclass
class LossConfig:
    """``create_criterion`` settings (``pfdtrain.training.cnn_losses``)."""

    name: str = _opt("ce", "classification loss; supcon adds a supervised contrastive term on "
                     "the model's embedding to cross-entropy",
                     choices=list(LOSS_NAMES))
    smoothing: float = _opt(0.1, "label_smoothing: probability mass spread over all classes",
                            min=0.0, max=0.99)
    gamma: float = _opt(2.0, "focal: focusing exponent (0 = cross-entropy)", min=0.0)
    class_weights: str = _opt("none", "per-class weights (ce, label_smoothing) or focal alpha; "
                              "balanced = N / (C * n_c) from the training split",
                              choices=["none", "balanced"])
    temperature: float = _opt(0.1, "supcon: temperature", min=1e-4)
    base_temperature: float = _opt(0.07, "supcon: base temperature (loss scale)", min=1e-4)
    supcon_weight: float = _opt(0.5, "supcon: weight of the contrastive term beside "
                                "cross-entropy", min=0.0)


@dataclass
class BearingConfig:
    """Rolling-element bearing geometry of the ``physics.term: rolling_element`` loss.

    Defaults: the SKF 6205 drive-end bearing of the CWRU rig (also the simulator's default,
    :class:`RollingElementConfig`). With simulated rolling-element data
    (``synthetic.kind: rolling_element``) the simulator's geometry is used; a different
    geometry set here is refused (``pfdtrain.training.physics_rolling_element``).

    Example:
        >>> BearingConfig().num_balls
        9
    """

    num_balls: int = _opt(9, "number of rolling elements Z", min=3)
    ball_diameter_mm: float = _opt(7.94, "ball diameter d, mm", min=0.0)
    pitch_diameter_mm: float = _opt(39.04, "pitch diameter D, mm (must exceed d)", min=0.0)
    contact_angle_deg: float = _opt(0.0, "contact angle alpha, degrees", min=0.0, max=60.0)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse a geometry whose balls cannot sit on the pitch circle.

        Raises:
            ConfigError: d <= 0, d >= D, or Z d >= pi D.
        """
        w = "physics.bearing"
        _check_bearing_geometry(w, self.num_balls, self.ball_diameter_mm,
                                self.pitch_diameter_mm)


@dataclass
class PhysicsConfig:
    """Physics-informed training (``trainer: pinn``): loss = classification + lambda * physics."""

    term: str = _opt(next(iter(PHYSICS_TERMS)), "physics term: " + "; ".join(
        f"{name} ({what})" for name, (_, what) in PHYSICS_TERMS.items()),
        choices=list(PHYSICS_TERMS))
    weight: float = _opt(0.1, "lambda: weight of the frequency-consistency loss", min=0.0)
    warmup_epochs: int = _opt(0, "epochs over which lambda ramps linearly from 0 (0 = constant)",
                              min=0)
    constraint_weight: float = _opt(0.05, "weight of the operating-condition constraint loss "
                                    "(inside lambda; journal term only)", min=0.0)
    bearing: BearingConfig = _section(BearingConfig, "rolling_element term: bearing geometry "
                                      "(synthetic rolling_element data: the simulator's)")
    envelope_band_hz: Optional[list] = _opt(None, "rolling_element term: [low, high] band "
                                            "(Hz) kept before the envelope; null = above 1 kHz "
                                            "(the resonances the impacts ring)")
    harmonics: int = _opt(3, "rolling_element term: harmonics of each strike frequency "
                          "inspected", min=1, max=10)
    slip_tolerance: float = _opt(0.03, "rolling_element term: +- relative tolerance around "
                                 "each strike frequency (rolling elements slip 1-3 %)",
                                 min=0.0, max=0.2)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse an envelope band that is not ``[low, high]`` with ``0 <= low < high``.

        Raises:
            ConfigError: names the key and the fix.
        """
        if self.envelope_band_hz is not None:
            lo, hi = _range(self.envelope_band_hz, "physics.envelope_band_hz", "[1000, 5000]")
            if lo < 0 or lo == hi:
                raise ConfigError(f"physics.envelope_band_hz = {self.envelope_band_hz!r} must "
                                  f"be [low, high] Hz with 0 <= low < high, e.g. [1000, 5000], "
                                  f"or null for everything above 1 kHz")


@dataclass
class DistillationConfig:
    """Knowledge distillation (``trainer: distillation``)."""

    teacher: Optional[str] = _opt(None, "teacher checkpoint (.pth written by pfdtrain)")
    temperature: float = _opt(4.0, "softmax temperature T of the soft targets", min=1e-3)
    alpha: float = _opt(0.5, "weight of the T^2-scaled KL term; 1 - alpha weighs cross-entropy",
                        min=0.0, max=1.0)


@dataclass
class DomainConfig:
    """Unsupervised domain adaptation (``trainer: domain_adaptation``): loss = classification
    on the labeled source + weight * domain loss between source and target features."""

    method: str = _opt(next(iter(DOMAIN_LOSSES)), "domain loss: " + "; ".join(
        f"{name} ({what})" for name, (_, what) in DOMAIN_LOSSES.items()),
        choices=list(DOMAIN_LOSSES))
    weight: float = _opt(1.0, "weight of the domain loss beside the classification loss",
                         min=0.0)
    num_kernels: int = _opt(5, "mmd: Gaussian kernels, bandwidths spread around the median "
                            "pairwise distance", min=1)
    kernel_multiplier: float = _opt(2.0, "mmd: ratio between neighbouring bandwidths", min=1.01)
    hidden: int = _opt(64, "dann: width of the domain classifier's hidden layers", min=1)
    gamma: float = _opt(10.0, "dann: steepness of the gradient-reversal schedule "
                        "2/(1+exp(-gamma p))-1, p = training progress", min=0.0)


@dataclass
class LRMonitorConfig:
    """``LearningRateMonitor``: logs learning-rate changes per parameter group."""

    enabled: bool = _opt(True, "log LR changes")
    verbose: bool = _opt(True, "one log line per change")


@dataclass
class GradientMonitorConfig:
    """``GradientMonitor``: gradient norm per step, epoch mean in history as gradient_norm."""

    enabled: bool = _opt(True, "watch the gradient norm")
    log_interval: int = _opt(100, "optimizer steps between checks", min=1)
    alert_threshold: float = _opt(10.0, "warn when the norm (before clipping) exceeds this",
                                  min=0.0)


@dataclass
class EarlyStoppingConfig:
    """``EarlyStoppingCallback``: stop when the monitored metric stops improving."""

    enabled: bool = _opt(True, "stop early")
    monitor: str = _opt("val_loss", "history key to watch")
    patience: int = _opt(10, "epochs without improvement before stopping", min=1)
    mode: str = _opt("min", "'min' for a loss, 'max' for an accuracy", choices=["min", "max"])
    min_delta: float = _opt(1e-4, "smallest change that counts as an improvement", min=0.0)
    restore_best_weights: bool = _opt(True, "end training with the best epoch's weights "
                                      "(what the test split then evaluates)")


@dataclass
class CallbacksConfig:
    """The §2.4 standard callbacks that ``pfdtrain train`` wires."""

    lr_monitor: LRMonitorConfig = _section(LRMonitorConfig, "learning-rate monitor")
    gradient_monitor: GradientMonitorConfig = _section(GradientMonitorConfig, "gradient monitor")
    early_stopping: EarlyStoppingConfig = _section(EarlyStoppingConfig, "early stopping")
    timing: bool = _opt(True, "TimingCallback: epoch time, samples/s, ETA")
    events: bool = _opt(True, "dashboard events appended to <run>/events.jsonl")


@dataclass
class CheckpointConfig:
    """``ModelCheckpointCallback``: the §4.2 files in ``<run>/checkpoints``."""

    enabled: bool = _opt(True, "write checkpoints")
    monitor: str = _opt("val_acc", "history key deciding best_model.pth")
    mode: str = _opt("max", "'max' for an accuracy, 'min' for a loss", choices=["min", "max"])
    save_best_only: bool = _opt(True, "false: also a checkpoint_epochNNN file every epoch")
    every_n_epochs: int = _opt(0, "periodic checkpoint_epochNNN backups (0 = none)", min=0)
    every_n_steps: int = _opt(0, "mid-epoch recovery save of latest_model.pth every N optimizer "
                              "steps (0 = only at epoch ends)", min=0)


@dataclass
class LoggingConfig:
    """Logs beside ``events.jsonl`` for other tools: TensorBoard and a CSV file."""

    tensorboard: bool = _opt(False, "TensorBoard scalars (losses, accuracies, lr, gradient norm), "
                             "hyperparameters with the final metrics and the test confusion "
                             "matrix in <run>/tensorboard (open: tensorboard --logdir "
                             "runs/<name>/tensorboard)")
    csv: bool = _opt(False, "one row per epoch (every history key) in <run>/metrics.csv")


@dataclass
class DistributedConfig:
    """DDP under ``torchrun`` (ignored in a single process).

    Each process loads ``data.batch_size`` windows per step, so the global batch is
    ``batch_size x gradient_accumulation_steps x world size``. Keep the global batch (divide
    batch_size by the world size) to reproduce a single-process run; or keep batch_size and
    scale ``optimizer.lr`` with the world size (linear scaling rule), ideally with warm-up.
    """

    backend: str = _opt("auto", "auto = nccl on CUDA, gloo on CPU", choices=["auto", "nccl", "gloo"])
    sync_batchnorm: bool = _opt(False, "batch-norm statistics over the global batch")
    timeout_minutes: float = _opt(30.0, "a collective waiting longer for a rank fails the job",
                                  min=0.1)


@dataclass
class TrainingConfig:
    """Everything a training run needs; saved whole in every checkpoint and run folder.

    Example:
        >>> cfg = TrainingConfig()
        >>> cfg.optimizer.lr
        0.001
    """

    name: Optional[str] = _opt(None, "run folder name under output_dir (default: <model>-<time>)")
    output_dir: str = _opt("runs", "parent folder of run folders")
    seed: int = _opt(42, "seed for torch, numpy, python and the data order", min=0)
    deterministic: bool = _opt(True, "deterministic algorithms (identical history run to run)")
    device: str = _opt("auto", "'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'",
                       pattern=r"auto|cpu|cuda(:\d+)?")
    trainer: str = _opt("cnn", ", ".join(f"{name} ({what})" for name, (_, what)
                                          in TRAINERS.items()), choices=list(TRAINERS))
    num_epochs: int = _opt(25, "epochs to train", min=1)
    gradient_accumulation_steps: int = _opt(1, "micro-batches per optimizer step", min=1)
    max_grad_norm: float = _opt(1.0, "clip the total gradient norm to this (0 = no clipping)",
                                min=0.0)
    log_interval: int = _opt(20, "refresh the progress bar every N batches", min=1)
    data: DataConfig = _section(DataConfig, "data source, windows and batches")
    synthetic: SyntheticConfig = _section(SyntheticConfig, "built-in synthetic dataset generator")
    augment: AugmentConfig = _section(AugmentConfig, "training-window augmentation (training "
                                      "windows only; docs/data.md)")
    model: ModelConfig = _section(ModelConfig, "network")
    optimizer: OptimizerConfig = _section(OptimizerConfig, "optimizer")
    scheduler: SchedulerConfig = _section(SchedulerConfig, "learning-rate scheduler")
    mixed_precision: MixedPrecisionConfig = _section(MixedPrecisionConfig, "mixed precision")
    loss: LossConfig = _section(LossConfig, "classification loss (guide section 3)")
    physics: PhysicsConfig = _section(PhysicsConfig, "physics-informed training (trainer: pinn)")
    distillation: DistillationConfig = _section(DistillationConfig,
                                                "knowledge distillation (trainer: distillation)")
    domain: DomainConfig = _section(DomainConfig, "unsupervised domain adaptation (trainer: "
                                    "domain_adaptation)")
    callbacks: CallbacksConfig = _section(CallbacksConfig, "callbacks (guide section 2.4)")
    checkpoint: CheckpointConfig = _section(CheckpointConfig, "checkpoints (guide section 4)")
    logging: LoggingConfig = _section(LoggingConfig, "TensorBoard and CSV logs (README "
                                      "\"Dashboard, TensorBoard and CSV\")")
    distributed: DistributedConfig = _section(DistributedConfig,
                                              "distributed data-parallel training (torchrun)")

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        """Plain nested dict of builtins (what ``yaml.safe_dump`` and checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        """Build and validate a config; missing keys take their defaults.

        Raises:
            ConfigError: unknown key (with the closest valid key) or invalid value.
        """
        return _build(cls, data, section="")

    def to_yaml(self, path: Optional[Union[str, Path]] = None, comments: bool = True) -> str:
        """YAML text of this config (commented by default); written to ``path`` when given."""
        text = _to_commented_yaml(self) if comments else yaml.safe_dump(
            self.to_dict(), sort_keys=False)
        if path is not None:
            with atomic_open(path, "w") as handle:  # a reader never sees half a config
                handle.write(text)
        return text

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "TrainingConfig":
        """Read a YAML file with ``yaml.safe_load`` (no python tags) and validate it."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}. Write one with "
                              f"`pfdtrain config > {path.name}` and edit it.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys, got "
                              f"{type(data).__name__}")
        return cls.from_dict(data)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    name = getattr(tp, "__name__", str(tp))
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the field type; accept the harmless conversions YAML needs."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} must be {_type_name(base)}, got null")
    base_origin = typing.get_origin(base) or base
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        number: Optional[float] = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # PyYAML reads '3e-4' (no dot) as a string; accept any string float() accepts.
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
            return number
    elif base is str:
        if isinstance(value, str):
            return value
    elif base_origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    elif base_origin is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(f"{where} must be {_type_name(base_origin)}"
                      f"{' or null' if optional else ''}, got {value!r} "
                      f"({type(value).__name__})")


def _check_constraints(value: Any, meta: dict, where: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where} = {value!r} is not allowed; allowed values: "
                          f"{', '.join(map(str, choices))}.{hint}")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if lo is not None and hi is not None else (
            f">= {lo}" if lo is not None else f"<= {hi}")
        raise ConfigError(f"{where} = {value!r} is out of range; allowed: {bounds}")
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, str(value)):
        raise ConfigError(f"{where} = {value!r} is not allowed; expected {meta['help']}")


def _build(cls: type, data: Any, section: str) -> Any:
    where_section = section or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"section '{section}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{key}' in section '{where_section}'{hint} "
                              f"Valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        where = f"{section}.{name}" if section else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, where)
            continue
        choices = fields[name].metadata.get("choices") or ()
        if isinstance(value, bool) and "true" in choices:  # YAML reads `true` as a bool
            value = "true" if value else "false"
        value = _coerce(value, tp, where)
        _check_constraints(value, fields[name].metadata, where)
        kwargs[name] = value
    return cls(**kwargs)


def apply_overrides(config: TrainingConfig, overrides: list[str]) -> TrainingConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and re-validate.

    Example:
        >>> apply_overrides(TrainingConfig(), ["optimizer.lr=3e-4"]).optimizer.lr
        0.0003
    """
    data = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value, "
                              f"e.g. optimizer.lr=3e-4")
        dotted, raw = item.split("=", 1)
        *parents, leaf = dotted.strip().split(".")
        node = data
        for depth, part in enumerate(parents):
            if part not in node:
                node[part] = {}  # from_dict then names the unknown section and its closest match
            if not isinstance(node[part], dict):
                path = ".".join(parents[: depth + 1])
                sections = [k for k, v in node.items() if isinstance(v, dict)]
                raise ConfigError(f"override '{item}': '{path}' is not a config section; "
                                  f"sections: {', '.join(sections)}")
            node = node[part]
        try:
            node[leaf] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from None
    return TrainingConfig.from_dict(data)


# --------------------------------------------------------------------------------------------
# Commented YAML output
# --------------------------------------------------------------------------------------------

def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[: -len("\n...")] if text.endswith("\n...") else text.removesuffix("...").strip()


def _to_commented_yaml(obj: Any, indent: int = 0) -> str:
    lines: list[str] = []
    pad = "  " * indent
    if indent == 0:
        lines.append("# pfdtrain training configuration (every key optional; defaults shown)")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        if dataclasses.is_dataclass(value):
            lines.append("")
            lines.append(f"{pad}# {meta['help']}")
            lines.append(f"{pad}{f.name}:")
            lines.append(_to_commented_yaml(value, indent + 1))
            continue
        comment = meta.get("help", "")
        if meta.get("choices"):
            comment += f" [{' | '.join(map(str, meta['choices']))}]"
        lines.append(f"{pad}{f.name}: {_yaml_scalar(value)}  # {comment}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def config_reference_markdown() -> str:
    """The configuration reference table (used to write the README section)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
                continue
            meaning = f.metadata.get("help", "")
            if f.metadata.get("choices"):
                meaning += " (" + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + ")"
            rows.append(f"| `{prefix}{f.name}` | `{_yaml_scalar(value)}` | {meaning} |")

    walk(TrainingConfig(), "")
    return "\n".join(rows)
