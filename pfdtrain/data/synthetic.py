"""Physics-based synthetic vibration of a hydrodynamic journal bearing (docs/data.md).

Every record is one accelerometer recording of a journal bearing at its own operating point
(shaft speed, load, oil temperature → viscosity → Sommerfeld number). The signal is the sum of

* the machine's own vibration: residual imbalance (1X) and misalignment (2X, 3X) that every
  real machine has, plus broadband fluid-film noise;
* the fault signature of the record's class, scaled by its severity level;
* measurement and environment noise: white noise, pink (1/f) noise, mains interference at
  50 or 60 Hz with harmonics, slow baseline drift and occasional impulses (all scaled by
  ``SyntheticConfig.noise_level``);

multiplied by a per-record sensor gain. The shaft speed wanders slightly inside a record and
every component has a random phase, so no two records share a waveform.

Record ``i`` draws everything from its own generator ``np.random.default_rng(seed + i)`` and
its (class, severity) is a fixed function of ``i``, so generation is reproducible, does not
depend on which other records are generated, and parallelises trivially.

Example:
    >>> from pfdtrain.config.training_config import SyntheticConfig
    >>> signal, meta = generate_record(0, SyntheticConfig(record_duration=1.0))
    >>> signal.shape, signal.dtype, CLASS_NAMES[meta["label"]]
    ((6400,), dtype('float32'), 'healthy')
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy.signal import fftconvolve, sawtooth
from tqdm import tqdm

from pfdtrain.config.training_config import SyntheticConfig

# The class index is the position in this tuple; datasets and checkpoints store indices,
# so the order must never change (append new classes at the end).
CLASS_NAMES: tuple[str, ...] = (
    "healthy",
    "misalignment",
    "imbalance",
    "clearance",
    "lubrication",
    "cavitation",
    "wear",
    "oil_whirl",
    "mixed_misalign_imbalance",
    "mixed_wear_lube",
    "mixed_cavit_clearance",
)
SEVERITY_NAMES: tuple[str, ...] = ("incipient", "mild", "moderate", "severe")

# Bump whenever the generated signals change for an unchanged SyntheticConfig: it is part of
# the cache key of ensure_synthetic_dataset, so stale cached datasets are never reused.
GENERATOR_VERSION = 1

# Names of the per-record operating variables (HDF5 ``metadata/`` datasets).
METADATA_FIELDS: tuple[str, ...] = ("speed_hz", "load", "temperature", "viscosity", "sommerfeld")

# ---------------------------------------------------------------- bearing and operating point
NOMINAL_SPEED_HZ = 60.0          # 3600 rpm, a two-pole motor on a 60 Hz grid
SPEED_SPREAD = 0.10              # speed drawn uniformly in nominal ± 10 %
LOAD_RANGE = (0.30, 1.00)        # fraction of the rated load
TEMPERATURE_RANGE = (40.0, 80.0)  # oil temperature, °C
VISCOSITY_REF = 0.015            # Pa·s at 60 °C (ISO VG 32 turbine oil)
VISCOSITY_TEMP_COEFF = 0.03      # 1/°C in mu = mu_ref * exp(-0.03 (T - 60))
JOURNAL_RADIUS = 0.025           # m (50 mm journal)
BEARING_LENGTH = 0.040           # m (L/D = 0.8)
RADIAL_CLEARANCE = 50e-6         # m (c/R = 0.002)
RATED_LOAD = 4000.0              # N → projected pressure 2 MPa at full load
SOMMERFELD_RANGE = (0.05, 0.50)
SOMMERFELD_REF = 0.15            # oil-whirl amplitude is quoted at this Sommerfeld number

# Fault amplitude per severity level (signal units, roughly g); each record multiplies it by
# U(0.75, 1.25). The incipient level is deliberately at or below the noise floor (~0.08 RMS
# at noise_level 1) and inside the spread of the healthy machine's own 1X/2X vibration.
SEVERITY_SCALE: tuple[float, ...] = (0.08, 0.20, 0.45, 1.00)
MIXED_WEIGHT = 0.7               # each component of a mixed fault at 70 % amplitude
MIN_SAMPLING_RATE = 5000         # Nyquist must stay above the 2.5 kHz cavitation bursts


def num_records(cfg: SyntheticConfig) -> int:
    """Number of records of the dataset described by ``cfg`` (``records_per_class × classes``)."""
    return cfg.records_per_class * len(CLASS_NAMES)


def class_names(cfg: SyntheticConfig) -> tuple[str, ...]:
    """The class names of this kind's datasets (fixed: :data:`CLASS_NAMES`)."""
    return CLASS_NAMES


def record_assignment(index: int) -> tuple[int, int]:
    """(class, severity) of record ``index``: the balanced grid over classes then severities.

    Consecutive blocks of 11 records hold one record of every class, and the severity cycles
    every 44 records, so any ``records_per_class`` divisible by 4 is exactly balanced.

    Example:
        >>> record_assignment(0), record_assignment(12), record_assignment(45)
        ((0, 0), (1, 1), (1, 0))
    """
    if index < 0:
        raise ValueError(f"record index must be >= 0, got {index}")
    n = len(CLASS_NAMES)
    return index % n, (index // n) % len(SEVERITY_NAMES)


def record_id(index: int) -> str:
    """The stable record id stored in datasets, e.g. ``syn-000123``."""
    return f"syn-{index:06d}"


def viscosity(temperature: float) -> float:
    """Oil dynamic viscosity (Pa·s) at ``temperature`` °C (exponential Reynolds law)."""
    return VISCOSITY_REF * float(np.exp(-VISCOSITY_TEMP_COEFF * (temperature - 60.0)))


def sommerfeld_number(speed_hz: float, load: float, temperature: float) -> float:
    """Sommerfeld number S = (mu N / P)(R/c)^2 of the bearing, clipped to 0.05-0.5.

    Args:
        speed_hz: shaft speed N in rev/s.
        load: fraction of the rated load; P = load * RATED_LOAD / (2 R L) is the projected
            bearing pressure.
        temperature: oil temperature in °C (sets the viscosity mu).

    Returns:
        S (dimensionless, Raimondi-Boyd convention: small S = heavily loaded bearing).
    """
    pressure = load * RATED_LOAD / (2.0 * JOURNAL_RADIUS * BEARING_LENGTH)
    s = viscosity(temperature) * speed_hz / pressure * (JOURNAL_RADIUS / RADIAL_CLEARANCE) ** 2
    return float(np.clip(s, *SOMMERFELD_RANGE))


# ---------------------------------------------------------------- signal building blocks
@dataclasses.dataclass
class _Context:
    """What the fault models need to know about the record being generated."""

    rng: np.random.Generator
    fs: float
    t: np.ndarray          # time axis, s
    theta: np.ndarray      # shaft angle, rad (includes the speed wander)
    speed_hz: float
    sommerfeld: float

    @property
    def n(self) -> int:
        return self.t.shape[0]


def _shaped_noise(rng: np.random.Generator, n: int, fs: float, f_lo: float, f_hi: float,
                  rms: float = 1.0, pink: bool = False) -> np.ndarray:
    """Gaussian noise restricted to [f_lo, f_hi] Hz (1/f power when ``pink``), scaled to ``rms``.

    Shaping white noise in the frequency domain costs one FFT pair and has an exact band edge,
    which the spectral tests rely on.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    gain = ((f >= f_lo) & (f <= f_hi)).astype(float)
    if pink:
        gain[1:] /= np.sqrt(f[1:])  # power ∝ 1/f  →  amplitude ∝ 1/sqrt(f)
        gain[0] = 0.0
    x = np.fft.irfft(spec * gain, n)
    current = np.sqrt(np.mean(x * x))
    return x * (rms / current) if current > 0 else x


def _events(rng: np.random.Generator, n: int, fs: float, rate_hz: float) -> np.ndarray:
    """Sample indices of a Poisson process with ``rate_hz`` events per second."""
    count = rng.poisson(rate_hz * n / fs)
    return np.sort(rng.integers(0, n, size=count))


def _impulse_train(n: int, positions: np.ndarray, amplitudes: np.ndarray,
                   kernel: np.ndarray) -> np.ndarray:
    """Impulses of ``amplitudes`` at ``positions`` filtered by ``kernel`` (structure response)."""
    train = np.zeros(n)
    np.add.at(train, positions, amplitudes)  # add.at: two events may share a sample
    return fftconvolve(train, kernel, mode="full")[:n]


def _ringing_kernel(fs: float, freq: float, decay_s: float) -> np.ndarray:
    """Impulse response of a lightly damped structural resonance (decaying sine)."""
    tk = np.arange(int(round(8 * decay_s * fs)) + 1) / fs
    return np.exp(-tk / decay_s) * np.sin(2 * np.pi * freq * tk)


def _harmonic(ctx: _Context, order: float, amplitude: float | np.ndarray) -> np.ndarray:
    """``amplitude · cos(order · shaft angle + random phase)`` — a speed-locked component."""
    return amplitude * np.cos(order * ctx.theta + ctx.rng.uniform(0, 2 * np.pi))


def _subsynchronous(ctx: _Context, ratio_range: tuple[float, float],
                    amplitude: float) -> np.ndarray:
    """A component at ~``ratio``·X whose frequency wanders slightly (whirl is not phase-locked)."""
    ratio = ctx.rng.uniform(*ratio_range)
    wander = _shaped_noise(ctx.rng, ctx.n, ctx.fs, 0.0, 1.0) * 0.004  # ±0.4 % frequency wander
    extra_phase = 2 * np.pi * np.cumsum(ratio * ctx.speed_hz * wander) / ctx.fs
    return amplitude * np.cos(ratio * ctx.theta + extra_phase + ctx.rng.uniform(0, 2 * np.pi))


# ---------------------------------------------------------------- fault signatures
# Each model returns the fault's vibration for fault amplitude ``a`` (already scaled by the
# severity level and the mixed-fault weight). They draw only from ctx.rng, in a fixed order.

def _misalignment(ctx: _Context, a: float) -> np.ndarray:
    # Angular/parallel misalignment: the coupling forces the shaft twice per revolution.
    return (_harmonic(ctx, 2, a * ctx.rng.uniform(0.7, 1.0))
            + _harmonic(ctx, 3, a * ctx.rng.uniform(0.25, 0.5)))


def _imbalance(ctx: _Context, a: float) -> np.ndarray:
    # Centrifugal force m·e·Ω² → the 1X amplitude grows with speed squared.
    return _harmonic(ctx, 1, a * ctx.rng.uniform(0.8, 1.0) * (ctx.speed_hz / NOMINAL_SPEED_HZ) ** 2)


def _clearance(ctx: _Context, a: float) -> np.ndarray:
    # Excessive clearance / looseness: sub-synchronous 0.43-0.48X plus a 1X harmonic series.
    rng = ctx.rng
    return (_subsynchronous(ctx, (0.43, 0.48), a * rng.uniform(0.4, 0.7))
            + _harmonic(ctx, 1, a * rng.uniform(0.4, 0.7))
            + _harmonic(ctx, 2, a * rng.uniform(0.3, 0.6))
            + _harmonic(ctx, 3, a * rng.uniform(0.1, 0.3)))


def _lubrication(ctx: _Context, a: float) -> np.ndarray:
    # Starved lubrication: stick-slip friction at 2-5 Hz (a relaxation oscillation, hence a
    # sawtooth: slow stick, fast slip), friction noise louder during the slip, and random
    # asperity impacts ringing the housing's structural resonance.
    rng = ctx.rng
    f_ss = rng.uniform(2.0, 5.0)
    phase = 2 * np.pi * f_ss * ctx.t + rng.uniform(0, 2 * np.pi)
    saw = sawtooth(phase, width=rng.uniform(0.7, 0.9))
    stick_slip = a * rng.uniform(0.4, 0.7) * saw
    friction = _shaped_noise(rng, ctx.n, ctx.fs, 100.0, 1500.0, a * rng.uniform(0.15, 0.3))
    friction *= 0.5 + 0.5 * (1 + saw) / 2  # modulated by the stick-slip cycle
    pos = _events(rng, ctx.n, ctx.fs, rng.uniform(8.0, 20.0))
    amps = a * rng.uniform(0.4, 1.0, size=pos.size) * rng.choice([-1.0, 1.0], size=pos.size)
    kernel = _ringing_kernel(ctx.fs, rng.uniform(700.0, 1300.0), rng.uniform(1e-3, 3e-3))
    return stick_slip + friction + _impulse_train(ctx.n, pos, amps, kernel)


def _cavitation(ctx: _Context, a: float) -> np.ndarray:
    # Vapour bubbles collapsing in the film: short Hann-windowed 1.5-2.5 kHz bursts at random
    # times. Built as one [bursts, samples] array and scattered with add.at (no sample loop).
    rng = ctx.rng
    starts = _events(rng, ctx.n, ctx.fs, rng.uniform(4.0, 12.0))
    e = starts.size
    max_len = int(round(0.015 * ctx.fs))
    lengths = rng.integers(int(round(0.004 * ctx.fs)), max_len + 1, size=e)
    freqs = rng.uniform(1500.0, 2500.0, size=e)
    phases = rng.uniform(0, 2 * np.pi, size=e)
    amps = a * rng.uniform(0.5, 1.0, size=e)
    out = np.zeros(ctx.n)
    if e == 0:
        return out
    k = np.arange(max_len)[None, :]
    inside = k < lengths[:, None]
    window = np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * k / (lengths[:, None] - 1)), 0.0)
    carrier = np.cos(2 * np.pi * freqs[:, None] * k / ctx.fs + phases[:, None])
    burst = amps[:, None] * window * carrier
    idx = starts[:, None] + k
    keep = inside & (idx < ctx.n)  # a burst near the end of the record is cut off
    np.add.at(out, idx[keep], burst[keep])
    return out


def _wear(ctx: _Context, a: float) -> np.ndarray:
    # Worn bearing surface: broadband rubbing noise plus 1X/2X whose amplitude breathes slowly
    # as the worn zone and the load interact.
    rng = ctx.rng
    broadband = _shaped_noise(rng, ctx.n, ctx.fs, 50.0, 3000.0, a * rng.uniform(0.2, 0.35))
    depth = rng.uniform(0.3, 0.6)
    envelope = 1.0 + depth * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * ctx.t
                                    + rng.uniform(0, 2 * np.pi))
    tonal = (_harmonic(ctx, 1, a * rng.uniform(0.4, 0.6))
             + _harmonic(ctx, 2, a * rng.uniform(0.25, 0.45)))
    return broadband + envelope * tonal


def _oil_whirl(ctx: _Context, a: float) -> np.ndarray:
    # Oil whirl: the journal precesses at just under half speed (0.42-0.48X). Modelling
    # choice of this project: the amplitude scales with 1/sqrt(S) (see docs/data.md).
    scale = np.sqrt(SOMMERFELD_REF / ctx.sommerfeld)
    return _subsynchronous(ctx, (0.42, 0.48), a * ctx.rng.uniform(0.8, 1.0) * scale)


_FaultModel = Callable[[_Context, float], np.ndarray]

# Components of every class: (model, weight). Mixed faults superpose two models at 70 %.
_CLASS_COMPONENTS: dict[str, tuple[tuple[_FaultModel, float], ...]] = {
    "healthy": (),
    "misalignment": ((_misalignment, 1.0),),
    "imbalance": ((_imbalance, 1.0),),
    "clearance": ((_clearance, 1.0),),
    "lubrication": ((_lubrication, 1.0),),
    "cavitation": ((_cavitation, 1.0),),
    "wear": ((_wear, 1.0),),
    "oil_whirl": ((_oil_whirl, 1.0),),
    "mixed_misalign_imbalance": ((_misalignment, MIXED_WEIGHT), (_imbalance, MIXED_WEIGHT)),
    "mixed_wear_lube": ((_wear, MIXED_WEIGHT), (_lubrication, MIXED_WEIGHT)),
    "mixed_cavit_clearance": ((_cavitation, MIXED_WEIGHT), (_clearance, MIXED_WEIGHT)),
}
assert set(_CLASS_COMPONENTS) == set(CLASS_NAMES)


def _machine_baseline(ctx: _Context) -> np.ndarray:
    """The vibration every machine has: residual imbalance/misalignment and fluid-film noise.

    Its random 1X/2X levels overlap the incipient fault amplitudes on purpose: a slightly
    unbalanced healthy machine and an incipient imbalance look alike, as in the field.
    """
    rng = ctx.rng
    residual_1x = rng.uniform(0.03, 0.10) * (ctx.speed_hz / NOMINAL_SPEED_HZ) ** 2
    return (_harmonic(ctx, 1, residual_1x)
            + _harmonic(ctx, 2, rng.uniform(0.01, 0.04))
            + _harmonic(ctx, 3, rng.uniform(0.0, 0.015))
            + _shaped_noise(rng, ctx.n, ctx.fs, 10.0, 2500.0, rng.uniform(0.01, 0.025)))


def _measurement_noise(ctx: _Context) -> np.ndarray:
    """Sensor, cabling and environment noise at noise_level 1 (about 0.08 RMS)."""
    rng, n, fs, t = ctx.rng, ctx.n, ctx.fs, ctx.t
    white = rng.normal(0.0, rng.uniform(0.03, 0.05), size=n)
    pink = _shaped_noise(rng, n, fs, 0.5, fs / 2, rng.uniform(0.02, 0.05), pink=True)
    # Mains interference: the grid is 50 or 60 Hz (the latter sits right on a 60 Hz shaft's 1X).
    mains = (50.0 if rng.random() < 0.5 else 60.0) + rng.uniform(-0.05, 0.05)
    emi_amp = rng.uniform(0.005, 0.03)
    emi = np.zeros(n)
    for order, rel in ((1, 1.0), (2, rng.uniform(0.0, 0.3)), (3, rng.uniform(0.2, 0.6)),
                       (5, rng.uniform(0.1, 0.3))):
        emi += emi_amp * rel * np.sin(2 * np.pi * order * mains * t + rng.uniform(0, 2 * np.pi))
    drift = rng.uniform(-0.05, 0.05) + sum(
        rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * rng.uniform(0.02, 0.5) * t
                                          + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    pos = _events(rng, n, fs, 0.5)  # electrical spikes / knocks on the machine frame
    amps = rng.uniform(0.2, 0.8, size=pos.size) * rng.choice([-1.0, 1.0], size=pos.size)
    tk = np.arange(int(0.004 * fs)) / fs
    spikes = _impulse_train(n, pos, amps, np.exp(-tk / rng.uniform(3e-4, 1e-3)))
    return white + pink + emi + drift + spikes


_OVERRIDE_KEYS = ("label", "severity", "speed_hz", "load", "temperature")


# ---------------------------------------------------------------- public API
def generate_record(index: int, cfg: SyntheticConfig,
                    overrides: Optional[Mapping[str, float]] = None) -> tuple[np.ndarray, dict]:
    """Generate record ``index`` of the synthetic dataset described by ``cfg``.

    Args:
        index: record number (>= 0). It fixes the RNG (``seed + index``) and the
            (class, severity) via :func:`record_assignment`.
        cfg: generator settings (sampling rate, duration, seed, noise level).
        overrides: optional what-if values for ``label``, ``severity``, ``speed_hz``,
            ``load`` or ``temperature``. Every random draw stays the same, so e.g. the same
            record at two speeds differs only through the physics (used by the tests).

    Returns:
        ``(signal, info)``: float32 array of ``round(record_duration * sampling_rate)``
        samples, and a dict with ``label``, ``severity``, ``speed_hz``, ``load`` (fraction of
        the rated load), ``temperature`` (°C), ``viscosity`` (Pa·s), ``sommerfeld``.

    Example:
        >>> x, info = generate_record(35, SyntheticConfig(record_duration=1.0))
        >>> CLASS_NAMES[info["label"]], SEVERITY_NAMES[info["severity"]]
        ('imbalance', 'severe')
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(_OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"unknown override(s) {sorted(unknown)}; allowed: {_OVERRIDE_KEYS}")
    label, severity = record_assignment(index)
    label = int(overrides.get("label", label))
    severity = int(overrides.get("severity", severity))
    if not 0 <= label < len(CLASS_NAMES) or not 0 <= severity < len(SEVERITY_NAMES):
        raise ValueError(f"label {label} / severity {severity} out of range")

    rate = cfg.effective_sampling_rate  # null = this kind's default, 6400 Hz
    if rate < MIN_SAMPLING_RATE:
        # Shown once per process (default warnings filter), not once per record.
        warnings.warn(f"sampling_rate {rate} Hz is below {MIN_SAMPLING_RATE} Hz: "
                      f"the 1.5-2.5 kHz cavitation bursts alias to lower frequencies",
                      stacklevel=2)
    rng = np.random.default_rng(cfg.seed + index)
    fs = float(rate)
    n = int(round(cfg.record_duration * rate))
    t = np.arange(n) / fs

    # Operating point: always drawn (then possibly overridden) so later draws never shift.
    speed = NOMINAL_SPEED_HZ * rng.uniform(1 - SPEED_SPREAD, 1 + SPEED_SPREAD)
    load = rng.uniform(*LOAD_RANGE)
    temperature = rng.uniform(*TEMPERATURE_RANGE)
    speed = float(overrides.get("speed_hz", speed))
    load = float(overrides.get("load", load))
    temperature = float(overrides.get("temperature", temperature))
    mu = viscosity(temperature)
    s = sommerfeld_number(speed, load, temperature)

    # Shaft angle with a slow speed wander of 0.1-0.4 % (motor slip, load fluctuation): the
    # harmonics are then slightly smeared as in a real spectrum, not single-bin lines.
    wander = _shaped_noise(rng, n, fs, 0.0, 2.0) * rng.uniform(0.001, 0.004)
    theta = 2 * np.pi * np.cumsum(speed * (1.0 + wander)) / fs + rng.uniform(0, 2 * np.pi)
    ctx = _Context(rng=rng, fs=fs, t=t, theta=theta, speed_hz=speed, sommerfeld=s)

    mechanical = _machine_baseline(ctx)
    amplitude = SEVERITY_SCALE[severity] * rng.uniform(0.75, 1.25)
    gain = rng.uniform(0.85, 1.15)  # sensor sensitivity and mounting vary record to record
    # Everything above is drawn identically for every class, so the same index with
    # overrides={"label": 0} is the same machine without its fault (used by the tests).
    for model, weight in _CLASS_COMPONENTS[CLASS_NAMES[label]]:
        mechanical += model(ctx, amplitude * weight)
    # Noise is always drawn (then scaled) so noise_level never changes the other draws.
    signal = gain * mechanical + cfg.noise_level * _measurement_noise(ctx)

    info = {"label": label, "severity": severity, "speed_hz": speed, "load": load,
            "temperature": temperature, "viscosity": mu, "sommerfeld": s}
    return signal.astype(np.float32), info


def _generate_chunk(args: tuple[str, Sequence[int], SyntheticConfig]
                    ) -> list[tuple[np.ndarray, dict]]:
    """Records of one block, in a worker process (the generator module named by import path,
    so that every kind's ``generate_record`` can run there)."""
    module, indices, cfg = args
    generate_record_of_kind = importlib.import_module(module).generate_record
    return [generate_record_of_kind(i, cfg) for i in indices]


# A process pool pays for itself from about this many records per process (pool start-up
# and shipping the arrays back cost about as much as generating this many records).
_RECORDS_PER_WORKER = 64


def generation_workers(workers: int, num: int) -> int:
    """Processes :func:`generate_records` uses for ``num`` records: ``workers``, or for
    0 (auto) one per CPU core (at most 8), fewer when there are few records.

    Example:
        >>> generation_workers(2, 1000), generation_workers(3, 1)
        (2, 1)
    """
    if workers <= 0:
        workers = min(os.cpu_count() or 1, 8, max(1, num // _RECORDS_PER_WORKER))
    return max(1, min(int(workers), num))


def generate_records(cfg: SyntheticConfig, indices: Optional[Iterable[int]] = None,
                     workers: int = 1, progress: bool = False) -> dict[str, np.ndarray]:
    """Generate many records (by default the whole dataset, ``records_per_class × 11``).

    Args:
        cfg: generator settings.
        indices: which records; default ``range(records_per_class * len(CLASS_NAMES))``.
            Record ``i`` is identical whichever other indices are generated with it.
        workers: processes to use (0 = auto, :func:`generation_workers`). Record ``i``
            draws only from ``seed + i``, so the arrays are bitwise the same for any number.
        progress: show a progress bar (only when stderr is a terminal).

    Returns:
        dict with ``signals`` float32 [N, T], ``labels`` int64 [N], ``severities`` int64 [N],
        ``indices`` int64 [N], ``record_ids`` str [N] (``syn-000123``), and one float64 [N]
        array per operating variable (``speed_hz``, ``load``, ``temperature``,
        ``viscosity``, ``sommerfeld``).

    Example:
        >>> data = generate_records(SyntheticConfig(records_per_class=4, record_duration=1.0))
        >>> data["signals"].shape
        (44, 6400)
    """
    idx = list(range(num_records(cfg))) if indices is None else [int(i) for i in indices]
    return collect_records(__name__, cfg, idx, [record_id(i) for i in idx], METADATA_FIELDS,
                           workers=workers, progress=progress)


def collect_records(module: str, cfg: SyntheticConfig, indices: Sequence[int],
                    record_ids: Sequence[str], metadata_fields: Sequence[str], *,
                    workers: int = 1, progress: bool = False) -> dict[str, np.ndarray]:
    """The arrays of ``generate_records`` for every synthetic kind: ``module.generate_record``
    run on ``indices``, across ``workers`` processes, with a progress bar on a terminal.

    Records are seeded by index, so the arrays do not depend on ``workers``.

    Args:
        module: import path of the kind's generator (it has ``generate_record(i, cfg)``).
        cfg: generator settings.
        indices: which records, in the order of the returned rows.
        record_ids: the id of each of them.
        metadata_fields: the operating variables each record's info carries.
        workers: processes (see :func:`generation_workers`; 0 = auto).
        progress: show a tqdm bar when stderr is a terminal.

    Example:
        >>> collect_records("pfdtrain.data.synthetic", SyntheticConfig(), [0, 1],
        ...                 ["syn-000000", "syn-000001"], ("load",))["signals"].shape
        (2, 19200)
    """
    idx = list(indices)
    n_samples = int(round(cfg.record_duration * cfg.effective_sampling_rate))
    # Filled record by record: the dataset is held once, never as a list plus a stacked copy.
    signals = np.zeros((len(idx), n_samples), np.float32)
    infos: list[dict] = []
    workers = generation_workers(workers, len(idx))
    bar = tqdm(total=len(idx), desc="generating records", unit="rec", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    with bar:
        if workers > 1:
            # Consecutive blocks, several per process, returned in order: the bar moves
            # steadily and records land in their rows without sorting.
            size = max(1, min(16, len(idx) // (workers * 4)))
            blocks = [idx[k:k + size] for k in range(0, len(idx), size)]
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for block in pool.map(_generate_chunk, [(module, b, cfg) for b in blocks]):
                    for signal, info in block:
                        signals[len(infos)] = signal
                        infos.append(info)
                    bar.update(len(block))
        else:
            generate_record_of_kind = importlib.import_module(module).generate_record
            for i in idx:
                signal, info = generate_record_of_kind(i, cfg)
                signals[len(infos)] = signal
                infos.append(info)
                bar.update(1)

    out: dict[str, np.ndarray] = {
        "signals": signals,
        "labels": np.array([r["label"] for r in infos], dtype=np.int64),
        "severities": np.array([r["severity"] for r in infos], dtype=np.int64),
        "indices": np.array(idx, dtype=np.int64),
        "record_ids": np.array(record_ids, dtype=str),
    }
    for name in metadata_fields:
        out[name] = np.array([r[name] for r in infos], dtype=np.float64)
    return out
