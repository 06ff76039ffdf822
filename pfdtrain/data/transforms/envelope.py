"""``data.transform: envelope``: the envelope spectrum of the band-passed window.

Example:
    >>> t = EnvelopeTransform(sampling_rate=12000, window_length=12000, band_hz=[2000, 4000])
    >>> t.describe()["params"]
    {'band_hz': [2000.0, 4000.0]}
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from pfdtrain.data.transforms.base import (InputTransform, TransformError, bin_frequencies,
                                           check_param_names, irfft_rows, keep_bins, magnitude,
                                           rfft_rows)

# band_hz: null -> [LOW, HIGH] x the sampling rate. A rule of thumb, not a tuned band: the
# upper part of the spectrum, where the structural resonances that the fault impacts excite
# usually dominate the shaft's own (low-frequency) vibration. Rolling-element simulator and
# CWRU at 12 kHz: 2.4-5.4 kHz (holds the 3-4 kHz resonances); journal simulator at 6.4 kHz:
# 1.28-2.88 kHz (holds the 1.5-2.5 kHz cavitation bursts).
DEFAULT_BAND_FRACTIONS = (0.2, 0.45)


def _band(value: Any) -> Optional[list[float]]:
    """``band_hz`` as ``[low, high]`` floats (or None), else TransformError with the fix."""
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok:
        raise TransformError(f"data.transform_params.band_hz = {value!r} must be [low, high] "
                             f"in Hz, e.g. [2000, 5000], or null for "
                             f"[{DEFAULT_BAND_FRACTIONS[0]:g}, {DEFAULT_BAND_FRACTIONS[1]:g}] "
                             f"x the sampling rate")
    low, high = float(value[0]), float(value[1])
    if low < 0:
        raise TransformError(f"data.transform_params.band_hz = {value!r}: frequencies must be "
                             f">= 0 Hz, e.g. [2000, 5000]")
    if high <= low:
        example = f"[{high:g}, {low:g}]" if high < low else "[2000, 5000]"
        raise TransformError(f"data.transform_params.band_hz = {value!r} is inverted or empty "
                             f"(low {low:g} Hz >= high {high:g} Hz); give [low, high] with "
                             f"low < high, e.g. {example}")
    return [low, high]


class EnvelopeTransform(InputTransform):
    """Envelope spectrum: band-pass, analytic-signal envelope, its amplitude spectrum.

    Physical meaning: a local bearing fault (a spall) is struck once per passage of a
    rolling element; each impact rings the structure's resonances, at a few kHz, whatever
    the fault. The *repetition rate* of those bursts is the fault's signature: BPFO for
    the outer race, BPFI (with shaft-rate sidebands) for the inner race, 2·BSF for a ball
    (docs/data.md §1b.1). The band-pass keeps the resonance band where the bursts stand
    above the shaft's vibration; the envelope demodulates it (a burst becomes a pulse);
    the envelope's spectrum shows the repetition rate and its harmonics as peaks
    (Randall & Antoni 2011, "Rolling element bearing diagnostics — a tutorial", MSSP 25).

    Steps, per window ``x`` of ``L`` samples (``X = rfft(x)``, bin ``k`` at ``k fs / L``):

    1. band-pass: ``X_b[k] = X[k]`` for ``low <= k fs / L <= high``, else 0 (an ideal
       FFT filter, no phase distortion);
    2. envelope: ``e = sqrt(x_b^2 + H{x_b}^2)`` with ``x_b = irfft(X_b)`` and its Hilbert
       transform ``H{x_b} = irfft(-j X_b)`` (the analytic signal's magnitude);
    3. ``E_k = 2 |rfft(e)_k| / L`` for ``k = 0 .. L/2``, with ``E_0 = 0`` (the envelope's
       mean, which only says how strong the band is, is removed).

    Args:
        sampling_rate: samples per second ``fs``.
        window_length: samples per window ``L``.
        band_hz: ``[low, high]`` in Hz, ``0 <= low < high <= fs / 2``; None: ``[0.2 fs,
            0.45 fs]`` (:data:`DEFAULT_BAND_FRACTIONS`, the upper spectrum where resonances
            usually are; pick the band of your machine's resonances, e.g. from a
            kurtogram (Antoni 2007), for real data).

    Raises:
        TransformError: a band that is not ``[low, high]``, inverted, empty, above the
            Nyquist frequency, or narrower than one FFT bin.

    Example:
        >>> t = EnvelopeTransform(12000, 4096)
        >>> t.params["band_hz"], t.output_length
        ([2400.0, 5400.0], 2049)
    """

    name = "envelope"
    what = ("envelope spectrum of the band-passed window (analytic signal), bins 0..fs/2 "
            "(window_length // 2 + 1 values): the fault impacts' repetition rates")
    defaults = {"band_hz": (None, "[low, high] band-pass in Hz before demodulation; null = "
                                  f"[{DEFAULT_BAND_FRACTIONS[0]:g}, "
                                  f"{DEFAULT_BAND_FRACTIONS[1]:g}] x the sampling rate")}

    def __init__(self, sampling_rate: float, window_length: int, **params: Any) -> None:
        super().__init__(sampling_rate, window_length, **params)
        fs = self.sampling_rate
        band = _band(self.params["band_hz"])
        if band is None:
            band = [DEFAULT_BAND_FRACTIONS[0] * fs, DEFAULT_BAND_FRACTIONS[1] * fs]
        nyquist = fs / 2
        if band[1] > nyquist:
            raise TransformError(f"data.transform_params.band_hz = {self.params['band_hz']!r} "
                                 f"reaches above the Nyquist frequency ({nyquist:g} Hz at "
                                 f"{fs:g} Hz sampling); set high <= {nyquist:g}, e.g. "
                                 f"[{min(band[0], 0.2 * fs):g}, {0.45 * fs:g}], or null for "
                                 f"the default band")
        self.params["band_hz"] = band  # resolved: checkpoints record the band in Hz
        freqs = bin_frequencies(self.window_length, fs)
        self.keep = (freqs >= band[0]) & (freqs <= band[1])
        if not bool(self.keep.any()):
            raise TransformError(f"data.transform_params.band_hz = {band!r} holds no FFT bin "
                                 f"of a {self.window_length}-sample window (bins every "
                                 f"{fs / self.window_length:g} Hz); widen the band")
        # The Hilbert transform's -j is defined on positive frequencies only: DC and the
        # Nyquist bin (real-valued, no sign of frequency) get 0.
        self.hilbert_keep = self.keep.clone()
        self.hilbert_keep[0] = False
        if self.window_length % 2 == 0:
            self.hilbert_keep[-1] = False

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Config-time checks: known parameter names, ``band_hz`` a ``[low, high]`` band."""
        check_param_names(cls, params)
        _band(params.get("band_hz"))

    @property
    def output_length(self) -> int:
        """``window_length // 2 + 1`` bins."""
        return self.window_length // 2 + 1

    def __call__(self, x: torch.Tensor, speed_hz: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """float32 ``[B, L // 2 + 1]`` envelope spectra of the windows ``x`` ``[B, L]``."""
        n = x.shape[-1]
        spectrum = rfft_rows(x)
        parts = torch.view_as_real(keep_bins(spectrum, self.hilbert_keep))
        # -j (a + jb) = b - ja, written with real parts only (exact, no complex multiply).
        rotated = torch.view_as_complex(torch.stack((parts[..., 1], -parts[..., 0]), dim=-1))
        # Both inverse FFTs of a window in one call ([2, K] per window): fewer calls, and
        # still a function of that window alone.
        both = irfft_rows(torch.stack((keep_bins(spectrum, self.keep), rotated), dim=1), n)
        banded, hilbert = both[:, 0], both[:, 1]
        envelope = torch.sqrt(banded * banded + hilbert * hilbert)
        out = magnitude(rfft_rows(envelope)) * (2.0 / n)
        out[:, 0] = 0.0  # the envelope's mean (the band's level), not a repetition rate
        return out
