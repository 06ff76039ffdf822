"""Physics-based synthetic vibration of a rolling-element (ball) bearing (docs/data.md §1b).

The model follows McFadden & Smith (1984, "Model for the vibration produced by a single
point defect in a rolling element bearing") and Randall & Antoni (2011, "Rolling element
bearing diagnostics — a tutorial"):

* a localised fault (spall) is struck once per passage, at a characteristic frequency set
  by the bearing geometry and the shaft speed (BPFO, BPFI, or twice the ball spin
  frequency BSF for a ball defect, which strikes both races once per spin revolution);
* every strike excites the structure's resonances: decaying sinusoids at several kHz, so
  the fault information lives in the *envelope* of a high-frequency band;
* the rolling elements slip a little: each interval between strikes varies randomly by
  1-2 % (the signal is cyclostationary, not periodic), which smears the high harmonics of
  the raw spectrum but keeps the envelope spectrum's lines;
* strike amplitudes follow the load: a defect that moves through the load zone (inner race:
  with the shaft; ball: with the cage) is amplitude-modulated by the Stribeck load
  distribution q(psi) = q_max [1 - (1 - cos psi) / (2 eps)]^(3/2); an outer-race defect is
  fixed in the load zone and struck with a constant amplitude;
* plus shaft harmonics (residual imbalance, misalignment), broadband machine noise (random
  forcing of the same resonances and low-frequency noise) and measurement noise.

Each record has its own operating point: the shaft speed (drawn inside one of
``speed_bands`` equal bands of ``speed_rpm``) and a radial load level (impact amplitude and
load-zone width), both stored as metadata (``rpm``, ``speed_band``, ``load``...), so
``data.split: group`` makes cross-speed and cross-load tasks.

Record ``i`` draws from ``np.random.SeedSequence([seed, i])`` (two child streams: the machine
and noise, then the faults), and its class, severity, load level and speed band are a fixed
function of ``i``: generation is reproducible, independent of the order and of which other
records are generated, and the same index with another class is the same machine.

Example:
    >>> from pfdtrain.config.training_config import SyntheticConfig
    >>> cfg = SyntheticConfig(kind="rolling_element", record_duration=1.0)
    >>> x, info = generate_record(2, cfg)
    >>> x.shape, class_names(cfg)[info["label"]]
    ((12000,), 'outer_race')
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional

import numpy as np
from scipy.signal import fftconvolve

from pfdtrain.config.training_config import RollingElementConfig, SyntheticConfig
from pfdtrain.data.synthetic import collect_records

BASE_CLASSES: tuple[str, ...] = ("normal", "inner_race", "outer_race", "ball")
COMBINED_CLASSES: tuple[str, ...] = ("inner_outer", "inner_ball", "outer_ball")
# Fault locations of every class (a combined class superposes two).
_LOCATIONS: dict[str, tuple[str, ...]] = {
    "normal": (), "inner_race": ("inner",), "outer_race": ("outer",), "ball": ("ball",),
    "inner_outer": ("inner", "outer"), "inner_ball": ("inner", "ball"),
    "outer_ball": ("outer", "ball"),
}

# Bump whenever the generated signals change for an unchanged config (part of the cache key).
GENERATOR_VERSION = 1

METADATA_FIELDS: tuple[str, ...] = ("rpm", "speed_hz", "load", "speed_band", "load_zone_deg",
                                    "fault_size_mm", "bpfo_hz", "bpfi_hz", "bsf_hz", "ftf_hz")

# Peak acceleration (≈ g) of one strike of a REFERENCE_SIZE_MM spall at full load in the load
# zone's centre, per location. Inner-race and ball strikes cross more interfaces (rolling
# contact, inner ring, shaft) on their way to a housing sensor than outer-race ones, hence
# weaker at the sensor (ball faults are the faintest in the CWRU data too).
_STRIKE_AMPLITUDE: dict[str, float] = {"outer": 1.0, "inner": 0.6, "ball": 0.45}
REFERENCE_SIZE_MM = 0.36
# A ball defect strikes the outer race and the inner race alternately; the inner-race
# contact reaches the sensor weaker (drawn per record in this range, relative to the outer).
_BALL_INNER_CONTACT = (0.5, 0.7)
MIN_LOAD_SHARE = 0.05      # rollers outside the load zone still touch lightly (preload)
STRIBECK_EXPONENT = 1.5    # ball bearings (Harris); 10/9 for roller bearings
RESONANCE_SPREAD = 0.05    # each record's resonances move by ±5 % (mounting, temperature)
REFERENCE_SPEED_HZ = 30.0  # shaft harmonics are quoted at 1800 rpm and grow with speed²


# ---------------------------------------------------------------- geometry
def characteristic_frequencies(shaft_hz: float, geometry: RollingElementConfig
                               ) -> dict[str, float]:
    """Fault frequencies (Hz) of a bearing with a stationary outer race.

    With Z rolling elements of diameter d on pitch diameter D, contact angle alpha and
    shaft frequency f_r:

    * FTF  = f_r / 2 · (1 - d/D cos alpha)            (cage)
    * BPFO = Z f_r / 2 · (1 - d/D cos alpha)          (ball pass, outer race)
    * BPFI = Z f_r / 2 · (1 + d/D cos alpha)          (ball pass, inner race)
    * BSF  = D f_r / (2 d) · (1 - (d/D cos alpha)^2)  (ball spin)

    Args:
        shaft_hz: shaft speed f_r in rev/s.
        geometry: ``num_balls``, ``ball_diameter_mm``, ``pitch_diameter_mm``,
            ``contact_angle_deg``.

    Returns:
        ``{"ftf", "bpfo", "bpfi", "bsf"}`` in Hz.

    Example:
        >>> f = characteristic_frequencies(1797 / 60, RollingElementConfig())  # CWRU, 0 HP
        >>> round(f["bpfo"], 2), round(f["bpfi"], 2), round(2 * f["bsf"], 2)
        (107.36, 162.19, 141.17)
    """
    ratio = geometry.ball_diameter_mm / geometry.pitch_diameter_mm
    ratio *= math.cos(math.radians(geometry.contact_angle_deg))
    z = geometry.num_balls
    return {"ftf": shaft_hz / 2 * (1 - ratio),
            "bpfo": z * shaft_hz / 2 * (1 - ratio),
            "bpfi": z * shaft_hz / 2 * (1 + ratio),
            "bsf": shaft_hz / (2 * ratio) * (1 - ratio ** 2)}


def strike_frequency(location: str, freqs: Mapping[str, float]) -> float:
    """Strikes per second of a defect at ``location`` (outer, inner, ball): BPFO, BPFI, 2·BSF."""
    return {"outer": freqs["bpfo"], "inner": freqs["bpfi"], "ball": 2 * freqs["bsf"]}[location]


def load_zone(load: float) -> tuple[float, float]:
    """Stribeck's load-distribution factor eps and the load zone's half-angle (rad) at ``load``.

    eps = 0.5 is a load zone of ±90° (zero clearance); a heavier load closes the clearance
    and widens the zone. Modelling choice: eps = 0.25 + 0.5 · load (capped at 1, the whole
    circumference), i.e. ±76° at a quarter of the rated load to ±120° at the rated load.

    Example:
        >>> round(math.degrees(load_zone(0.5)[1]), 1)
        90.0
    """
    eps = min(0.25 + 0.5 * max(load, 0.0), 1.0)
    return eps, math.acos(max(1.0 - 2.0 * eps, -1.0))


def load_share(psi: np.ndarray, eps: float) -> np.ndarray:
    """Relative roller load at angle ``psi`` from the load-zone centre (1 at the centre)."""
    inside = np.clip(1.0 - (1.0 - np.cos(psi)) / (2.0 * eps), 0.0, None)
    return MIN_LOAD_SHARE + (1.0 - MIN_LOAD_SHARE) * inside ** STRIBECK_EXPONENT


# ---------------------------------------------------------------- classes and grid
def class_names(cfg: SyntheticConfig) -> tuple[str, ...]:
    """Class names of the dataset: normal, inner_race, outer_race, ball (+ combined ones)."""
    return BASE_CLASSES + (COMBINED_CLASSES if cfg.rolling_element.combined_faults else ())


def num_records(cfg: SyntheticConfig) -> int:
    """``records_per_class × number of classes``."""
    return cfg.records_per_class * len(class_names(cfg))


def record_assignment(index: int, cfg: SyntheticConfig) -> dict[str, int]:
    """Class, severity, load level and speed band of record ``index`` (a balanced grid).

    Classes cycle fastest, then the operating conditions (load levels, then speed bands),
    then the severities (fault sizes): even a small dataset covers every load and speed band,
    and ``records_per_class`` divisible by loads × bands × severities (24 with the defaults)
    balances every cell. The normal class has no severity (-1).

    Example:
        >>> cfg = SyntheticConfig(kind="rolling_element")
        >>> record_assignment(0, cfg), record_assignment(13, cfg)["load_level"]
        ({'label': 0, 'severity': -1, 'load_level': 0, 'speed_band': 0}, 3)
    """
    if index < 0:
        raise ValueError(f"record index must be >= 0, got {index}")
    re_cfg = cfg.rolling_element
    k, s = len(class_names(cfg)), len(re_cfg.fault_sizes_mm)
    loads, conditions = len(re_cfg.load_levels), len(re_cfg.load_levels) * re_cfg.speed_bands
    label, j = index % k, index // k  # j: the record's number inside its class
    cell = j % conditions
    return {"label": label, "severity": -1 if label == 0 else (j // conditions) % s,
            "load_level": cell % loads, "speed_band": cell // loads}


def record_id(index: int) -> str:
    """The stable record id, e.g. ``reb-000123``."""
    return f"reb-{index:06d}"


# ---------------------------------------------------------------- signal building blocks
def _resonance_kernel(rng: np.random.Generator, fs: float, cfg: RollingElementConfig
                      ) -> np.ndarray:
    """Impulse response of the record's structural resonances (sum of decaying sines, peak 1)."""
    modes = []
    for f0 in cfg.resonances_hz:
        f = float(f0) * rng.uniform(1 - RESONANCE_SPREAD, 1 + RESONANCE_SPREAD)
        zeta = rng.uniform(*cfg.damping)
        weight = rng.uniform(0.5, 1.0)
        modes.append((f, zeta, weight))
    # Long enough for the slowest mode to decay to e^-7 (< 0.1 %).
    duration = max(7.0 / (2 * math.pi * f * z) for f, z, _ in modes)
    t = np.arange(int(math.ceil(duration * fs)) + 1) / fs
    kernel = np.zeros_like(t)
    for f, zeta, weight in modes:
        w = 2 * math.pi * f
        kernel += weight * np.exp(-zeta * w * t) * np.sin(w * math.sqrt(1 - zeta ** 2) * t)
    return kernel / np.abs(kernel).max()


def _strike_times(rng: np.random.Generator, rate_hz: float, duration: float,
                  slip: float) -> np.ndarray:
    """Strike times (s) at ``rate_hz`` with a random slip: each interval is T (1 + slip·N(0,1))."""
    period = 1.0 / rate_hz
    count = int(math.ceil(duration * rate_hz * 1.2)) + 2
    intervals = period * np.clip(1.0 + slip * rng.standard_normal(count), 0.5, 1.5)
    times = rng.uniform(-period, 0.0) + np.cumsum(intervals)
    return times[(times >= 0.0) & (times < duration)]


def _band_noise(rng: np.random.Generator, n: int, fs: float, f_lo: float, f_hi: float,
                rms: float) -> np.ndarray:
    """Gaussian noise restricted to [f_lo, f_hi] Hz, scaled to ``rms``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    x = np.fft.irfft(spec * ((f >= f_lo) & (f <= f_hi)), n)
    current = float(np.sqrt(np.mean(x * x)))
    return x * (rms / current) if current > 0 else x


_OVERRIDE_KEYS = ("label", "severity", "rpm", "load")


# ---------------------------------------------------------------- public API
def generate_record(index: int, cfg: SyntheticConfig,
                    overrides: Optional[Mapping[str, float]] = None) -> tuple[np.ndarray, dict]:
    """Generate record ``index`` of the rolling-element dataset described by ``cfg``.

    Args:
        index: record number (>= 0); fixes the random streams and the grid cell
            (:func:`record_assignment`).
        cfg: a ``SyntheticConfig`` (``kind`` rolling_element; its ``rolling_element``
            section holds the bearing and the operating ranges).
        overrides: what-if values for ``label``, ``severity``, ``rpm`` or ``load``. Every
            random draw stays the same, so e.g. the same record without its fault
            (``{"label": 0}``) is the same machine, sensor and noise.

    Returns:
        ``(signal float32 [round(record_duration · rate)], info)``; ``info`` holds
        ``label``, ``severity`` and every :data:`METADATA_FIELDS` entry.

    Raises:
        ConfigError: impossible settings (see ``RollingElementConfig.check``).

    Example:
        >>> cfg = SyntheticConfig(kind="rolling_element", record_duration=1.0)
        >>> x, info = generate_record(1, cfg)
        >>> info["bpfi_hz"] > info["bpfo_hz"] > info["ftf_hz"]
        True
    """
    cfg.check()  # also catches settings changed after the config was built
    re_cfg = cfg.rolling_element
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(_OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"unknown override(s) {sorted(unknown)}; allowed: {_OVERRIDE_KEYS}")
    cell = record_assignment(index, cfg)
    names = class_names(cfg)
    label = int(overrides.get("label", cell["label"]))
    severity = int(overrides.get("severity", cell["severity"]))
    if not 0 <= label < len(names):
        raise ValueError(f"label {label} out of range 0..{len(names) - 1}")
    if label != 0 and not 0 <= severity < len(re_cfg.fault_sizes_mm):
        raise ValueError(f"severity {severity} out of range 0..{len(re_cfg.fault_sizes_mm) - 1}")

    fs = float(cfg.effective_sampling_rate)
    n = int(round(cfg.record_duration * fs))
    duration = n / fs
    t = np.arange(n) / fs
    machine_seq, fault_seq = np.random.SeedSequence([cfg.seed, index]).spawn(2)
    rng = np.random.default_rng(machine_seq)

    # Operating point: always drawn, then possibly overridden, so later draws never shift.
    lo, hi = (float(v) for v in re_cfg.speed_rpm)
    width = (hi - lo) / re_cfg.speed_bands
    rpm = rng.uniform(lo + width * cell["speed_band"], lo + width * (cell["speed_band"] + 1))
    rpm = float(overrides.get("rpm", rpm))
    load = float(overrides.get("load", re_cfg.load_levels[cell["load_level"]]))
    shaft_hz = rpm / 60.0
    freqs = characteristic_frequencies(shaft_hz, re_cfg)
    eps, zone_half_angle = load_zone(load)

    # Machine: structure, shaft harmonics, broadband noise; sensor gain.
    kernel = _resonance_kernel(rng, fs, re_cfg)
    gain = rng.uniform(0.85, 1.15)
    slip = rng.uniform(*re_cfg.slip)
    shaft_angle = 2 * np.pi * shaft_hz * t + rng.uniform(0, 2 * np.pi)
    speed_factor = (shaft_hz / REFERENCE_SPEED_HZ) ** 2
    machine = sum(amp * np.cos(order * shaft_angle + rng.uniform(0, 2 * np.pi))
                  for order, amp in ((1, rng.uniform(0.02, 0.08) * speed_factor),
                                     (2, rng.uniform(0.01, 0.04) * speed_factor),
                                     (3, rng.uniform(0.0, 0.015))))
    # Random forcing of the same resonances (rolling noise, flow, gears elsewhere): the
    # resonance band is never quiet, even in a healthy bearing.
    forcing = fftconvolve(rng.standard_normal(n), kernel, mode="full")[:n]
    forcing *= rng.uniform(0.01, 0.03) / max(float(np.std(forcing)), 1e-12)
    machine = machine + forcing + _band_noise(rng, n, fs, 10.0, 1000.0, rng.uniform(0.01, 0.03))
    # Measurement noise: sensor/amplifier white noise and mains hum (50 or 60 Hz + harmonics).
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(rng.uniform(0.0, 0.01) * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi))
              for k in (1, 3))
    noise = rng.normal(0.0, rng.uniform(0.02, 0.04), size=n) + hum

    # Faults: their own stream, so the class never shifts the draws above.
    frng = np.random.default_rng(fault_seq)
    size_mm = 0.0 if label == 0 else float(re_cfg.fault_sizes_mm[severity])
    strength = (size_mm / REFERENCE_SIZE_MM) * (0.3 + 0.7 * load) * frng.uniform(0.75, 1.25)
    impulses = np.zeros(n)
    for location in _LOCATIONS[names[label]]:
        times = _strike_times(frng, strike_frequency(location, freqs), duration, slip)
        if location == "inner":     # the defect turns with the shaft through the load zone
            psi = 2 * np.pi * shaft_hz * times + frng.uniform(0, 2 * np.pi)
        elif location == "ball":    # the ball is carried through the load zone by the cage
            psi = 2 * np.pi * freqs["ftf"] * times + frng.uniform(0, 2 * np.pi)
        else:                       # the outer race is fixed: the defect sits at one angle
            psi = np.full(times.shape, math.radians(re_cfg.outer_race_position_deg))
        amps = _STRIKE_AMPLITUDE[location] * strength * load_share(psi, eps)
        amps *= np.clip(1.0 + 0.1 * frng.standard_normal(times.size), 0.5, 1.5)
        if location == "ball":      # alternate outer-race / weaker inner-race contacts
            inner_contact = frng.uniform(*_BALL_INNER_CONTACT)
            amps[1::2] *= inner_contact
        np.add.at(impulses, np.minimum((times * fs).round().astype(np.int64), n - 1), amps)
    faults = fftconvolve(impulses, kernel, mode="full")[:n] if impulses.any() else impulses

    signal = gain * (machine + faults) + cfg.noise_level * noise
    info = {"label": label, "severity": -1 if label == 0 else severity, "rpm": rpm,
            "speed_hz": shaft_hz, "load": load, "speed_band": float(cell["speed_band"]),
            "load_zone_deg": math.degrees(zone_half_angle), "fault_size_mm": size_mm,
            "bpfo_hz": freqs["bpfo"], "bpfi_hz": freqs["bpfi"], "bsf_hz": freqs["bsf"],
            "ftf_hz": freqs["ftf"]}
    return signal.astype(np.float32), info


def generate_records(cfg: SyntheticConfig, indices: Optional[Iterable[int]] = None,
                     workers: int = 1, progress: bool = False) -> dict[str, np.ndarray]:
    """Generate many records (by default the whole dataset, :func:`num_records`).

    Args:
        cfg: generator settings (``kind`` rolling_element).
        indices: which records; record ``i`` is the same whichever others come with it.
        workers: processes generating them (0 = auto); the arrays do not depend on it.
        progress: a progress bar on a terminal.

    Returns:
        dict with ``signals`` float32 [N, T], ``labels``, ``severities``, ``indices`` int64
        [N], ``record_ids`` str [N] and one float64 [N] array per :data:`METADATA_FIELDS`.

    Example:
        >>> data = generate_records(SyntheticConfig(kind="rolling_element", records_per_class=4,
        ...                                         record_duration=0.5))
        >>> data["signals"].shape, sorted(set(data["labels"].tolist()))
        ((16, 6000), [0, 1, 2, 3])
    """
    idx = list(range(num_records(cfg))) if indices is None else [int(i) for i in indices]
    return collect_records(__name__, cfg, idx, [record_id(i) for i in idx], METADATA_FIELDS,
                           workers=workers, progress=progress)


__all__ = ["BASE_CLASSES", "COMBINED_CLASSES", "GENERATOR_VERSION", "METADATA_FIELDS",
           "characteristic_frequencies", "class_names", "generate_record",
           "generate_records", "load_share", "load_zone", "num_records", "record_assignment",
           "strike_frequency"]
