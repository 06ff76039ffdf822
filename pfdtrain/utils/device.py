"""Choosing the device from a config value."""

from __future__ import annotations

from typing import Union

import torch

from pfdtrain.config.training_config import ConfigError


def resolve_device(name: Union[str, torch.device]) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an unavailable CUDA request fails clearly.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device = {str(name)!r} but CUDA is not available on this machine; "
                          f"use device: auto or device: cpu")
    return device
