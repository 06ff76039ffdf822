"""``DomainAdaptationTrainer``: unsupervised domain adaptation in the one training loop.

Every training step takes a labeled *source* batch (the train loader) and an unlabeled
*target* batch (``DataBundle.target_loader``: labels all -1, never read); one forward pass of
``model.forward_features`` on both, the classifier head on the source part:

``loss = cross-entropy(source logits, source labels) + domain.weight * domain_loss(f_s, f_t)``

with the domain loss chosen by name from
:data:`~pfdtrain.training.domain_losses.DOMAIN_LOSSES` (``coral``, ``mmd``, ``dann``).
Only ``compute_loss`` and the optimizer/scheduler/checkpoint hooks are extended: the loop,
metrics, callbacks and checkpoint format are ``CNNTrainer``'s. History gains
``train_domain_loss`` (the unweighted domain loss) and ``train_classification_loss``;
validation is the source validation split with the plain classification loss, so early
stopping and ``best_model.pth`` never look at the target (whose labels the trainer never
reads).

The target stream is one long sequence of passes over the target loader, pass ``k``
shuffled by the target sampler's epoch ``k``; ``target_step`` (target batches consumed)
fixes the position, is saved in every checkpoint (``domain_state``) and rebuilds the
stream after a resume, also in the middle of an epoch, so resume stays bitwise exact.

DANN's domain classifier has parameters: they get an optimizer (and a scheduler) of their
own, built from the same ``optimizer:``/``scheduler:`` settings as the model's, stepped
with it (after unscaling, clipped to ``max_grad_norm`` on their own), and saved in
``domain_state``.

Example:
    >>> trainer = DomainAdaptationTrainer(model, train_loader, val_loader, optimizer=opt,
    ...                                   target_loader=target_loader,
    ...                                   domain_loss=create_domain_loss("coral", 64))
    >>> history = trainer.fit(10)            # doctest: +SKIP
    >>> history["train_domain_loss"][-1]     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from pfdtrain.config.training_config import ConfigError
from pfdtrain.data.target import check_target_settings
from pfdtrain.errors import TrainingError
from pfdtrain.models import MODEL_REGISTRY
from pfdtrain.training.checkpoint import CheckpointError
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.training.domain_losses import DOMAIN_LOSSES, create_domain_loss
from pfdtrain.training.optimization import (create_optimizer, create_scheduler,
                                            optimizer_steps_per_epoch)
from pfdtrain.utils.logging import get_logger
from pfdtrain.utils.naming import keyword_parameters

if TYPE_CHECKING:
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle

__all__ = ["DomainAdaptationTrainer"]

logger = get_logger(__name__)


class DomainAdaptationTrainer(CNNTrainer):
    """``CNNTrainer`` whose loss adds a domain loss between source and target features.

    Args:
        *args: as ``CNNTrainer``; the model needs ``forward_features``/``forward_head``.
        target_loader: unlabeled target batches ``(inputs, ignored)`` whose sampler has
            ``set_epoch`` and ``set_start_index`` (``EpochShuffleSampler``), a
            ``batch_size`` and ``drop_last=True``.
        domain_loss: a module ``(source_features, target_features, progress) -> scalar``
            (see :func:`~pfdtrain.training.domain_losses.create_domain_loss`).
        domain_weight: weight of the domain loss.
        domain_optimizer: optimizer of the domain loss's parameters (DANN's classifier);
            default AdamW at the model's learning rate when it has parameters.
        domain_scheduler: its learning-rate scheduler, stepped like ``lr_scheduler``.
        **kwargs: as ``CNNTrainer``.

    Example:
        >>> DomainAdaptationTrainer(model, train, val, target_loader=target,
        ...                         domain_loss=create_domain_loss("mmd", 64)).fit(5)  # doctest: +SKIP
    """

    needs_target = True

    @classmethod
    def check_config(cls, config: "TrainingConfig") -> None:
        check_target_settings(config)
        if config.loss.name == "supcon":
            raise ConfigError("trainer: domain_adaptation adds a domain loss on the model's "
                              "features; it does not add the supcon embedding term. Use "
                              "loss.name ce, label_smoothing or focal with it")
        model_cls = MODEL_REGISTRY.get(config.model.name)
        if model_cls is not None and not hasattr(model_cls, "forward_features"):
            able = [n for n, c in MODEL_REGISTRY.items() if hasattr(c, "forward_features")]
            raise ConfigError(f"trainer: domain_adaptation aligns the features of "
                              f"model.forward_features, which {model_cls.__name__} "
                              f"({config.model.name}) does not have; choose model.name from "
                              f"{', '.join(able)}")

    @classmethod
    def from_config(cls, config: "TrainingConfig", data: "DataBundle",
                    common: dict[str, Any]) -> "DomainAdaptationTrainer":
        dc = config.domain
        model = getattr(common["model"], "module", common["model"])
        builder = DOMAIN_LOSSES[dc.method][0]
        options = {k: getattr(dc, k) for k in keyword_parameters(builder)
                   if k != "num_features" and hasattr(dc, k)}
        domain_loss = create_domain_loss(dc.method, int(model.num_features), **options)
        domain_optimizer = domain_scheduler = None
        if any(p.requires_grad for p in domain_loss.parameters()):
            domain_optimizer = create_optimizer(domain_loss, config.optimizer)
            steps = optimizer_steps_per_epoch(len(data.train_loader),
                                              config.gradient_accumulation_steps)
            domain_scheduler = create_scheduler(domain_optimizer, config.scheduler,
                                                config.num_epochs, steps)
        if config.checkpoint.monitor == "val_acc":
            logger.info("domain adaptation: best_model.pth follows checkpoint.monitor=val_acc, "
                        "which a source validation split often saturates early (before the "
                        "alignment acts); checkpoint.monitor=val_loss with checkpoint.mode=min "
                        "picks the model early stopping restores")
        return cls(**common, target_loader=data.target_loader, domain_loss=domain_loss,
                   domain_weight=dc.weight, domain_optimizer=domain_optimizer,
                   domain_scheduler=domain_scheduler)

    def __init__(self, *args: Any, target_loader: Optional[DataLoader], domain_loss: nn.Module,
                 domain_weight: float = 1.0,
                 domain_optimizer: Optional[torch.optim.Optimizer] = None,
                 domain_scheduler: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model = self.unwrapped_model
        if model is not self.model:
            raise TrainingError("trainer: domain_adaptation calls the model's forward_features, "
                                "which bypasses DistributedDataParallel's gradient "
                                "synchronisation; train it in a single process")
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise TrainingError(f"{type(model).__name__} has no forward_features()/"
                                f"forward_head(); domain adaptation aligns the model's features")
        if self.embedding_criterion is not None:
            raise TrainingError("DomainAdaptationTrainer does not combine with an embedding "
                                "loss (loss.name: supcon)")
        if target_loader is None:
            raise TrainingError("DomainAdaptationTrainer needs a target_loader: build the data "
                                "with build_dataloaders(config, with_target=True) and "
                                "data.target_groups or data.target_source set")
        sampler = getattr(target_loader, "sampler", None)
        if (not hasattr(sampler, "set_start_index") or not hasattr(sampler, "set_epoch")
                or target_loader.batch_size is None or not target_loader.drop_last):
            raise TrainingError("the target loader needs a sampler with set_epoch and "
                                "set_start_index (EpochShuffleSampler), a batch_size and "
                                "drop_last=True, so that its position can be resumed")
        self.target_loader = target_loader
        sampler.set_epoch(0)
        self._target_batches_per_pass = len(target_loader)
        if self._target_batches_per_pass < 1:
            raise TrainingError(f"the target loader yields no batch ({len(sampler)} windows, "
                                f"batches of {target_loader.batch_size})")
        self.domain_loss = domain_loss.to(self.device)
        self.domain_weight = float(domain_weight)
        params = [p for p in self.domain_loss.parameters() if p.requires_grad]
        if params and domain_optimizer is None:
            domain_optimizer = torch.optim.AdamW(params, lr=self.optimizer.param_groups[0]["lr"])
        self.domain_optimizer = domain_optimizer
        self.domain_scheduler = domain_scheduler
        self.target_step = 0  # target batches consumed since the start of training
        self._target_iter: Optional[Any] = None
        self._source_batches_per_epoch = len(self.train_loader)

    # ------------------------------------------------------------------ the target stream
    @property
    def progress(self) -> float:
        """Training progress p in [0, 1]: source batches done / batches of the whole run."""
        total = max(1, self.num_epochs * self._source_batches_per_epoch)
        return min(1.0, self.target_step / total)

    def _next_target_inputs(self) -> torch.Tensor:
        """The next target batch's inputs (labels dropped unread), on the device."""
        loader = self.target_loader
        sampler = loader.sampler
        if self._target_iter is None:  # (re)build the stream at target_step
            passes, offset = divmod(self.target_step, self._target_batches_per_pass)
            sampler.set_epoch(passes)
            sampler.set_start_index(offset * loader.batch_size)
            self._target_iter = iter(loader)
        try:
            batch = next(self._target_iter)
        except StopIteration:  # the pass is over: the next one, in its own order
            sampler.set_epoch(self.target_step // self._target_batches_per_pass)
            self._target_iter = iter(loader)
            batch = next(self._target_iter)
        self.target_step += 1
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        return inputs.to(self.device, non_blocking=True)

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, torch.Tensor]]:
        if not self.model.training:
            # Validation / test: the source classification loss only (model selection never
            # sees the target).
            return super().compute_loss(batch)
        inputs, targets = batch[0], batch[1]
        progress = self.progress
        target_inputs = self._next_target_inputs()
        model = self.unwrapped_model
        features = model.forward_features(torch.cat([inputs, target_inputs]))
        n = inputs.shape[0]
        source_features, target_features = features[:n], features[n:]
        logits = model.forward_head(source_features)
        classification = self.criterion(logits, targets)
        domain = self.domain_loss(source_features, target_features, progress=progress)
        loss = classification + self.domain_weight * domain
        return loss, logits, targets, {"domain_loss": domain,
                                       "classification_loss": classification}

    # ------------------------------------------------------------------ optimisation
    def _optimizer_step(self) -> None:
        if self.domain_optimizer is not None:
            self.scaler.unscale_(self.domain_optimizer)
            if self.max_grad_norm > 0:
                params = [p for g in self.domain_optimizer.param_groups for p in g["params"]
                          if p.grad is not None]
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            self.scaler.step(self.domain_optimizer)
            self.domain_optimizer.zero_grad(set_to_none=True)
        super()._optimizer_step()  # the model's step, scaler update, per-step scheduler
        if self.domain_scheduler is not None and self.scheduler_interval == "step":
            self.domain_scheduler.step()

    def _step_scheduler(self, metrics: dict[str, float]) -> None:
        super()._step_scheduler(metrics)
        if self.domain_scheduler is None or self.scheduler_interval == "step":
            return
        if isinstance(self.domain_scheduler, ReduceLROnPlateau):
            self.domain_scheduler.step(metrics[self.plateau_monitor])
        else:
            self.domain_scheduler.step()

    # ------------------------------------------------------------------ checkpoints
    def _method_name(self) -> str:
        by_class = {builder.__name__: name for name, (builder, _) in DOMAIN_LOSSES.items()
                    if isinstance(builder, type)}
        return by_class.get(type(self.domain_loss).__name__, type(self.domain_loss).__name__)

    def state_checkpoint(self) -> dict[str, Any]:
        checkpoint = super().state_checkpoint()
        generator = getattr(self.target_loader, "generator", None)
        checkpoint["domain_state"] = {
            "method": self._method_name(),
            "target_step": int(self.target_step),
            "module_state_dict": self.domain_loss.state_dict(),
            "optimizer_state_dict": (self.domain_optimizer.state_dict()
                                     if self.domain_optimizer is not None else None),
            "scheduler_state_dict": (self.domain_scheduler.state_dict()
                                     if self.domain_scheduler is not None else None),
            "target_generator": generator.get_state() if generator is not None else None,
        }
        return checkpoint

    def load_checkpoint(self, filepath: Path | str, strict: bool = True) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(filepath, strict)
        state = checkpoint.get("domain_state")
        if state is None:
            raise CheckpointError(f"{filepath} was not written by the domain adaptation trainer "
                                  f"(no domain_state); resume it with the trainer it was "
                                  f"trained with")
        if state.get("method") != self._method_name():
            raise CheckpointError(f"{filepath} was trained with domain.method "
                                  f"{state.get('method')!r}, this trainer uses "
                                  f"{self._method_name()!r}; resume with the same method")
        self.domain_loss.load_state_dict(state["module_state_dict"], strict=strict)
        if self.domain_optimizer is not None and state.get("optimizer_state_dict") is not None:
            self.domain_optimizer.load_state_dict(state["optimizer_state_dict"])
        if self.domain_scheduler is not None and state.get("scheduler_state_dict") is not None:
            self.domain_scheduler.load_state_dict(state["scheduler_state_dict"])
        generator = getattr(self.target_loader, "generator", None)
        if generator is not None and state.get("target_generator") is not None:
            generator.set_state(state["target_generator"])
        self.target_step = int(state["target_step"])
        self._target_iter = None  # rebuilt at target_step on the next training batch
        return checkpoint
