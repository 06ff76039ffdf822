"""The trainer registry: ``trainer:`` names → trainer classes, loaded on first use.

Classes are named by ``"module:attribute"`` strings and imported only when asked for, so the
config (which takes its ``trainer`` choices from :data:`TRAINERS`) does not import every
trainer and what they import (the distillation trainer loads checkpoints, which needs the
config: a cycle if it were imported here).

:data:`PHYSICS_TERMS` does the same for ``physics.term`` (the PINN trainer's physics loss):
each entry names a builder ``(config, data) -> (physics_loss, constraint_loss or None)``.

Example:
    >>> list(PHYSICS_TERMS)
    ['journal', 'rolling_element']
    >>> sorted(TRAINERS)
    ['cnn', 'distillation', 'domain_adaptation', 'pinn']
    >>> trainer_class("pinn").__name__
    'PINNTrainer'
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

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

# physics.term -> ("module:builder", what it does); the first entry is the default.
PHYSICS_TERMS: dict[str, tuple[str, str]] = {
    "journal": ("pfdtrain.training.physics_loss_functions:journal_terms",
                "journal-bearing band evidence (FrequencyConsistencyLoss) + oil-whirl "
                "constraint (PhysicalConstraintLoss)"),
    "rolling_element": ("pfdtrain.training.physics_rolling_element:rolling_element_terms",
                        "envelope-spectrum evidence at BPFO, BPFI, 2 BSF "
                        "(EnvelopeSpectrumConsistencyLoss); needs rpm or speed_hz metadata"),
}


def _resolve(registry: dict[str, tuple[str, str]], name: str, what: str) -> Any:
    if name not in registry:
        raise KeyError(f"unknown {what} {name!r}; registered: {', '.join(registry)}")
    module, _, attribute = registry[name][0].partition(":")
    return getattr(importlib.import_module(module), attribute)


def physics_term_builder(name: str) -> Callable[..., tuple[Any, Any]]:
    """The builder registered as ``physics.term`` ``name``: ``(config, data) ->
    (physics_loss, constraint_loss or None)``.

    Raises:
        KeyError: ``name`` is not registered (the message lists the registered names).

    Example:
        >>> physics_term_builder("journal").__name__
        'journal_terms'
    """
    return _resolve(PHYSICS_TERMS, name, "physics term")


def trainer_class(name: str) -> type:
    """The trainer class registered as ``name``.

    Raises:
        KeyError: ``name`` is not registered (the message lists the registered names).
    """
    return _resolve(TRAINERS, name, "trainer")
