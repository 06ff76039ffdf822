"""Optimizer and learning-rate scheduler factories (guide §6.3: ``create_optimizer``,
``create_scheduler``)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.optim import lr_scheduler as sched

from pfdtrain.config.training_config import ConfigError, OptimizerConfig, SchedulerConfig

# Schedulers that advance once per optimizer step; every other one steps once per epoch.
PER_STEP_SCHEDULERS = frozenset({"onecycle", "cosine_warmup"})

_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                nn.modules.normalization.RMSNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group (weights) and an undecayed one (biases, norms).

    Decaying a bias or a normalisation scale only shrinks it toward zero without
    regularising the function, so the standard practice is to exempt them.

    Args:
        model: the network.
        weight_decay: decay applied to the first group.

    Example:
        >>> groups = parameter_groups(model, 0.01)
        >>> [g["weight_decay"] for g in groups]
        [0.01, 0.0]
    """
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, _NORM_LAYERS):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in no_decay_ids or name.endswith("bias") or param.ndim <= 1:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def create_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """Build the optimizer named in the config, without weight decay on biases and norms.

    Args:
        model: the network whose parameters are optimised.
        config: the ``optimizer`` section.

    Example:
        >>> opt = create_optimizer(model, OptimizerConfig(name="sgd", lr=0.1))
    """
    groups = parameter_groups(model, config.weight_decay)
    if (len(config.betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                          and 0.0 <= b < 1.0 for b in config.betas)):
        raise ConfigError(f"optimizer.betas must hold two numbers in [0, 1), e.g. [0.9, 0.999]; "
                          f"got {config.betas!r}")
    betas = (float(config.betas[0]), float(config.betas[1]))
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.eps)
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas, eps=config.eps)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum, eps=config.eps)
    raise ConfigError(f"optimizer.name = {config.name!r} is not one of adamw, adam, sgd, rmsprop")


def create_scheduler(optimizer: torch.optim.Optimizer, config: SchedulerConfig, num_epochs: int,
                     steps_per_epoch: int) -> Optional[sched.LRScheduler | sched.ReduceLROnPlateau]:
    """Build the learning-rate scheduler named in the config (None for ``none``).

    Per-step schedules (``onecycle``, ``cosine_warmup``) are sized in optimizer steps, so
    ``steps_per_epoch`` must count optimizer steps (batches / accumulation, rounded up).

    Args:
        optimizer: the optimizer to schedule.
        config: the ``scheduler`` section.
        num_epochs: total epochs of the run.
        steps_per_epoch: optimizer steps per epoch.

    Example:
        >>> scheduler = create_scheduler(opt, SchedulerConfig(name="plateau"), 20, 50)
    """
    name = config.name
    total_steps = max(1, num_epochs * steps_per_epoch)
    if name == "none":
        return None
    if name == "step":
        return sched.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if name == "exponential":
        return sched.ExponentialLR(optimizer, gamma=config.gamma)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=num_epochs, eta_min=config.eta_min)
    if name == "cosine_warmup":
        warmup = min(total_steps - 1, int(round(config.warmup_epochs * steps_per_epoch)))
        if warmup <= 0:
            return sched.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=config.eta_min)
        return sched.SequentialLR(optimizer, schedulers=[
            sched.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0,
                           total_iters=warmup),
            sched.CosineAnnealingLR(optimizer, T_max=total_steps - warmup, eta_min=config.eta_min),
        ], milestones=[warmup])
    if name == "onecycle":
        max_lr = config.max_lr if config.max_lr is not None else optimizer.param_groups[0]["lr"]
        return sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps,
                                pct_start=config.pct_start)
    if name == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode=config.mode, factor=config.factor,
                                       patience=config.patience, threshold=config.threshold,
                                       min_lr=config.min_lr)
    raise ConfigError(f"scheduler.name = {name!r} is unknown")


def optimizer_steps_per_epoch(num_batches: int, accumulation_steps: int) -> int:
    """Optimizer steps in an epoch of ``num_batches`` (a partial last window still steps)."""
    return math.ceil(num_batches / accumulation_steps)
