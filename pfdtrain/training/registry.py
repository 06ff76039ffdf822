"""The trainer registry: ``trainer:`` names → trainer classes, loaded on first use.

Classes are named by ``"module:attribute"`` strings and imported only when asked for, so the
config (which takes its ``trainer`` choices from :data:`TRAINERS`) does not import every
trainer and what they import (the distillation trainer loads checkpoints, which needs the
config: a cycle if it were imported here).

Example:
    >>> sorted(TRAINERS)
    ['cnn', 'distillation', 'domain_adaptation', 'pinn']
    >>> trainer_class("pinn").__name__
    'PINNTrainer'
"""

from __future__ import annotations

import importlib

# name -> ("module:Class", what it does); insertion order is the order of help texts.
TRAINERS: dict[str, tuple[str, str]] = {
    "cnn": ("pfdtrain.training.cnn_trainer:CNNTrainer", "plain"),
    "pinn": ("pfdtrain.training.pinn_trainer:PINNTrainer",
             "physics-informed; needs operating metadata"),
    "distillation": ("pfdtrain.training.knowledge_distillation:DistillationTrainer",
                     "needs distillation.teacher"),
    "domain_adaptation": ("pfdtrain.training.domain_adaptation:DomainAdaptationTrainer",
                          "unlabeled target data: needs data.target_groups or "
                          "data.target_source"),
}


def trainer_class(name: str) -> type:
    """The trainer class registered as ``name``.

    Raises:
        KeyError: ``name`` is not registered (the message lists the registered names).
    """
    if name not in TRAINERS:
        raise KeyError(f"unknown trainer {name!r}; registered: {', '.join(TRAINERS)}")
    module, _, attribute = TRAINERS[name][0].partition(":")
    return getattr(importlib.import_module(module), attribute)
