"""``data.transform: order``: angular resampling to a fixed number of samples per revolution.

Example:
    >>> t = OrderTransform(12000, 6000, samples_per_rev=64, revolutions=8)
    >>> t(torch.randn(2, 6000), torch.tensor([25.0, 40.0])).shape   # 1500 and 2400 rpm
    torch.Size([2, 512])
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from pfdtrain.data.transforms.base import (InputTransform, TransformError, bin_frequencies,
                                           check_param_names, irfft_rows, keep_bins, rfft_rows)


def _positive_int(params: Mapping[str, Any], key: str, least: int, example: int) -> int:
    value = params.get(key, OrderTransform.defaults[key][0])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or int(value) < least:
        raise TransformError(f"data.transform_params.{key} = {value!r} must be a whole number "
                             f">= {least}, e.g. {example}")
    return int(value)


class OrderTransform(InputTransform):
    """The window resampled in shaft angle: ``samples_per_rev`` samples per revolution,
    ``revolutions`` revolutions (``samples_per_rev × revolutions`` values).

    Physical meaning: every characteristic frequency of a rotating machine is a fixed
    multiple of the shaft speed (an *order*): BPFO ≈ 3.6 and BPFI ≈ 5.4 orders for the
    SKF 6205, gear mesh = the number of teeth, oil whirl ≈ 0.42-0.48. Sampled at fixed
    angle steps instead of fixed time steps, a fault at order ``k`` completes ``k`` cycles
    per revolution at any speed, so the model sees the same pattern at 1200 and at 3000 rpm
    (computed order tracking; Fyfe & Munck 1997, Randall 2011 "Vibration-based condition
    monitoring" §3.6). The recording's speed is taken as constant (its ``rpm`` metadata, or
    ``speed_hz`` × 60): there is no tachometer channel to follow speed changes within it.

    Steps, per window ``x`` of ``L`` samples at ``fs`` and shaft speed ``f_r`` rev/s:

    1. anti-alias: when the output is coarser than the input (``samples_per_rev · f_r <
       fs``), the FFT bins above the new Nyquist frequency ``samples_per_rev · f_r / 2``
       (order ``samples_per_rev / 2``) are set to zero;
    2. output sample ``n`` is the signal at angle ``n / samples_per_rev`` revolutions, i.e.
       at input position ``n · fs / (samples_per_rev · f_r)``, by linear interpolation.

    The output length is fixed by the config (not by the data), so a checkpoint's input
    length holds for any other dataset; a window must cover ``revolutions`` turns at its
    recording's speed, and the slowest recording decides (:meth:`check_speeds`). Orders
    above ``samples_per_rev / 2`` are lost: structural resonances (fixed in Hz, not in
    orders) move across orders with the speed; use ``envelope`` to see them demodulated.

    Args:
        sampling_rate: samples per second ``fs``.
        window_length: samples per window ``L``.
        samples_per_rev: output samples per shaft revolution (>= 4; default 128: orders up
            to 64, above the bearing tones' low harmonics).
        revolutions: revolutions per window (>= 1; default 8).

    Raises:
        TransformError: a parameter that is not a whole number in range.

    Example:
        >>> OrderTransform(12000, 6400).output_length
        1024
    """

    name = "order"
    what = ("the window resampled at samples_per_rev samples per shaft revolution for "
            "revolutions turns (needs each recording's rpm or speed_hz): fault orders "
            "independent of the speed")
    defaults = {"samples_per_rev": (128, "output samples per shaft revolution (orders up to "
                                         "half of it are kept)"),
                "revolutions": (8, "shaft revolutions per model input; every window must "
                                   "cover them at its recording's speed")}
    needs_speed = True

    def __init__(self, sampling_rate: float, window_length: int, **params: Any) -> None:
        super().__init__(sampling_rate, window_length, **params)
        self.samples_per_rev = _positive_int(self.params, "samples_per_rev", 4, 128)
        self.revolutions = _positive_int(self.params, "revolutions", 1, 8)
        self.params = {"samples_per_rev": self.samples_per_rev,
                       "revolutions": self.revolutions}
        self._freqs = bin_frequencies(self.window_length, self.sampling_rate)

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Config-time checks: known names, whole numbers in range."""
        check_param_names(cls, params)
        _positive_int(params, "samples_per_rev", 4, 128)
        _positive_int(params, "revolutions", 1, 8)

    @property
    def output_length(self) -> int:
        """``samples_per_rev × revolutions``."""
        return self.samples_per_rev * self.revolutions

    def samples_needed(self, speed_hz: float) -> int:
        """Window samples the output reads at ``speed_hz`` rev/s."""
        step = self.sampling_rate / (self.samples_per_rev * speed_hz)
        return int(math.floor((self.output_length - 1) * step)) + 2

    def check_speeds(self, speed_hz: np.ndarray, record_ids: Sequence[str]) -> None:
        """Refuse windows too short for ``revolutions`` turns at the slowest recording.

        Raises:
            TransformError: names the record, its speed, and the window length or the
                number of revolutions that would fit.
        """
        if len(speed_hz) == 0:
            return
        slowest = int(np.argmin(speed_hz))
        speed = float(speed_hz[slowest])
        need = self.samples_needed(speed)
        if need <= self.window_length:
            return
        fs, length = self.sampling_rate, self.window_length
        turns = length * speed / fs
        fits = int(math.floor((length - 2) * self.samples_per_rev * speed / fs + 1)
                   // self.samples_per_rev)
        fix = f"set data.window_length >= {need}"
        if fits >= 1:
            fix += f" or data.transform_params.revolutions <= {fits}"
        raise TransformError(
            f"data.transform: order reads {self.revolutions} shaft revolutions per window, but "
            f"a window of data.window_length = {length} samples ({length / fs:g} s at {fs:g} "
            f"Hz) covers only {turns:.3g} revolutions of the slowest recording "
            f"({record_ids[slowest]}: {speed * 60:g} rpm); {fix}")

    def __call__(self, x: torch.Tensor, speed_hz: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """float32 ``[B, samples_per_rev × revolutions]``: windows ``x`` ``[B, L]`` in angle.

        Args:
            x: float32 ``[B, L]`` normalised windows.
            speed_hz: ``[B]`` shaft speed of each window's recording, rev/s.
        """
        if speed_hz is None:
            raise TransformError("data.transform: order needs each window's shaft speed; "
                                 "give the recordings rpm or speed_hz metadata")
        n = x.shape[-1]
        speed = speed_hz.to(torch.float64).reshape(-1)
        # New Nyquist frequency in Hz; rows sampled more coarsely than now are low-passed.
        cutoff = self.samples_per_rev * speed / 2
        coarse = cutoff < self.sampling_rate / 2
        if bool(coarse.any()):
            keep = self._freqs[None, :] <= cutoff[coarse, None]
            x = x.clone()
            x[coarse] = irfft_rows(keep_bins(rfft_rows(x[coarse]), keep), n)
        step = self.sampling_rate / (self.samples_per_rev * speed)  # input samples per output
        position = torch.arange(self.output_length, dtype=torch.float64)[None, :] * step[:, None]
        left = torch.floor(position).to(torch.int64).clamp_(0, n - 2)
        frac = (position - left.to(torch.float64)).to(x.dtype)
        x0 = torch.gather(x, 1, left)
        x1 = torch.gather(x, 1, left + 1)
        # Two products and a sum, each correctly rounded (no fused lerp): batch-independent.
        return x0 * (1.0 - frac) + x1 * frac
