"""Building blocks and argument checks shared by the models."""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from pfdtrain.errors import PfdtrainError


class ModelError(PfdtrainError, ValueError):
    """A model name or constructor argument is invalid; the message names the fix."""


class VibrationClassifier(nn.Module):
    """Base of the classifiers: ``forward(x) = forward_head(forward_features(x))``.

    A subclass defines ``forward_features(x) -> [B, num_features]`` (the pooled embedding,
    which SupCon trains on) and builds the head with ``_init_head``.
    """

    dropout: nn.Module
    classifier: nn.Module
    num_features: int

    def _init_head(self, num_features: int, num_classes: int, dropout: float) -> None:
        """Dropout and the linear classifier on an embedding of ``num_features``."""
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_features, num_classes)
        self.num_features = num_features

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map embeddings ``[B, num_features]`` to logits ``[B, num_classes]`` (dropout, linear).

        Args:
            features: the output of ``forward_features``.
        """
        return self.classifier(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` to logits ``[B, num_classes]``.

        Args:
            x: float input windows, ``L >= 256``.
        """
        return self.forward_head(self.forward_features(x))


class GlobalAvgPool1d(nn.Module):
    """Mean over time, ``[B, C, L] -> [B, C]``.

    Used instead of ``nn.AdaptiveAvgPool1d(1)``, whose CUDA backward has no deterministic
    implementation and would make ``deterministic: true`` runs fail on a GPU.

    Example:
        >>> GlobalAvgPool1d()(torch.ones(2, 3, 5)).shape
        torch.Size([2, 3])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1)


# Every model promises to accept any window of at least this many samples; the layer strides
# below are chosen so that each one still leaves >= 1 time step at this length.
MIN_INPUT_LENGTH = 256


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Validate an integer constructor argument and return it as a plain ``int``.

    Args:
        name: argument name, used in the error message.
        value: the value to check; bools and non-integral numbers are rejected.
        minimum: smallest allowed value.

    Example:
        >>> check_int("num_classes", 11, minimum=2)
        11
    """
    # bool is an Integral subclass, but `num_classes=True` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_dropout(value: Any, name: str = "dropout") -> float:
    """Validate a dropout probability (``0 <= p < 1``) and return it as a plain ``float``.

    Args:
        value: the probability to check.
        name: argument name, used in the error message.

    Example:
        >>> check_dropout(0.3)
        0.3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelError(f"{name} must be a float in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ModelError(f"{name} must be a float in [0, 1), got {value}")
    return float(value)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None) -> nn.Sequential:
    """Conv1d + BatchNorm1d + ReLU; the conv has no bias because BatchNorm cancels it.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: conv kernel width.
        stride: conv stride.
        padding: conv padding (default: ``(kernel_size - 1) // 2``, i.e. length / stride).

    Example:
        >>> conv_bn_relu(1, 16, kernel_size=64, stride=8)(torch.randn(2, 1, 256)).shape
        torch.Size([2, 16, 32])
    """
    if padding is None:
        padding = (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  bias=False),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
    )


def init_weights(module: nn.Module) -> None:
    """He-normal init for convs (they all feed ReLUs); unit-scale, zero-shift BatchNorm.

    Linear layers keep PyTorch's default init: a He init scaled by the classifier's small
    fan-out would start training from overconfident logits.

    Args:
        module: a layer, typically visited via ``model.apply(init_weights)``.

    Example:
        >>> _ = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU()).apply(init_weights)
    """
    if isinstance(module, nn.Conv1d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def model_init_kwargs(num_classes: Any, in_channels: Any, dropout: Any,
                      **sizes: Any) -> dict[str, Any]:
    """Validate the arguments every model takes (plus positive integer ``sizes``) and return
    them as plain builtins: the model's ``init_kwargs``, from which a checkpoint rebuilds it.

    Example:
        >>> model_init_kwargs(11, 1, 0.3, base_channels=16)["base_channels"]
        16
    """
    kwargs: dict[str, Any] = {"num_classes": check_int("num_classes", num_classes, minimum=2),
                              "in_channels": check_int("in_channels", in_channels),
                              "dropout": check_dropout(dropout)}
    kwargs.update({name: check_int(name, value) for name, value in sizes.items()})
    return kwargs
