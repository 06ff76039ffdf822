"""WDCNN-style 1-D CNN for raw vibration windows.

Example:
    >>> import torch
    >>> model = CNN1D(num_classes=11)
    >>> model(torch.randn(2, 1, 6400)).shape
    torch.Size([2, 11])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pfdtrain.models.layers import (GlobalAvgPool1d, VibrationClassifier, conv_bn_relu,
                                    init_weights, model_init_kwargs)

__all__ = ["CNN1D"]


class CNN1D(VibrationClassifier):
    """Fast WDCNN-style 1-D CNN: a wide strided first conv, four small conv blocks, GAP, linear.

    The first layer (kernel 64, stride 8) acts as a learned filter bank that also cuts the
    sequence 8x, so the later 3-tap blocks run on short sequences and the network stays cheap
    on long windows. Global average pooling makes it independent of the input length
    (any ``L >= 256``).

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1).
        dropout: dropout probability before the classifier, in [0, 1).
        base_channels: width of the first conv; later blocks use 2x and 4x this (>= 1).

    Example:
        >>> import torch
        >>> model = CNN1D(num_classes=4, in_channels=2, base_channels=8)
        >>> model(torch.randn(3, 2, 1024)).shape
        torch.Size([3, 4])
        >>> type(model)(**model.init_kwargs).init_kwargs == model.init_kwargs
        True
    """

    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.3,
                 base_channels: int = 16) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = model_init_kwargs(
            num_classes, in_channels, dropout, base_channels=base_channels)
        num_classes, in_channels, dropout, base_channels = self.init_kwargs.values()

        c = base_channels
        widths = [c, 2 * c, 4 * c, 4 * c, 4 * c]
        # Padding 28 keeps the output length at L / 8 for the 64-tap kernel.
        layers: list[nn.Module] = [conv_bn_relu(in_channels, widths[0], 64, stride=8, padding=28),
                                   nn.MaxPool1d(2)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            # ceil_mode keeps odd lengths from losing their last sample, so L = 256 still
            # leaves one time step after the last pool.
            layers += [conv_bn_relu(c_in, c_out, 3), nn.MaxPool1d(2, ceil_mode=True)]
        self.features = nn.Sequential(*layers)
        self.pool = GlobalAvgPool1d()
        self._init_head(widths[-1], num_classes, dropout)
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` to the pooled embedding ``[B, num_features]``.

        The embedding is taken before dropout and the classifier (e.g. for ``SupConLoss``).

        Args:
            x: float input windows, ``L >= 256``.

        Example:
            >>> model = CNN1D(num_classes=3, base_channels=8)
            >>> model.forward_features(torch.randn(2, 1, 256)).shape == (2, model.num_features)
            True
        """
        return self.pool(self.features(x))
