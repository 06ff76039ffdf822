"""``physics.term: rolling_element``: envelope-spectrum consistency for rolling-element bearings.

A localised fault in a ball bearing (a spall) is struck once per passage of a rolling
element; every strike rings the structure's resonances at a few kHz. The fault's signature
is the *repetition rate* of those bursts: BPFO (outer race), BPFI (inner race) or twice the
ball spin frequency 2·BSF (a ball defect strikes both races once per spin revolution), all
set by the bearing geometry and the shaft speed (:func:`pfdtrain.data.rolling_element.
characteristic_frequencies`). Envelope analysis recovers it: keep the resonance band, take
the envelope (magnitude of the analytic signal), and look for lines at those rates in the
envelope's spectrum (McFadden & Smith 1984; Randall & Antoni 2011).

:class:`EnvelopeSpectrumConsistencyLoss` turns that into a per-class evidence in [0, 1] and
penalises predictions the envelope spectrum does not support, in the same differentiable
partial-label form as :class:`~pfdtrain.training.physics_loss_functions.
FrequencyConsistencyLoss`. :func:`rolling_element_terms` is its ``PHYSICS_TERMS`` builder.

Example:
    >>> import torch
    >>> from pfdtrain.config.training_config import BearingConfig
    >>> loss_fn = EnvelopeSpectrumConsistencyLoss(12000.0, ["normal", "outer_race"],
    ...                                           BearingConfig())
    >>> x, logits = torch.randn(2, 1, 2048), torch.zeros(2, 2, requires_grad=True)
    >>> loss = loss_fn(x, logits, {"rpm": torch.full((2,), 1797.0)})
    >>> loss.backward(); logits.grad.shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from pfdtrain.config.training_config import BearingConfig, ConfigError
from pfdtrain.data.rolling_element import characteristic_frequencies, strike_frequency
from pfdtrain.training.cnn_losses import LossConfigError, _check_real
from pfdtrain.training.physics_loss_functions import (FrequencyConsistencyLoss, _metadata_values,
                                                      _no_autocast)

if TYPE_CHECKING:  # annotations only
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle

__all__ = ["LOCATIONS", "EnvelopeSpectrumConsistencyLoss", "fault_locations",
           "envelope_spectrum", "resolve_bearing_geometry", "rolling_element_terms"]

#: Fault locations, the columns of :meth:`EnvelopeSpectrumConsistencyLoss.location_evidence`.
LOCATIONS: tuple[str, ...] = ("outer", "inner", "ball")
#: Envelope band when none is given: everything above this (Hz); the shaft's own vibration
#: lies below, the resonances the impacts ring (CWRU and the simulator: 2.5-4.5 kHz) above.
DEFAULT_BAND_LOW_HZ = 1000.0
# Calibration of the location evidence sigmoid((score - center) / scale), score = weighted
# mean log peak-to-background ratio at the strike frequency's harmonics. Chosen on simulator
# windows (seed 2026, 1-s records, 5 raw windows of 2048 samples at 12 kHz per record, 24
# records per class): normal windows score 0.3 on average (10-90 %: -0.1 to 0.7; noise
# peaks, the max of a few bins over their median), the true location of a fault 0.9 (ball),
# 1.35 (inner race), 2.8 (outer race) on average.
EVIDENCE_CENTER = 0.85
EVIDENCE_SCALE = 0.15
_EPS = 1e-12
_SEPARATORS = re.compile(r"[_\-\s@.]+")
# "IR007", "inner_race_0.007in", "OR021@6", "B014", "ball": a location word, then the end or
# a size / position suffix.
_SINGLE = {"inner": re.compile(r"^(inner(_race)?|ir)($|[\d_@\-.])"),
           "outer": re.compile(r"^(outer(_race)?|or)($|[\d_@\-.])"),
           "ball": re.compile(r"^(ball|b)($|[\d_@\-.])")}


def fault_locations(name: str) -> Optional[tuple[str, ...]]:
    """The fault locations a class name stands for: ``()`` for a healthy bearing, one or two
    of :data:`LOCATIONS`, or None for a name this term does not know.

    Args:
        name: a class name (simulator: ``normal``, ``inner_race``, ``inner_outer``...; CWRU:
            ``IR007``, ``OR014``, ``B021``; imported manifests: ``inner_race_0.007in``).

    Returns:
        A tuple of locations (in :data:`LOCATIONS` order), or None.

    Example:
        >>> fault_locations("IR007"), fault_locations("outer_ball"), fault_locations("normal")
        (('inner',), ('outer', 'ball'), ())
        >>> fault_locations("oil_whirl") is None
        True
    """
    key = str(name).strip().lower()
    if key.startswith("normal") or key in ("healthy", "baseline"):
        return ()
    tokens = [t for t in _SEPARATORS.split(key) if t]
    # Combined simulator classes: two location words (inner_outer, outer_ball, ...).
    if len(tokens) >= 2 and tokens[0] in LOCATIONS and tokens[1] in LOCATIONS:
        found = {tokens[0], tokens[1]}
        return tuple(loc for loc in LOCATIONS if loc in found)
    for location, pattern in _SINGLE.items():
        if pattern.match(key):
            return (location,)
    return None


def _geometry_of(section: Any) -> BearingConfig:
    return BearingConfig(**{f.name: getattr(section, f.name)
                            for f in dataclasses.fields(BearingConfig)})


def resolve_bearing_geometry(config: "TrainingConfig") -> BearingConfig:
    """The bearing the ``rolling_element`` term assumes.

    ``physics.bearing``, except on simulated rolling-element data (``data.source:
    synthetic`` with ``synthetic.kind: rolling_element``), where the simulator's geometry
    (``synthetic.rolling_element``) wins so the data and the term agree; a
    ``physics.bearing`` changed from its defaults to another geometry is then refused.

    Raises:
        ConfigError: ``physics.bearing`` and ``synthetic.rolling_element`` disagree.

    Example:
        >>> resolve_bearing_geometry(TrainingConfig()).num_balls   # doctest: +SKIP
        9
    """
    chosen = _geometry_of(config.physics.bearing)
    if config.data.source == "synthetic" and config.synthetic.kind == "rolling_element":
        simulated = _geometry_of(config.synthetic.rolling_element)
        if chosen != BearingConfig() and chosen != simulated:
            raise ConfigError(
                f"physics.bearing {dataclasses.asdict(chosen)} differs from the simulated "
                f"bearing synthetic.rolling_element {dataclasses.asdict(simulated)}; the "
                f"rolling_element term uses the simulator's geometry on simulated data: drop "
                f"physics.bearing or set the same values in both sections")
        return simulated
    return chosen


@torch.no_grad()
def envelope_spectrum(signal: Tensor, sampling_rate: float,
                      band_hz: Sequence[float]) -> Tensor:
    """Amplitude spectrum of the envelope of the band-passed windows.

    Steps per window (float32): remove the mean; keep the FFT bins inside ``band_hz`` (an
    ideal filter); the envelope is the magnitude of the analytic signal (the kept positive
    frequencies doubled, inverse complex FFT); remove its mean, Hann-window it and take
    ``|rfft|``. Bin ``k`` is at ``k · sampling_rate / L``.

    Args:
        signal: ``[B, L]`` or ``[B, 1, L]`` windows.
        sampling_rate: samples per second.
        band_hz: ``[low, high]`` in Hz.

    Returns:
        float32 ``[B, L // 2 + 1]``.

    Example:
        >>> envelope_spectrum(torch.randn(3, 1, 1024), 12000.0, [1000.0, 6000.0]).shape
        torch.Size([3, 513])
    """
    x = signal.reshape(signal.shape[0], -1).float()
    n = x.shape[-1]
    x = x - x.mean(dim=-1, keepdim=True)
    spectrum = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(n, 1.0 / sampling_rate).to(x.device)
    keep = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    keep[0] = False
    # Analytic signal: positive frequencies doubled, negative ones zero (the Nyquist bin of
    # an even length is its own mirror and stays single).
    gain = keep.to(x.dtype) * 2.0
    if n % 2 == 0:
        gain[-1] = gain[-1] / 2.0
    analytic = torch.zeros(x.shape[0], n, dtype=spectrum.dtype, device=x.device)
    analytic[:, :spectrum.shape[-1]] = spectrum * gain
    envelope = torch.fft.ifft(analytic).abs()
    envelope = envelope - envelope.mean(dim=-1, keepdim=True)
    window = torch.hann_window(n, periodic=False, dtype=x.dtype, device=x.device)
    return torch.fft.rfft(envelope * window).abs()


class EnvelopeSpectrumConsistencyLoss(FrequencyConsistencyLoss):
    """
    Penalise class probabilities that the window's envelope spectrum does not support.

    Per window (under ``torch.no_grad()``): the envelope spectrum ``E`` of the band-passed
    signal (:func:`envelope_spectrum`); for each location ``l`` (outer: BPFO, inner: BPFI,
    ball: 2·BSF at the window's shaft speed) and harmonic ``h = 1..H`` the peak of ``E``
    within ``h f_l (1 ± slip_tolerance)`` (at least ± one bin) over the median of ``E`` in
    the surrounding ``h f_l ± max(0.3 f_l, 8 bins)`` (the background, peak excluded); the
    location's score is the ``1/h``-weighted mean of the log ratios and its evidence
    ``e_l = sigmoid((score - EVIDENCE_CENTER) / EVIDENCE_SCALE)``. A class's evidence is the
    product of its locations' evidence and the absence ``1 - e`` of the other locations the
    dataset's classes use (so a single fault is not confused with the combined fault that
    contains it); ``normal`` is the absence of every location. Class names are mapped by
    :func:`fault_locations`; unknown names get 0.5 (no opinion), as do windows whose speed
    is NaN.

    The loss is the partial-label form of ``FrequencyConsistencyLoss``::

        e' = floor + (1 - floor) · e,    p = softmax(logits / temperature)
        loss = mean_b [ -log Σ_c p_bc · e'_bc ]

    differentiable with respect to the logits, with no ``argmax`` on the gradient path.

    Measured on the calibration windows (simulator seed 2026, raw 2048-sample windows at
    12 kHz, noise level 1, 20-40 per class and fault size): the location with the highest
    score is the true one for 100 % of outer-race windows, 82 / 85 / 100 % of inner-race
    and 62 / 97 / 100 % of ball windows (fault sizes 0.18 / 0.36 / 0.53 mm); the class with
    the highest evidence is the true one for 88 % of normal windows, 100 % outer race,
    60 / 85 / 95 % inner race, 28 / 60 / 80 % ball. Inner-race and ball strikes are weaker
    and load-modulated (their energy spreads into sidebands), hence the weaker evidence.
    On the real CWRU 12 kHz drive-end recordings at 0 HP (z-scored 2048-sample windows,
    the files' rpm, default geometry and calibration) the best-scoring location is the true
    one for 361 of 531 faulty windows (68 %; inner race 100 % at every size, outer race
    100 % at 0.007" and 0.021" but 20 % at 0.014", ball 8-58 %: CWRU's ball faults are
    known to show weak envelope lines), and the best class for 399 of 650 windows (61 %;
    normal 92 %).

    Reference: McFadden & Smith, "Model for the vibration produced by a single point defect
        in a rolling element bearing", J. Sound Vib. 96 (1984); Randall & Antoni, "Rolling
        element bearing diagnostics — a tutorial", MSSP 25 (2011).

    Args:
        sampling_rate: samples per second of the input windows.
        class_names: the dataset's class names, index = class label.
        geometry: the bearing: ``num_balls``, ``ball_diameter_mm``, ``pitch_diameter_mm``,
            ``contact_angle_deg`` (a ``BearingConfig`` or ``RollingElementConfig``).
        band_hz: ``[low, high]`` Hz kept before the envelope; None = ``[1000, fs / 2]``.
        harmonics: harmonics ``H`` of each strike frequency inspected (>= 1).
        slip_tolerance: relative half-width of the peak search (rolling elements slip 1-3 %).
        temperature: divides the logits before the softmax (> 0).
        evidence_floor: lower bound mixed into the evidence, in (0, 1).
        evidence_center: score at which a location's evidence is 0.5.
        evidence_scale: softness of that threshold (> 0).

    Raises:
        LossConfigError: a band outside (0, fs / 2], harmonics < 1, a negative tolerance,
            or class names of which none is a rolling-element fault class.

    Example:
        >>> loss_fn = EnvelopeSpectrumConsistencyLoss(12000.0, ["normal", "IR007"],
        ...                                           BearingConfig())
        >>> loss_fn.locations
        ((), ('inner',))
    """

    def __init__(self, sampling_rate: float, class_names: Sequence[str], geometry: Any,
                 band_hz: Optional[Sequence[float]] = None, harmonics: int = 3,
                 slip_tolerance: float = 0.03, temperature: float = 1.0,
                 evidence_floor: float = 0.05, evidence_center: float = EVIDENCE_CENTER,
                 evidence_scale: float = EVIDENCE_SCALE) -> None:
        super().__init__(sampling_rate, class_names, temperature, evidence_floor)
        nyquist = self.sampling_rate / 2
        low, high = (DEFAULT_BAND_LOW_HZ, nyquist) if band_hz is None else (
            float(band_hz[0]), float(band_hz[1]))
        if not 0.0 <= low < high or low >= nyquist:
            raise LossConfigError(f"envelope band {[low, high]} Hz must satisfy 0 <= low < "
                                  f"high and low < the Nyquist frequency {nyquist:g} Hz; set "
                                  f"physics.envelope_band_hz, e.g. [{nyquist / 4:g}, "
                                  f"{nyquist:g}]")
        self.band_hz = (low, min(high, nyquist))
        if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
            raise LossConfigError(f"harmonics must be an integer >= 1, got {harmonics!r}")
        self.harmonics = harmonics
        self.slip_tolerance = _check_real("slip_tolerance", slip_tolerance, 0.0, 0.5)
        self.evidence_center = _check_real("evidence_center", evidence_center, -math.inf)
        self.evidence_scale = _check_real("evidence_scale", evidence_scale, 0.0,
                                          low_inclusive=False)
        self.geometry = geometry
        per_hz = characteristic_frequencies(1.0, geometry)
        # Strike rates per rev/s of the shaft, in LOCATIONS order (BPFO, BPFI, 2·BSF).
        self.rates_per_hz = tuple(strike_frequency(loc, per_hz) for loc in LOCATIONS)
        self.locations = tuple(fault_locations(name) for name in self.class_names)
        used = {loc for locs in self.locations if locs for loc in locs}
        if not used:  # a healthy class alone gives no fault frequency to look for
            raise LossConfigError(f"none of the classes {list(self.class_names)} is a "
                                  f"rolling-element fault class (inner_race/IR..., "
                                  f"outer_race/OR..., ball/B...); physics.term: "
                                  f"rolling_element has nothing to say about them, use "
                                  f"physics.term: journal or another trainer")
        self.used_locations = tuple(loc for loc in LOCATIONS if loc in used)

    def extra_repr(self) -> str:
        return (f"sampling_rate={self.sampling_rate:g}, classes={len(self.class_names)}, "
                f"band_hz={list(self.band_hz)}, harmonics={self.harmonics}, "
                f"slip_tolerance={self.slip_tolerance:g}, evidence_floor="
                f"{self.evidence_floor:g}")

    @staticmethod
    def shaft_speed(metadata: Optional[Mapping[str, Any]], batch: int,
                    device: torch.device) -> Tensor:
        """Shaft speed (rev/s) per window: ``metadata["speed_hz"]``, else ``rpm / 60``.

        Raises:
            ValueError: neither key is in ``metadata`` (the message names the fix).
        """
        speed = _metadata_values(metadata, "speed_hz", batch, device)
        rpm = _metadata_values(metadata, "rpm", batch, device)
        if speed is None and rpm is None:
            keys = sorted(metadata) if metadata else []
            raise ValueError(f"the rolling_element physics term needs each window's shaft "
                             f"speed, but the batch metadata has no 'speed_hz' or 'rpm' (keys: "
                             f"{keys}); build the loaders with build_dataloaders(config, "
                             f"with_metadata=True) from a dataset whose recordings carry "
                             f"their speed (an 'rpm' column in the import manifest)")
        if speed is None:
            return rpm / 60.0
        if rpm is not None:  # a window without speed_hz may still have its rpm
            speed = torch.where(torch.isfinite(speed), speed, rpm / 60.0)
        return speed

    @torch.no_grad()
    def location_scores(self, signal: Tensor, speed_hz: Tensor) -> Tensor:
        """Weighted mean log peak-to-background ratio ``[B, 3]`` per :data:`LOCATIONS`.

        Args:
            signal: ``[B, 1, L]`` or ``[B, L]`` windows.
            speed_hz: ``[B]`` shaft speed in rev/s (NaN rows give NaN scores).
        """
        with _no_autocast(signal.device):
            spectrum = envelope_spectrum(signal, self.sampling_rate, self.band_hz)
            n = signal.shape[-1]
            df = self.sampling_rate / n
            device = spectrum.device
            rates = speed_hz.float().to(device)[:, None] * torch.tensor(
                self.rates_per_hz, dtype=torch.float32, device=device)       # [B, 3]
            h = torch.arange(1, self.harmonics + 1, dtype=torch.float32, device=device)
            centers = rates[:, :, None] * h                                   # [B, 3, H]
            # Only the bins up to the highest search window are looked at.
            reach = float(torch.nan_to_num(centers, nan=0.0).max()) * 1.3 + 10 * df
            top = min(spectrum.shape[-1], int(math.ceil(reach / df)) + 1)
            freqs = torch.arange(top, dtype=torch.float32, device=device) * df
            e = spectrum[:, None, None, :top]                                 # [B, 1, 1, K]
            offset = (freqs - centers[..., None]).abs()                       # [B, 3, H, K]
            tol = torch.clamp(centers * self.slip_tolerance, min=df)[..., None]
            width = torch.clamp(0.3 * rates, min=8 * df)[:, :, None, None]
            peak = torch.where(offset <= tol, e, torch.zeros_like(e)).amax(dim=-1)
            around = (offset <= width) & (offset > tol) & (freqs > 0.5 * df)
            background = torch.where(around, e, torch.full_like(e, float("nan")))
            background = background.nanmedian(dim=-1).values
            ratio = torch.log((peak + _EPS) / (background + _EPS))            # [B, 3, H]
            weights = 1.0 / h
            score = (ratio * weights).sum(-1) / weights.sum()
            return torch.where(torch.isfinite(rates), score,
                               torch.full_like(score, float("nan")))

    @torch.no_grad()
    def location_evidence(self, signal: Tensor, metadata: Optional[Mapping[str, Any]]
                          ) -> Tensor:
        """Evidence ``[B, 3]`` in [0, 1] of a fault at each of :data:`LOCATIONS` (NaN speed:
        NaN).

        Raises:
            ValueError: no speed in ``metadata``.
        """
        speed = self.shaft_speed(metadata, signal.shape[0], signal.device)
        score = self.location_scores(signal, speed)
        return torch.sigmoid((score - self.evidence_center) / self.evidence_scale)

    @torch.no_grad()
    def evidence(self, signal: Tensor, metadata: Optional[Mapping[str, Any]] = None) -> Tensor:
        """Per-class evidence ``[B, C]`` in [0, 1] (before the floor).

        Args:
            signal: ``[B, 1, L]`` (or ``[B, L]``) input windows, any normalisation.
            metadata: ``{"speed_hz": [B]}`` or ``{"rpm": [B]}`` (required).

        Returns:
            float32 ``[B, len(class_names)]`` on the signal's device.

        Raises:
            ValueError: no speed in ``metadata``.
        """
        loc = self.location_evidence(signal, metadata)                       # [B, 3]
        known = torch.isfinite(loc).all(dim=-1, keepdim=True)
        loc = torch.nan_to_num(loc, nan=0.0)
        present = {name: loc[:, i] for i, name in enumerate(LOCATIONS)}
        neutral = torch.full_like(loc[:, 0], 0.5)
        columns = []
        for locs in self.locations:
            if locs is None:
                columns.append(neutral)
                continue
            value = torch.ones_like(neutral)
            for name in self.used_locations:
                value = value * (present[name] if name in locs else 1.0 - present[name])
            columns.append(value)
        evidence = torch.stack(columns, dim=-1)
        return torch.where(known, evidence, torch.full_like(evidence, 0.5))


def rolling_element_terms(config: "TrainingConfig", data: "DataBundle"
                          ) -> tuple[nn.Module, None]:
    """``physics.term: rolling_element``: :class:`EnvelopeSpectrumConsistencyLoss` and no
    constraint term (the oil-whirl constraint is a journal-bearing one).

    Args:
        config: the run's config (``physics.*`` settings; the bearing from
            :func:`resolve_bearing_geometry`).
        data: the loaded data (sampling rate, class names, the training set's metadata).

    Returns:
        ``(EnvelopeSpectrumConsistencyLoss, None)``.

    Raises:
        ConfigError: the training windows carry no ``rpm``/``speed_hz`` metadata, no class
            is a rolling-element class, or the band does not fit the sampling rate.

    Example:
        >>> physics, constraint = rolling_element_terms(config, data)   # doctest: +SKIP
    """
    pc = config.physics
    metadata = getattr(data.train_loader.dataset, "metadata", None) or {}
    if "rpm" not in metadata and "speed_hz" not in metadata:
        raise ConfigError(f"physics.term: rolling_element needs each recording's shaft speed, "
                          f"but {data.path} has no 'rpm' or 'speed_hz' metadata (columns: "
                          f"{sorted(metadata)}); import the recordings with an 'rpm' column, "
                          f"or use physics.term: journal")
    try:
        loss = EnvelopeSpectrumConsistencyLoss(
            data.sampling_rate, data.class_names, resolve_bearing_geometry(config),
            band_hz=pc.envelope_band_hz, harmonics=pc.harmonics,
            slip_tolerance=pc.slip_tolerance)
    except LossConfigError as exc:
        raise ConfigError(f"physics.term: rolling_element: {exc}") from None
    return loss, None
