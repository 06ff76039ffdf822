"""CNN front end + bidirectional LSTM + attention pooling for vibration windows.

Example:
    >>> import torch
    >>> model = CNNLSTM(num_classes=11, base_channels=8, hidden_size=16)
    >>> model(torch.randn(2, 1, 1024)).shape
    torch.Size([2, 11])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pfdtrain.models.layers import (VibrationClassifier, conv_bn_relu, init_weights,
                                    model_init_kwargs)

__all__ = ["AttentionPooling", "CNNLSTM"]


class AttentionPooling(nn.Module):
    """Attention pooling over time: a learned score per step, softmax over time, weighted sum.

    Args:
        input_size: feature size of each time step.
        attention_size: hidden size of the scoring MLP.

    Example:
        >>> import torch
        >>> AttentionPooling(8, 4)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 8])
    """

    def __init__(self, input_size: int, attention_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_size, attention_size)
        # No bias on the score: softmax is shift-invariant, so a bias would never get a gradient.
        self.score = nn.Linear(attention_size, 1, bias=False)

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """Attention weights ``[B, T]`` (each row sums to 1) for a sequence ``h`` ``[B, T, F]``.

        Args:
            h: the sequence to pool.

        Example:
            >>> AttentionPooling(8, 4).weights(torch.randn(2, 5, 8)).sum(dim=1).shape
            torch.Size([2])
        """
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)
        # Softmax in float32: under bf16 autocast the scores would otherwise be rounded to
        # ~3 significant digits before exponentiation.
        return torch.softmax(scores.float(), dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Pool ``h`` ``[B, T, F]`` to ``[B, F]``.

        Args:
            h: the sequence to pool.

        Example:
            >>> AttentionPooling(4, 4)(torch.randn(1, 3, 4)).shape
            torch.Size([1, 4])
        """
        w = self.weights(h)
        return torch.bmm(w.unsqueeze(1).to(h.dtype), h).squeeze(1)


class CNNLSTM(VibrationClassifier):
    """Strided conv front end, bidirectional LSTM over the feature sequence, attention pooling.

    Four strided conv blocks (strides 8, 2, 2, 2) turn a window into one feature vector per
    64 samples (a 6400-sample window gives 100 steps), short enough for the LSTM's
    step-by-step recurrence to stay cheap while each step still sees ~100 samples of context.
    Attention pooling lets the classifier weight the steps holding a transient (an impact,
    a rub) over quiet ones, and makes the model independent of the input length
    (any ``L >= 256``).

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1).
        dropout: dropout probability before the classifier, and between stacked LSTM layers
            when ``num_layers > 1``, in [0, 1).
        base_channels: width of the first conv; later convs use 2x this (>= 1).
        hidden_size: LSTM hidden size per direction (>= 1).
        num_layers: stacked LSTM layers (>= 1).

    Example:
        >>> import torch
        >>> model = CNNLSTM(num_classes=4, in_channels=2, base_channels=8, hidden_size=16)
        >>> model(torch.randn(3, 2, 512)).shape
        torch.Size([3, 4])
        >>> type(model)(**model.init_kwargs).init_kwargs == model.init_kwargs
        True
    """

    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.3,
                 base_channels: int = 32, hidden_size: int = 64, num_layers: int = 1) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = model_init_kwargs(
            num_classes, in_channels, dropout, base_channels=base_channels,
            hidden_size=hidden_size, num_layers=num_layers)
        (num_classes, in_channels, dropout, base_channels, hidden_size,
         num_layers) = self.init_kwargs.values()

        c = base_channels
        self.features = nn.Sequential(
            # Padding 28 keeps the output length at L / 8 for the 64-tap kernel.
            conv_bn_relu(in_channels, c, 64, stride=8, padding=28),
            conv_bn_relu(c, 2 * c, 3, stride=2),
            conv_bn_relu(2 * c, 2 * c, 3, stride=2),
            conv_bn_relu(2 * c, 2 * c, 3, stride=2),
        )
        self.lstm = nn.LSTM(2 * c, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.attention = AttentionPooling(2 * hidden_size, hidden_size)
        self._init_head(2 * hidden_size, num_classes, dropout)
        # init_weights leaves the LSTM and linears at PyTorch's default init (tanh/sigmoid gates).
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` to the attention-pooled embedding
        ``[B, num_features]`` (``num_features = 2 * hidden_size``).

        The embedding is taken before dropout and the classifier (e.g. for ``SupConLoss``).

        Args:
            x: float input windows, ``L >= 256``.

        Example:
            >>> model = CNNLSTM(num_classes=3, base_channels=4, hidden_size=8)
            >>> model.forward_features(torch.randn(2, 1, 256)).shape
            torch.Size([2, 16])
        """
        seq = self.features(x).transpose(1, 2)  # [B, T, C]: time becomes the LSTM's sequence
        h, _ = self.lstm(seq)
        return self.attention(h)
