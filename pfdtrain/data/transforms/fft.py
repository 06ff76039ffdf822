"""``data.transform: fft``: the single-sided amplitude spectrum of each window.

Example:
    >>> t = FFTTransform(sampling_rate=1000, window_length=1000)
    >>> n = torch.arange(1000, dtype=torch.float32)
    >>> int(t(torch.sin(2 * torch.pi * 50 * n / 1000)[None]).argmax())   # bin 50 = 50 Hz
    50
"""

from __future__ import annotations

from typing import Optional

import torch

from pfdtrain.data.transforms.base import InputTransform, magnitude, rfft_rows


class FFTTransform(InputTransform):
    """Magnitude spectrum ``A_k = 2 |X_k| / L`` for bins ``k = 0 .. L/2`` (``L//2 + 1`` values).

    Physical meaning: the vibration's energy per frequency, ``k · fs / L`` Hz per bin. Shaft
    harmonics, gear mesh and the bearing's characteristic frequencies become peaks at fixed
    positions, whatever the phase at which the window was cut (the spectrum is
    shift-invariant). A sinusoid of amplitude ``a`` at a bin frequency gives ``A_k = a``;
    the DC bin (zero after ``zscore`` normalisation) is ``2 |X_0| / L`` as well. No window
    function is applied: the model learns from the leakage as it is, and a Hann window
    would only widen every peak.

    Args:
        sampling_rate: samples per second.
        window_length: samples per window ``L``.

    Example:
        >>> FFTTransform(12000, 1024).output_length
        513
    """

    name = "fft"
    what = "amplitude spectrum 2 abs(X_k) / L, bins 0..fs/2 (window_length // 2 + 1 values)"

    @property
    def output_length(self) -> int:
        """``window_length // 2 + 1`` bins."""
        return self.window_length // 2 + 1

    def __call__(self, x: torch.Tensor, speed_hz: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """float32 ``[B, L // 2 + 1]`` amplitude spectra of the windows ``x`` ``[B, L]``."""
        return magnitude(rfft_rows(x)) * (2.0 / x.shape[-1])
