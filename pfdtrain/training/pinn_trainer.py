"""``PINNTrainer``: physics-informed training on ``(inputs, targets, metadata)`` batches.

Same loop, callbacks and checkpoints as ``CNNTrainer``; only the loss differs:
``loss = classification + λ · (frequency consistency + constraint_weight · constraints)``,
combined by the guide's ``MultiTaskLoss``, with λ constant or ramped up over the first
epochs. ``physics.term`` picks the physics terms from
:data:`~pfdtrain.training.registry.PHYSICS_TERMS` (``journal``: frequency consistency +
oil-whirl constraint; ``rolling_element``: envelope-spectrum consistency, no constraint).
With ``data.label_fraction < 1`` the classification term covers the labeled windows only,
the physics term every window. History gains ``train_physics_loss`` and
``val_physics_loss`` (guide §1.2 optional keys), ``*_classification_loss`` and
``*_auxiliary_loss`` (the constraint term).

Example:
    >>> trainer = PINNTrainer(model, train_loader, val_loader, optimizer=opt,
    ...                       physics_loss=FrequencyConsistencyLoss(6400.0, class_names),
    ...                       constraint_loss=PhysicalConstraintLoss(class_names),
    ...                       physics_weight=0.1, warmup_epochs=3)
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from pfdtrain.config.training_config import ConfigError, PhysicsConfig
from pfdtrain.errors import TrainingError
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.training.physics_loss_functions import MultiTaskLoss
from pfdtrain.training.registry import physics_term_builder

if TYPE_CHECKING:
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle


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

    needs_metadata = True

    @classmethod
    def check_config(cls, config: "TrainingConfig") -> None:
        if config.data.transform != "raw":
            raise ConfigError(f"trainer: pinn computes band energies of the model input as a "
                              f"time signal at the sampling rate, but data.transform = "
                              f"{config.data.transform!r} feeds it another quantity; use "
                              f"data.transform: raw with it, or another trainer")
        if config.loss.name == "supcon":
            raise ConfigError("trainer: pinn combines classification and physics losses; it "
                              "does not add the supcon embedding term. Use loss.name ce, "
                              "label_smoothing or focal with trainer: pinn")
        if config.physics.term == "rolling_element":
            cls._check_rolling_element(config)

    @staticmethod
    def _check_rolling_element(config: "TrainingConfig") -> None:
        """The rolling term's settings that can be judged before the data is read."""
        # Deferred: the rolling term's module (and the simulator it uses) is loaded only
        # when the term is chosen.
        from pfdtrain.training.physics_rolling_element import resolve_bearing_geometry

        default_constraint = PhysicsConfig.__dataclass_fields__["constraint_weight"].default
        if config.physics.constraint_weight != default_constraint:
            raise ConfigError(f"physics.constraint_weight = {config.physics.constraint_weight} "
                              f"weighs the journal-bearing oil-whirl constraint, which "
                              f"physics.term: rolling_element does not use; remove it, or use "
                              f"physics.term: journal")
        if config.data.source == "synthetic" and config.synthetic.kind != "rolling_element":
            raise ConfigError(f"physics.term: rolling_element looks for rolling-element fault "
                              f"frequencies, but synthetic.kind = {config.synthetic.kind!r} "
                              f"has none of its classes; set synthetic.kind: rolling_element "
                              f"or physics.term: journal")
        resolve_bearing_geometry(config)  # refuses two disagreeing geometries

    @classmethod
    def from_config(cls, config: "TrainingConfig", data: "DataBundle",
                    common: dict[str, Any]) -> "PINNTrainer":
        pc = config.physics
        physics_loss, constraint_loss = physics_term_builder(pc.term)(config, data)
        return cls(**common, physics_loss=physics_loss, constraint_loss=constraint_loss,
                   physics_weight=pc.weight, constraint_weight=pc.constraint_weight,
                   warmup_epochs=pc.warmup_epochs)

    def __init__(self, *args: Any, physics_loss: nn.Module,
                 constraint_loss: Optional[nn.Module] = None, physics_weight: float = 0.1,
                 constraint_weight: float = 0.05, warmup_epochs: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.physics_weight = physics_weight
        self.constraint_weight = constraint_weight
        self.warmup_epochs = warmup_epochs
        # The guide's MultiTaskLoss (§3.4) combines the terms; its physics and auxiliary
        # weights are set to λ and λ·constraint_weight at the start of every batch.
        self.multitask = MultiTaskLoss(
            classification_weight=1.0, physics_weight=physics_weight,
            auxiliary_weight=physics_weight * constraint_weight, physics_loss=physics_loss,
            auxiliary_loss=constraint_loss, classification_loss=self.criterion).to(self.device)
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
        lam = self.physics_lambda
        self.multitask.w_phys.fill_(lam)
        self.multitask.w_aux.fill_(lam * self.constraint_weight)
        # Spectra in float32: FFTs have no bf16 kernels and the evidence needs the precision.
        terms = self.multitask.terms(logits.float(), targets, inputs.float(), metadata)
        total = terms.pop("total_loss")
        return total, logits, targets, terms
