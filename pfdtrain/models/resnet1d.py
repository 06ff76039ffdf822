"""ResNet-18 (BasicBlock, [2, 2, 2, 2]) adapted to 1-D vibration signals.

Example:
    >>> import torch
    >>> model = ResNet18_1D(num_classes=11, base_channels=8)
    >>> model(torch.randn(2, 1, 1024)).shape
    torch.Size([2, 11])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pfdtrain.models.layers import (GlobalAvgPool1d, VibrationClassifier, init_weights,
                                    model_init_kwargs)

__all__ = ["BasicBlock1D", "ResNet18_1D"]


class BasicBlock1D(nn.Module):
    """Two 3-tap conv/BN layers with an identity (or 1x1 projection) shortcut.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first conv; a projection shortcut is used when it is not 1 or
            the width changes.

    Example:
        >>> import torch
        >>> BasicBlock1D(8, 16, stride=2)(torch.randn(2, 8, 64)).shape
        torch.Size([2, 16, 32])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm1d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

        Args:
            x: ``[B, in_channels, T]``.

        Example:
            >>> BasicBlock1D(4, 4)(torch.randn(1, 4, 10)).shape
            torch.Size([1, 4, 10])
        """
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18_1D(VibrationClassifier):
    """ResNet-18 in 1-D: strided wide stem, four stages of two BasicBlocks, GAP, linear.

    The stem (15-tap conv, stride 4, then 3-wide max-pool, stride 2) cuts the signal 8x
    before the first stage, rather than the image ResNet's 4x: a 6400-sample window reaches
    stage 1 as 800 steps, which keeps the four full-width stages affordable on CPU. Stages
    2-4 halve the length again (64x overall), and global average pooling accepts any
    ``L >= 256``.

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1).
        dropout: dropout probability before the classifier, in [0, 1).
        base_channels: width of the stem and stage 1; stages 2-4 use 2x, 4x, 8x (>= 1).
            64 is the standard ResNet-18 width.

    Example:
        >>> import torch
        >>> model = ResNet18_1D(num_classes=4, in_channels=3, base_channels=8)
        >>> model(torch.randn(2, 3, 512)).shape
        torch.Size([2, 4])
        >>> type(model)(**model.init_kwargs).init_kwargs == model.init_kwargs
        True
    """

    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.3,
                 base_channels: int = 64) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = model_init_kwargs(
            num_classes, in_channels, dropout, base_channels=base_channels)
        num_classes, in_channels, dropout, base_channels = self.init_kwargs.values()

        c = base_channels
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, c, 15, stride=4, padding=7, bias=False),
            nn.BatchNorm1d(c),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        widths = [c, 2 * c, 4 * c, 8 * c]
        stages: list[nn.Module] = []
        c_in = c
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock1D(c_in, c_out, stride),
                                        BasicBlock1D(c_out, c_out)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = GlobalAvgPool1d()
        self._init_head(widths[-1], num_classes, dropout)
        # No zero-init of the last BN gamma per block: it would zero every conv2 gradient at
        # step 0, and the network is shallow enough to train well without it.
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` to the pooled embedding ``[B, num_features]``.

        The embedding is taken before dropout and the classifier (e.g. for ``SupConLoss``).

        Args:
            x: float input windows, ``L >= 256``.

        Example:
            >>> model = ResNet18_1D(num_classes=3, base_channels=4)
            >>> model.forward_features(torch.randn(2, 1, 256)).shape == (2, model.num_features)
            True
        """
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x)
