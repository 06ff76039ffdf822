"""Running a model on one batch of windows: shared by evaluation, prediction and adaptation.

Kept apart from :mod:`pfdtrain.evaluation.evaluate` so that the adaptation and grouping
modules, which evaluate uses, need not import it back (no import cycle).

Example:
    >>> logits = forward_batch(model, next(iter(loader)), torch.device("cpu"),
    ...                        model_takes_metadata(model))
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from torch import nn


def model_takes_metadata(model: nn.Module) -> bool:
    """True for physics-informed models whose ``forward`` accepts operating conditions."""
    return "metadata" in inspect.signature(model.forward).parameters


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def forward_batch(model: nn.Module, batch: Sequence[Any], device: torch.device,
                  takes_metadata: bool) -> torch.Tensor:
    """Logits of one DataLoader batch ``(x, ...)``: the inputs, plus the operating metadata
    (third element) for a model that takes it. Labels (second element) are never used.

    Example:
        >>> logits = forward_batch(model, next(iter(loader)), torch.device("cpu"), False)
    """
    inputs = batch[0].to(device, non_blocking=True)
    if takes_metadata and len(batch) > 2:
        return model(inputs, _to_device(batch[2], device))
    return model(inputs)
