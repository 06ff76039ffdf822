"""``PINNTrainer``: physics-informed training on ``(inputs, targets, metadata)`` batches.

Same loop, callbacks and checkpoints as ``CNNTrainer``; only the loss differs:
``loss = classification + λ · (frequency consistency + constraint_weight · constraints)``,
with λ constant or ramped up over the first epochs. History gains ``train_physics_loss``
and ``val_physics_loss`` (guide §1.2 optional keys) and the constraint term.

Example:
    >>> trainer = PINNTrainer(model, train_loader, val_loader, optimizer=opt,
    ...                       physics_loss=FrequencyConsistencyLoss(6400.0, class_names),
    ...                       constraint_loss=PhysicalConstraintLoss(class_names),
    ...                       physics_weight=0.1, warmup_epochs=3)
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

from pfdtrain.errors import TrainingError
from pfdtrain.training.cnn_trainer import CNNTrainer


class PINNTrainer(CNNTrainer):
    """``CNNTrainer`` whose loss adds physics terms computed from the signal and metadata.

    Args:
        *args: as ``CNNTrainer``; the loaders must yield ``(inputs, targets, metadata)``.
        physics_loss: ``FrequencyConsistencyLoss``-like module, ``(signal, logits, metadata)``.
        constraint_loss: ``PhysicalConstraintLoss``-like module, ``(logits, metadata)``, or None.
        physics_weight: λ once warmed up.
        constraint_weight: weight of the constraint term inside λ.
        warmup_epochs: λ grows linearly from 0 over this many epochs (0: constant).
        **kwargs: as ``CNNTrainer``.

    Example:
        >>> PINNTrainer(model, train_loader, physics_loss=loss, physics_weight=0.1).fit(10)
    """

    def __init__(self, *args: Any, physics_loss: nn.Module,
                 constraint_loss: Optional[nn.Module] = None, physics_weight: float = 0.1,
                 constraint_weight: float = 0.05, warmup_epochs: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.physics_loss = physics_loss.to(self.device)
        self.constraint_loss = constraint_loss.to(self.device) if constraint_loss else None
        self.physics_weight = physics_weight
        self.constraint_weight = constraint_weight
        self.warmup_epochs = warmup_epochs
        # Physics-informed models (HybridPINN) also take the operating conditions.
        self._model_takes_metadata = "metadata" in inspect.signature(
            self.unwrapped_model.forward).parameters

    @property
    def physics_lambda(self) -> float:
        """λ of the current epoch: ramps 0 → ``physics_weight`` over ``warmup_epochs``."""
        if self.warmup_epochs <= 0:
            return self.physics_weight
        return self.physics_weight * min(1.0, self.current_epoch / self.warmup_epochs)

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, torch.Tensor]]:
        if len(batch) < 3 or not isinstance(batch[2], dict):
            raise TrainingError("PINNTrainer needs batches (inputs, targets, metadata); build the "
                                "loaders with build_dataloaders(config, with_metadata=True)")
        inputs, targets, metadata = batch[0], batch[1], batch[2]
        logits = (self.model(inputs, metadata) if self._model_takes_metadata
                  else self.model(inputs))
        classification = self.criterion(logits, targets)
        # Spectra in float32: FFTs have no bf16 kernels and the evidence needs the precision.
        physics = self.physics_loss(inputs.float(), logits.float(), metadata)
        extra = {"classification_loss": classification, "physics_loss": physics}
        physics_total = physics
        if self.constraint_loss is not None:
            constraint = self.constraint_loss(logits.float(), metadata)
            extra["constraint_loss"] = constraint
            physics_total = physics_total + self.constraint_weight * constraint
        return classification + self.physics_lambda * physics_total, logits, targets, extra
