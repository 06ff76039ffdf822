"""WDCNN: the deep CNN with wide first-layer kernels of Zhang et al. (2017).

Reference: W. Zhang, G. Peng, C. Li, Y. Chen, Z. Zhang, "A New Deep Learning Model for
Fault Diagnosis with Good Anti-Noise and Domain Adaptation Ability on Raw Vibration
Signals", Sensors 17(2):425, 2017.

Example:
    >>> import torch
    >>> model = WDCNN(num_classes=10)
    >>> model(torch.randn(2, 1, 2048)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pfdtrain.models.layers import VibrationClassifier, init_weights, model_init_kwargs

__all__ = ["WDCNN", "BatchNorm1dAnyBatch", "adaptive_max_pool"]

WIDTHS = (16, 32, 64, 64, 64)  # the paper's channels: the wide conv, then four 3-tap convs
POOLED_STEPS = 3  # time steps the last block is pooled to (the paper's at 2048 samples)
FC_UNITS = 100  # the paper's fully connected layer


def adaptive_max_pool(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, C, L] -> [B, C, steps]``: the max over ``steps`` bins as
    ``nn.AdaptiveMaxPool1d`` cuts them (bin ``i`` spans ``floor(i L / steps)`` to
    ``ceil((i + 1) L / steps)``), built from slices and ``amax``, whose backward is
    deterministic on CUDA (the adaptive pool's is not, so ``deterministic: true`` would fail).

    Example:
        >>> adaptive_max_pool(torch.arange(8.0).view(1, 1, 8), 3).tolist()
        [[[2.0, 5.0, 7.0]]]
    """
    length = x.shape[-1]
    bins = [x[..., (i * length) // steps:-(-((i + 1) * length) // steps)].amax(dim=-1)
            for i in range(steps)]
    return torch.stack(bins, dim=-1)


class BatchNorm1dAnyBatch(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also takes one value per channel in training mode (a batch of
    one window reaching a length-1 layer): such a batch has no spread, so it is normalised
    with the running statistics, which it leaves unchanged. Otherwise exactly the parent.

    Example:
        >>> BatchNorm1dAnyBatch(4).train()(torch.randn(1, 4, 1)).shape
        torch.Size([1, 4, 1])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() == x.shape[1]:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, eps=self.eps)
        return super().forward(x)


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                padding: int) -> nn.Sequential:
    """Conv1d (no bias: the batch norm cancels it) + batch norm + ReLU + max-pool 2."""
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  bias=False),
        BatchNorm1dAnyBatch(out_channels), nn.ReLU(inplace=True),
        nn.MaxPool1d(2, ceil_mode=True))


class WDCNN(VibrationClassifier):
    """WDCNN (Zhang et al., Sensors 2017) for raw vibration windows.

    Layers, as in the paper's Table 1: a wide first convolution (16 channels, kernel 64,
    stride 16) + batch norm + ReLU + max-pool 2, then four blocks of a 3-tap convolution
    (32, 64, 64, 64 channels) + batch norm + ReLU + max-pool 2, a fully connected layer of
    100 units + batch norm + ReLU (the embedding, :meth:`forward_features`), then dropout
    and the linear classifier.

    Any input length works, not only the paper's 2048 samples: every 3-tap convolution is
    padded by one and every pool rounds up (ceil mode), and the last block's output is
    max-pooled to 3 time steps (:func:`adaptive_max_pool`) before the fully connected
    layer, so it always sees 64 × 3 = 192 values — the paper's flatten size at 2048
    samples (where the paper's unpadded fifth convolution gives 6 steps, pooled to 3; here
    the padded one gives 8, pooled to 4, then to 3). Inputs of at least 256 samples (the
    package's minimum) leave one step after the last block; the first convolution needs 16.
    A batch norm that gets one value per channel in training mode (a single window at the
    fully connected layer, or at a block whose output is one step long) normalises with its
    running statistics (:class:`BatchNorm1dAnyBatch`): a batch of one has no spread.

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1).
        dropout: dropout probability before the classifier, in [0, 1) (the paper has none;
            0 reproduces it).

    Example:
        >>> import torch
        >>> model = WDCNN(num_classes=4)
        >>> model.forward_features(torch.randn(3, 1, 256)).shape
        torch.Size([3, 100])
        >>> type(model)(**model.init_kwargs).init_kwargs == model.init_kwargs
        True
    """

    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = model_init_kwargs(num_classes, in_channels, dropout)
        num_classes, in_channels, dropout = self.init_kwargs.values()

        # Padding 24: 2048 samples -> 128 steps, the paper's first-layer output.
        blocks = [_conv_block(in_channels, WIDTHS[0], 64, stride=16, padding=24)]
        blocks += [_conv_block(c_in, c_out, 3, stride=1, padding=1)
                   for c_in, c_out in zip(WIDTHS[:-1], WIDTHS[1:])]
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(WIDTHS[-1] * POOLED_STEPS, FC_UNITS, bias=False)  # BN follows
        self.fc_bn = BatchNorm1dAnyBatch(FC_UNITS)
        self._init_head(FC_UNITS, num_classes, dropout)
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` to the 100-unit embedding ``[B, 100]``.

        Args:
            x: float input windows, ``L >= 256`` (at least 16 samples work).

        Example:
            >>> WDCNN(num_classes=3).forward_features(torch.randn(2, 1, 600)).shape
            torch.Size([2, 100])
        """
        h = self.fc(adaptive_max_pool(self.features(x), POOLED_STEPS).flatten(1))
        return F.relu(self.fc_bn(h))
