"""``data.transform: raw``: the normalised time window itself (the default).

Example:
    >>> x = torch.randn(2, 1024)
    >>> RawTransform(12000, 1024)(x) is x
    True
"""

from __future__ import annotations

from typing import Optional

import torch

from pfdtrain.data.transforms.base import InputTransform


class RawTransform(InputTransform):
    """The identity: the model sees the normalised time window, ``window_length`` samples.

    Checkpoints that record no transform (runs made before transforms existed) mean this.

    Args:
        sampling_rate: samples per second (unused).
        window_length: samples per window (the output length).

    Example:
        >>> RawTransform(12000, 1024).output_length
        1024
    """

    name = "raw"
    what = "the normalised time window (window_length samples)"

    def __call__(self, x: torch.Tensor, speed_hz: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """``x`` unchanged (the same tensor: the loader's path is the one before transforms)."""
        return x
