"""Training-window augmentation: noise, amplitude, time shift and speed (docs/data.md §6.3).

What a diagnosis model meets after training is another machine state: a noisier sensor,
another gain, another phase of the shaft, another speed. Each transform here imitates one
of those changes on the *raw* training window, before normalisation:

* :class:`WhiteNoise` (``noise``): a noisier sensor or environment, at an SNR in dB.
* :class:`AmplitudeScale` (``scale``): another sensor sensitivity, mounting or load level.
* :class:`TimeShift` (``shift``): the window cut at another moment (another shaft phase).
* :class:`SpeedPerturbation` (``speed``): the machine a few percent faster or slower, so
  every characteristic frequency (shaft harmonics, BPFO, BPFI, ...) moves by the factor.

Draws never come from a running global RNG: window ``index`` in ``epoch`` draws transform
``k`` from ``numpy.random.default_rng([seed, epoch, index, k])``. So the same window gets
the same augmentation whatever the batch, worker or process that reads it, the single-window
and batched paths of :class:`~pfdtrain.data.windows.WindowDataset` agree bitwise, a resumed
run replays exactly what the interrupted one would have, and each epoch sees new draws.

The config's ``augment.transforms`` choices come from :data:`AUGMENTATIONS`.

Example:
    >>> aug = WindowAugmenter([WhiteNoise((10.0, 20.0), 1.0)], seed=0)
    >>> signal = np.sin(np.arange(4096) / 5).astype(np.float32)
    >>> x = aug.window(signal, 0, 0, 4096, 1024, epoch=0, index=0)
    >>> x.shape, x.dtype
    ((1024,), dtype('float32'))
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

# A reader of the raw signal: ``read(start, length)`` -> float32 [length] samples.
Reader = Callable[[int, int], np.ndarray]


def _applies(rng: np.random.Generator, probability: float) -> bool:
    """One uniform draw decides whether a transform applies (always drawn, so the draws
    after it do not depend on the probability)."""
    return bool(rng.random() < probability)


def _draw_in(rng: np.random.Generator, probability: float, bounds: tuple[float, float],
             otherwise: Optional[float]) -> Optional[float]:
    """A value uniform in ``bounds`` with chance ``probability``, else ``otherwise``; the
    value is drawn either way, so a window's later draws never depend on the coin."""
    applies = _applies(rng, probability)
    value = float(rng.uniform(*bounds))
    return value if applies else otherwise


class WhiteNoise:
    """Additive white Gaussian noise at an SNR drawn uniformly from ``snr_db``.

    Physical meaning: a noisier accelerometer, cable or plant (other machines, flow noise):
    broadband energy that buries the weak fault impacts. The noise power is the window's
    vibration power (its variance: a DC offset carries no fault information) divided by
    ``10 ** (snr / 10)``; each noise draw is scaled to exactly that power, so the achieved
    SNR is the drawn one.

    Args:
        snr_db: ``(min, max)`` signal-to-noise ratio range in dB.
        probability: chance that a window gets noise.

    Example:
        >>> noise = WhiteNoise((0.0, 20.0), probability=0.5)
        >>> noisy = noise.apply(x, noise.draw(rng), rng)   # snr None: x unchanged
    """

    name = "noise"

    def __init__(self, snr_db: Sequence[float], probability: float = 0.5) -> None:
        self.snr_db = (float(snr_db[0]), float(snr_db[1]))
        self.probability = float(probability)

    def draw(self, rng: np.random.Generator) -> Optional[float]:
        """The SNR in dB for this window, or None when it gets no noise."""
        return _draw_in(rng, self.probability, self.snr_db, None)

    def apply(self, x: np.ndarray, snr_db: Optional[float], rng: np.random.Generator
              ) -> np.ndarray:
        """``x`` plus white noise at ``snr_db`` of its variance (float32, a new array)."""
        if snr_db is None:
            return x
        noise_power = float(np.var(x, dtype=np.float64)) / 10 ** (snr_db / 10)
        noise = rng.standard_normal(x.shape)
        # Centred and scaled to the exact power, so the achieved SNR is the drawn one (not
        # only on average over windows).
        noise -= noise.mean()
        noise *= math.sqrt(noise_power / max(float(np.mean(noise * noise)), 1e-300))
        return (x + noise).astype(np.float32)


class AmplitudeScale:
    """Multiply the window by a factor drawn uniformly from ``factor``.

    Physical meaning: another sensor sensitivity or mounting (transfer path), or a stronger
    or weaker excitation. Per-window normalisation (``zscore``, ``minmax``, ``rms``) divides
    this back out, so it only changes what the model sees with ``data.normalization: none``.

    Args:
        factor: ``(min, max)`` gain range, > 0.
        probability: chance that a window is scaled.

    Example:
        >>> AmplitudeScale((0.8, 1.2), 1.0).apply(np.ones(3, np.float32), 1.5)
        array([1.5, 1.5, 1.5], dtype=float32)
    """

    name = "scale"

    def __init__(self, factor: Sequence[float], probability: float = 0.5) -> None:
        self.factor = (float(factor[0]), float(factor[1]))
        self.probability = float(probability)

    def draw(self, rng: np.random.Generator) -> float:
        """The gain for this window (1.0 when it is not scaled)."""
        return float(_draw_in(rng, self.probability, self.factor, 1.0))

    def apply(self, x: np.ndarray, gain: float) -> np.ndarray:
        """``x * gain`` in float32."""
        return x if gain == 1.0 else (x * np.float32(gain)).astype(np.float32)


class TimeShift:
    """Move the window's start by up to ``max_fraction`` of its length, either way.

    Physical meaning: the window cut at another instant, so the fault impacts fall at
    another phase of the shaft and cage rotation; the model must not learn where in the
    window the impacts are. The shifted window is read from the record itself when it lies
    inside the record (real samples); at a record's edge, where it does not, the window is
    rolled circularly by the offset instead (the samples that leave one end come back at the
    other: one seam, the same content).

    Args:
        max_fraction: largest shift as a fraction of the window length (0 < f <= 1).
        probability: chance that a window is shifted.

    Example:
        >>> TimeShift(0.5, 1.0).draw(rng, 1024)   # an offset in -512..512 samples
        137
    """

    name = "shift"

    def __init__(self, max_fraction: float = 0.5, probability: float = 0.5) -> None:
        self.max_fraction = float(max_fraction)
        self.probability = float(probability)

    def draw(self, rng: np.random.Generator, window_length: int) -> int:
        """The start offset in samples (0 when the window is not shifted)."""
        applies = _applies(rng, self.probability)
        most = int(self.max_fraction * window_length)
        offset = int(rng.integers(-most, most, endpoint=True))
        return offset if applies else 0


class SpeedPerturbation:
    """Resample the window as if the machine ran ``factor`` times as fast.

    Physical meaning: another shaft speed. Every characteristic frequency of a rotating
    machine (shaft harmonics, gear mesh, BPFO/BPFI/BSF/FTF, the journal bearing's whirl) is
    proportional to the speed, so all of them move by the factor together. The output sample
    ``n`` is the input at ``n * factor`` (linear interpolation), read from a span of about
    ``factor * window_length`` samples of the record: a tone at ``f`` Hz becomes one at
    ``f * factor`` Hz. (Structural resonances would not move with speed; this stretches
    them too, a small error for factors of a few percent.)

    Args:
        factor: ``(min, max)`` speed-ratio range, > 0 (e.g. ``(0.95, 1.05)``).
        probability: chance that a window is resampled.

    Example:
        >>> speed = SpeedPerturbation((0.95, 1.05), 1.0)
        >>> speed.apply(segment, 1.02, 1024).shape
        (1024,)
    """

    name = "speed"

    def __init__(self, factor: Sequence[float], probability: float = 0.5) -> None:
        self.factor = (float(factor[0]), float(factor[1]))
        self.probability = float(probability)

    def draw(self, rng: np.random.Generator) -> float:
        """The speed ratio for this window (1.0 when it is not resampled)."""
        return float(_draw_in(rng, self.probability, self.factor, 1.0))

    @staticmethod
    def span(window_length: int, factor: float) -> int:
        """Input samples needed for ``window_length`` outputs at ``factor``."""
        if factor == 1.0:
            return window_length
        return int(math.floor((window_length - 1) * factor)) + 2

    @staticmethod
    def apply(segment: np.ndarray, factor: float, window_length: int) -> np.ndarray:
        """``window_length`` samples of ``segment`` read at ``0, factor, 2 factor, ...``."""
        if factor == 1.0:
            return segment[:window_length]
        positions = np.arange(window_length, dtype=np.float64) * factor
        grid = np.arange(segment.shape[0], dtype=np.float64)
        return np.interp(positions, grid, segment.astype(np.float64)).astype(np.float32)


Transform = Union[WhiteNoise, AmplitudeScale, TimeShift, SpeedPerturbation]

# Transform name -> class; the config's augment.transforms choices derive from these keys.
# The order is the order of application: where the window is read (shift, speed), then its
# level (scale), then the sensor's noise on top of the result.
AUGMENTATIONS: dict[str, type] = {
    "shift": TimeShift,
    "speed": SpeedPerturbation,
    "scale": AmplitudeScale,
    "noise": WhiteNoise,
}
# Fixed stream number of each transform in the seed sequence: a transform's draws stay the
# same whichever other transforms are enabled.
_STREAM = {name: k for k, name in enumerate(AUGMENTATIONS)}


class WindowAugmenter:
    """Applies the enabled transforms to one training window, seeded by (seed, epoch, index).

    Args:
        transforms: transform objects (at most one of each kind), applied in the order of
            :data:`AUGMENTATIONS` whatever their order here.
        seed: the augmentation seed (``augment.seed``).

    Example:
        >>> aug = WindowAugmenter.from_config(config.augment)
        >>> x = aug.window(signals, start, record_start, record_end, 1024, epoch=3, index=17)
    """

    def __init__(self, transforms: Sequence[Transform], seed: int = 0) -> None:
        self.by_name: dict[str, Any] = {t.name: t for t in transforms}
        self.seed = int(seed)

    @classmethod
    def from_config(cls, augment: Any) -> Optional["WindowAugmenter"]:
        """The augmenter of an ``augment:`` config section; None when it is disabled."""
        if not augment.enabled or not augment.transforms:
            return None
        made = {
            "noise": lambda: WhiteNoise(augment.noise_snr_db, augment.noise_probability),
            "scale": lambda: AmplitudeScale(augment.scale_factor, augment.scale_probability),
            "shift": lambda: TimeShift(augment.shift_max_fraction, augment.shift_probability),
            "speed": lambda: SpeedPerturbation(augment.speed_factor, augment.speed_probability),
        }
        return cls([made[name]() for name in augment.transforms], seed=augment.seed)

    def _rng(self, epoch: int, index: int, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), int(index), _STREAM[name]])

    def speed_factor(self, epoch: int, index: int) -> float:
        """The speed ratio window ``index`` gets in ``epoch`` (1.0 without ``speed``): the
        same draw as :meth:`window` makes, so the window's speed metadata can follow it."""
        speed = self.by_name.get("speed")
        return float(speed.draw(self._rng(epoch, index, "speed"))) if speed else 1.0

    def window(self, signals: Union[np.ndarray, Reader], start: int, record_start: int,
               record_end: int, window_length: int, epoch: int, index: int) -> np.ndarray:
        """The augmented window ``index`` (float32 ``[window_length]``, a new array).

        Args:
            signals: the concatenated records (an array), or ``read(start, length)``.
            start: the window's own start sample in ``signals``.
            record_start: first sample of the window's record.
            record_end: one past the record's last sample.
            window_length: output samples.
            epoch: training epoch (new draws every epoch).
            index: the window's index in the dataset.
        """
        read = signals if callable(signals) else (
            lambda s, n: np.asarray(signals[s:s + n], dtype=np.float32))
        length = int(window_length)
        shift, speed = self.by_name.get("shift"), self.by_name.get("speed")
        offset = shift.draw(self._rng(epoch, index, "shift"), length) if shift else 0
        factor = speed.draw(self._rng(epoch, index, "speed")) if speed else 1.0
        span = SpeedPerturbation.span(length, factor)
        roll = 0
        if record_start <= start + offset and start + offset + span <= record_end:
            segment = read(start + offset, span)  # a real window elsewhere in the record
        else:
            roll = offset  # no room for the shifted window: roll this one circularly
            first = min(start, record_end - span)  # a longer span ends at the record's end
            if first >= record_start:
                segment = read(first, span)
            else:  # the record is shorter than the span: extend the window periodically
                segment = np.resize(read(start, length), span)
        x = SpeedPerturbation.apply(np.asarray(segment, dtype=np.float32), factor, length)
        if roll:
            x = np.roll(x, -roll)  # as the start moved by `roll` samples
        x = np.array(x, dtype=np.float32)  # own the data (never a view of the signals)
        scale = self.by_name.get("scale")
        if scale is not None:
            x = scale.apply(x, scale.draw(self._rng(epoch, index, "scale")))
        noise = self.by_name.get("noise")
        if noise is not None:
            rng = self._rng(epoch, index, "noise")
            x = noise.apply(x, noise.draw(rng), rng)
        return x
