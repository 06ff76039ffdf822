"""``CNNTrainer``: the one training loop (guide §1, §5, §6.2).

``fit`` runs the canonical order — train, validate, scheduler, log, callbacks, checkpoint —
and returns ``history``. Other trainers (physics-informed, distillation) subclass it and
override ``compute_loss`` only; the loop, metrics, callbacks and checkpoints stay one.

Example:
    >>> trainer = CNNTrainer(model, train_loader, val_loader, optimizer=opt)
    >>> history = trainer.fit(num_epochs=10)
    >>> history["val_acc"][-1]
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm import tqdm

import pfdtrain
from pfdtrain.errors import TrainingError
from pfdtrain.training.checkpoint import (CheckpointError, capture_rng_state, load_checkpoint_file,
                                          restore_rng_state)
from pfdtrain.training.cnn_callbacks import Callback, CallbackList
from pfdtrain.training.cnn_losses import MaskedClassificationLoss
from pfdtrain.training.distributed import agree_any, all_reduce_sum, is_distributed
from pfdtrain.utils.logging import get_logger

if TYPE_CHECKING:  # annotations only: the config and data modules do not import trainers
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle

logger = get_logger(__name__)

REQUIRED_HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


class CNNTrainer:
    """Trains a classifier ``model.forward(x) -> logits`` on ``(inputs, targets)`` batches.

    Args:
        model: the network (moved to ``device``).
        train_loader: training batches ``(inputs [B, C, L], targets [B])``.
        val_loader: validation batches, or None (then history has no ``val_*`` keys).
        optimizer: the optimizer (see ``create_optimizer``).
        lr_scheduler: a ``torch.optim.lr_scheduler`` object or None.
        criterion: loss on ``(logits, targets)``; default ``nn.CrossEntropyLoss()``.
        embedding_criterion: optional loss on ``(model.forward_features(x), targets)`` (e.g.
            ``SupConLoss``) added to ``criterion`` with ``embedding_weight``; logged as
            ``<prefix>embedding_loss``.
        embedding_weight: weight of the embedding loss.
        device: where to train.
        mixed_precision: train under ``torch.amp.autocast``.
        amp_dtype: autocast dtype; default bfloat16 on CPU, float16 (with a GradScaler) on CUDA.
        gradient_accumulation_steps: micro-batches per optimizer step.
        max_grad_norm: clip the total gradient norm (after unscaling) to this; 0 disables.
        scheduler_interval: ``"epoch"`` or ``"step"`` (per optimizer step: onecycle, warmup).
        plateau_monitor: the metric ``ReduceLROnPlateau`` receives (default ``val_loss``).
        callbacks: callbacks (a list or a ``CallbackList``).
        log_interval: refresh the progress bar every N batches (the only per-batch host sync).
        progress_bar: show a tqdm bar; default only when stderr is a terminal.
        config: the ``TrainingConfig`` of the run, logged at start and saved in checkpoints.
        metadata: facts about the data saved in checkpoints for whoever loads them
            (``class_names``, ``dataset_hash``, ``sampling_rate``, ``input_length``,
            ``window_length``, ``transform``).
        partial_labels: training targets may be unlabeled (-1, ``data.label_fraction``):
            ``criterion`` is wrapped in ``MaskedClassificationLoss`` (labeled rows only).
            None: from ``config.data.label_fraction < 1`` (False without a config). Training
            accuracy always counts the labeled windows only.

    Example:
        >>> trainer = CNNTrainer(model, train_loader, val_loader, optimizer=opt,
        ...                      lr_scheduler=sched, mixed_precision=True)
        >>> history = trainer.fit(20)

    A trainer registered in :data:`pfdtrain.training.registry.TRAINERS` is built by the
    pipeline through three class-level hooks, so a new trainer is one new module plus one
    registry entry: :attr:`needs_metadata`, :meth:`check_config` and :meth:`from_config`.
    """

    #: Batches carry the records' operating metadata as a third element (``pinn``).
    needs_metadata: bool = False
    #: The trainer also takes unlabeled target batches (``DataBundle.target_loader``).
    needs_target: bool = False

    @classmethod
    def check_config(cls, config: "TrainingConfig") -> None:
        """Refuse settings this trainer would silently ignore (before any data is read).

        Raises:
            ConfigError: naming the setting and the fix.
        """
        if config.loss.name == "supcon" and config.data.label_fraction < 1.0:
            from pfdtrain.config.training_config import ConfigError  # the config imports us

            # SupCon's positives are the windows of the same class: unlabeled windows have
            # none, and leaving them out would silently train it on a few windows per batch.
            raise ConfigError(f"loss.name: supcon pulls together windows of the same class, "
                              f"which unlabeled windows do not have; with "
                              f"data.label_fraction = {config.data.label_fraction} use loss.name "
                              f"ce, label_smoothing or focal, or data.label_fraction: 1.0")

    @classmethod
    def from_config(cls, config: "TrainingConfig", data: "DataBundle",
                    common: dict[str, Any]) -> "CNNTrainer":
        """The trainer for ``config``: ``common`` holds the constructor arguments every
        trainer takes (model, loaders, optimizer, device, config, ...), built by the
        pipeline; a subclass adds its own from the config and the data.

        Example:
            >>> trainer_class(config.trainer).from_config(config, data, common)
        """
        return cls(**common)

    def __init__(
        self,
        model: nn.Module,
        train_loader: DataLoader,
        val_loader: Optional[DataLoader] = None,
        optimizer: Optional[torch.optim.Optimizer] = None,
        lr_scheduler: Any = None,
        criterion: Optional[Callable[..., torch.Tensor]] = None,
        embedding_criterion: Optional[Callable[..., torch.Tensor]] = None,
        embedding_weight: float = 1.0,
        device: torch.device | str = "cpu",
        mixed_precision: bool = False,
        amp_dtype: Optional[torch.dtype] = None,
        gradient_accumulation_steps: int = 1,
        max_grad_norm: float = 0.0,
        scheduler_interval: str = "epoch",
        plateau_monitor: str = "val_loss",
        callbacks: Optional[Iterable[Callback]] = None,
        log_interval: int = 20,
        progress_bar: Optional[bool] = None,
        config: Any = None,
        metadata: Optional[dict[str, Any]] = None,
        partial_labels: Optional[bool] = None,
    ) -> None:
        if gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be >= 1")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError("scheduler_interval must be 'epoch' or 'step'")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.optimizer = optimizer if optimizer is not None else torch.optim.AdamW(
            self.model.parameters(), lr=1e-3)
        self.lr_scheduler = lr_scheduler
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        if partial_labels is None:
            data_config = getattr(config, "data", None)
            partial_labels = getattr(data_config, "label_fraction", 1.0) < 1.0
        self.partial_labels = bool(partial_labels)
        if self.partial_labels and not isinstance(self.criterion, MaskedClassificationLoss):
            # Only then: selecting the labeled rows costs a host sync per batch.
            self.criterion = MaskedClassificationLoss(self.criterion)
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)  # class-weight buffers live with the logits
        self.embedding_criterion = embedding_criterion
        self.embedding_weight = embedding_weight
        if embedding_criterion is not None and self.unwrapped_model is not self.model:
            raise TrainingError("an embedding loss (loss.name: supcon) calls the model's "
                                "forward_features, which bypasses DistributedDataParallel's "
                                "gradient synchronisation; train it in a single process or "
                                "choose another loss for DDP")
        if embedding_criterion is not None and not hasattr(self.unwrapped_model,
                                                          "forward_features"):
            raise TrainingError(f"{type(self.unwrapped_model).__name__} has no forward_features(); "
                                f"an embedding loss (loss.name: supcon) needs a model that "
                                f"exposes its embedding")
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.scheduler_interval = scheduler_interval
        self.plateau_monitor = plateau_monitor
        self.log_interval = log_interval
        self.progress_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        self.config = config
        self.metadata = dict(metadata or {})

        self.mixed_precision = mixed_precision
        if amp_dtype is None:
            amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.amp_dtype = amp_dtype
        # Loss scaling only matters for fp16, whose narrow exponent underflows small gradients.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=mixed_precision and amp_dtype == torch.float16)

        self.callbacks = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
        self.callbacks.set_trainer(self)

        # Dashboard contract (§6.2): readable at any time, also from a callback.
        self.current_epoch = 0
        self.history: dict[str, list[float]] = {}
        self.best_val_acc = 0.0
        self.best_val_loss = float("inf")
        self.epochs_completed = 0
        self.global_step = 0  # optimizer steps taken
        self.stop_training = False  # a callback sets this to end fit after the current epoch
        self.last_grad_norm: Optional[torch.Tensor] = None  # before clipping, after unscaling
        self.num_epochs = 0
        # Position inside the current epoch: batches consumed up to the last optimizer step,
        # and the epoch's running metric sums (both saved by a mid-epoch checkpoint).
        self.batches_done = 0
        self._epoch_sums: Optional[dict[str, torch.Tensor]] = None
        self._window_open = False  # gradients accumulated but not yet stepped

    # ------------------------------------------------------------------ the loop
    def fit(self, num_epochs: int) -> dict[str, list[float]]:
        """Train until ``num_epochs`` epochs are complete in total (a resumed run continues).

        An exception (Ctrl-C included) first goes to every callback's ``on_exception``
        (e.g. the dashboard's ``train_end`` with status ``crashed``), then propagates.

        Returns:
            ``history``: per-epoch lists under the §1.2 keys.
        """
        try:
            return self._fit(num_epochs)
        except BaseException as exc:
            self.callbacks.on_exception(exc)
            raise

    def _fit(self, num_epochs: int) -> dict[str, list[float]]:
        self.num_epochs = num_epochs
        self.stop_training = False
        self._log_configuration()
        self.callbacks.on_train_begin({})
        epoch_logs: dict[str, float] = {}
        for epoch in range(self.epochs_completed, num_epochs):
            self.current_epoch = epoch
            self.callbacks.on_epoch_begin(epoch, {})
            train_metrics = self.train_epoch()                               # 1. train
            val_metrics = self.validate_epoch()                              # 2. validate
            self._step_scheduler({**train_metrics, **val_metrics})           # 3. scheduler
            epoch_logs = self._log_epoch(train_metrics, val_metrics)         # 4. log
            self.callbacks.on_epoch_end(epoch, epoch_logs)                   # 5. callbacks
            self.epochs_completed = epoch + 1
            self._maybe_save_checkpoint(epoch_logs)                          # 6. checkpoint
            # Every rank must leave the loop together, or the others wait in a collective.
            self.stop_training = agree_any(self.stop_training, self.device)
            if self.stop_training:
                logger.info(f"Stopping early after epoch {epoch + 1}/{num_epochs}")
                break
        self.callbacks.on_train_end(dict(epoch_logs))
        return self.history

    def train_epoch(self) -> dict[str, float]:
        """One pass over ``train_loader``; returns sample-weighted ``train_loss``/``train_acc``.

        After a mid-epoch resume it continues the interrupted epoch: same order, the batches
        already consumed skipped, the running sums restored.
        """
        self.model.train()
        loader = self.train_loader
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)  # the epoch's shuffle is a function of it
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            # ...and so are the augmentation draws (pfdtrain.data.augment): set before the
            # loader's iterator (and its workers) is made, also on a resumed epoch.
            dataset.set_epoch(self.current_epoch)
        start_batch = self.batches_done
        if start_batch:
            if not hasattr(sampler, "set_start_index") or loader.batch_size is None:
                raise TrainingError("a mid-epoch resume needs a train loader with a batch_size and "
                                    "a sampler with set_start_index (EpochShuffleSampler)")
            # A recovery save after the epoch's last step has every batch done; with a
            # partial last batch that is fewer samples than start_batch * batch_size.
            sampler.set_start_index(min(start_batch * loader.batch_size, sampler.num_samples))
        num_batches = start_batch + len(loader)
        window_weights = self._window_weights(loader, num_batches, start_batch)
        sums = self._epoch_sums if start_batch and self._epoch_sums else self._new_sums()
        self._epoch_sums = sums
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(total=num_batches, initial=start_batch, leave=False,
                   desc=f"Epoch {self.current_epoch + 1}/{self.num_epochs}",
                   disable=not self.progress_bar, dynamic_ncols=True)
        for batch_idx, batch in enumerate(loader, start=start_batch):
            self.callbacks.on_batch_begin(batch_idx, {})
            batch = self._to_device(batch)
            with self._autocast():
                loss, logits, targets, extra = self.compute_loss(batch)
            # Each micro-batch's mean loss is weighted by its share of the window's samples,
            # so a window (also the epoch's last, partial one) steps on the mean over exactly
            # its own samples, as one big batch would.
            self.scaler.scale(loss * window_weights[batch_idx]).backward()
            self._window_open = True
            self._accumulate(sums, loss, logits, targets, extra)
            if self._window_ends(batch_idx, num_batches):
                self._optimizer_step()
                self._window_open = False
                self.batches_done = batch_idx + 1
            self.callbacks.on_batch_end(batch_idx, {"loss": loss.detach(),
                                                    "batch_size": targets.size(0)})
            bar.update(1)
            if self.progress_bar and ((batch_idx + 1) % self.log_interval == 0
                                      or batch_idx + 1 == num_batches):
                bar.set_postfix(self._postfix(sums))
        bar.close()
        self.batches_done = 0
        self._epoch_sums = None
        return self._finalize(sums, prefix="train_")

    @torch.no_grad()
    def validate_epoch(self) -> dict[str, float]:
        """Sample-weighted ``val_loss``/``val_acc``; empty when there is no validation loader."""
        if self.val_loader is None:
            return {}
        return self.evaluate(self.val_loader, prefix="val_")

    def evaluate(self, loader: DataLoader, prefix: str = "", reduce: bool = True
                 ) -> dict[str, float]:
        """Loss and accuracy of the model on ``loader`` in eval mode (no parameter change).

        Args:
            loader: the batches.
            prefix: prepended to the metric names (``val_``).
            reduce: sum the metrics over the DDP ranks (each rank holds a shard of
                ``loader``); False when every rank evaluates the whole set.
        """
        return self.evaluate_with_predictions(loader, prefix, keep_outputs=False,
                                              reduce=reduce)[0]

    @torch.no_grad()
    def evaluate_with_predictions(self, loader: DataLoader, prefix: str = "",
                                  keep_outputs: bool = True, reduce: bool = True
                                  ) -> tuple[dict[str, float], Optional[torch.Tensor],
                                             Optional[torch.Tensor]]:
        """``evaluate`` that also returns the logits and targets (on the CPU) of every sample."""
        wrapped, self.model = self.model, self.unwrapped_model  # DDP's forward syncs buffers
        try:
            self.model.eval()
            sums = self._new_sums()
            all_logits, all_targets = [], []
            for batch in loader:
                batch = self._to_device(batch)
                with self._autocast():
                    loss, logits, targets, extra = self.compute_loss(batch)
                self._accumulate(sums, loss, logits, targets, extra)
                if keep_outputs:
                    all_logits.append(logits.detach().float().cpu())
                    all_targets.append(targets.detach().cpu())
            metrics = self._finalize(sums, prefix=prefix, reduce=reduce)
        finally:
            self.model = wrapped
        if not keep_outputs:
            return metrics, None, None
        return metrics, torch.cat(all_logits), torch.cat(all_targets)

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, torch.Tensor]]:
        """Forward one batch: ``(loss, logits, targets, extra batch-mean losses)``.

        The override point of specialised trainers (physics losses, distillation); extra
        losses are averaged like ``loss`` and land in history as ``train_<name>``/``val_<name>``.
        """
        inputs, targets = batch[0], batch[1]
        if self.embedding_criterion is None:
            logits = self.model(inputs)
            return self.criterion(logits, targets), logits, targets, {}
        model = self.unwrapped_model
        features = model.forward_features(inputs)
        logits = model.forward_head(features)
        embedding_loss = self.embedding_criterion(features, targets)
        loss = self.criterion(logits, targets) + self.embedding_weight * embedding_loss
        return loss, logits, targets, {"embedding_loss": embedding_loss}

    # ------------------------------------------------------------------ optimisation
    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)  # clip and measure true gradients, not scaled ones
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.max_grad_norm > 0:
            self.last_grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        else:
            self.last_grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if self.lr_scheduler is not None and self.scheduler_interval == "step":
            self.lr_scheduler.step()

    def _window_ends(self, batch_idx: int, num_batches: int) -> bool:
        return (batch_idx + 1) % self.gradient_accumulation_steps == 0 or batch_idx + 1 == num_batches

    def _window_weights(self, loader: DataLoader, num_batches: int, start_batch: int = 0
                        ) -> list[float]:
        """Per batch of the whole epoch: its sample count over its window's sample count."""
        steps = self.gradient_accumulation_steps
        batch_size = getattr(loader, "batch_size", None)
        sampler = getattr(loader, "sampler", None)
        if batch_size is None or sampler is None or getattr(loader, "drop_last", False):
            sizes = [1.0] * num_batches  # unknown sizes: fall back to equal micro-batch weights
        else:
            total = start_batch * batch_size + len(sampler)
            sizes = [float(min(batch_size, total - i * batch_size)) for i in range(num_batches)]
        weights = []
        for start in range(0, num_batches, steps):
            window = sizes[start:start + steps]
            weights.extend(size / sum(window) for size in window)
        return weights

    def _step_scheduler(self, metrics: dict[str, float]) -> None:
        """Step per-epoch schedulers; ``ReduceLROnPlateau`` always receives its metric
        (``plateau_monitor``, from the epoch's train or validation metrics)."""
        if self.lr_scheduler is None or self.scheduler_interval == "step":
            return
        if isinstance(self.lr_scheduler, ReduceLROnPlateau):
            metric = metrics.get(self.plateau_monitor)
            if metric is None:
                raise TrainingError(
                    f"ReduceLROnPlateau needs '{self.plateau_monitor}' every epoch, but the epoch's "
                    f"metrics hold {sorted(metrics)}. Provide a validation split "
                    f"(data.val_fraction > 0), set scheduler.monitor to one of those keys, or "
                    f"choose another scheduler.")
            self.lr_scheduler.step(metric)
        else:
            self.lr_scheduler.step()

    # ------------------------------------------------------------------ metrics
    def _new_sums(self) -> dict[str, torch.Tensor]:
        # Sums live on the device: adding to them never waits for the GPU.
        # "labeled": the windows accuracy is measured on (data.label_fraction); "count" all.
        return {"loss": torch.zeros((), dtype=torch.float64, device=self.device),
                "correct": torch.zeros((), dtype=torch.float64, device=self.device),
                "count": torch.zeros((), dtype=torch.float64, device=self.device),
                "labeled": torch.zeros((), dtype=torch.float64, device=self.device)}

    @staticmethod
    def _accumulate(sums: dict[str, torch.Tensor], loss: torch.Tensor, logits: torch.Tensor,
                    targets: torch.Tensor, extra: dict[str, torch.Tensor]) -> None:
        n = targets.size(0)
        if "labeled" not in sums:  # running sums from a checkpoint of before label_fraction
            sums["labeled"] = sums["count"].clone()
        sums["loss"] += loss.detach().double() * n
        # An unlabeled target (-1) never equals an argmax: only labeled windows count.
        sums["correct"] += (logits.detach().argmax(dim=1) == targets).sum()
        sums["count"] += n
        sums["labeled"] += (targets >= 0).sum()
        for name, value in extra.items():
            if name not in sums:
                sums[name] = torch.zeros((), dtype=torch.float64, device=loss.device)
            sums[name] += value.detach().double() * n

    def _reduce_sums(self, sums: dict[str, torch.Tensor], reduce: bool = True
                     ) -> dict[str, float]:
        """One host transfer for all sums; under DDP summed over the ranks first, so every
        rank gets the global, batch-weighted values."""
        keys = sorted(sums)
        stacked = torch.stack([sums[k] for k in keys])
        if reduce:
            all_reduce_sum(stacked)
        return dict(zip(keys, stacked.tolist()))

    def _finalize(self, sums: dict[str, torch.Tensor], prefix: str, reduce: bool = True
                  ) -> dict[str, float]:
        totals = self._reduce_sums(sums, reduce)
        count = totals.pop("count")
        labeled = totals.pop("labeled", count)
        if count == 0:
            raise TrainingError(f"the {prefix.rstrip('_') or 'evaluation'} loader yielded no "
                                f"samples; check the dataset split sizes and batch size")
        # Accuracy over the labeled windows; NaN (not a made-up 0 %) when there were none.
        metrics = {f"{prefix}loss": totals.pop("loss") / count,
                   f"{prefix}acc": (100.0 * totals.pop("correct") / labeled if labeled
                                    else float("nan"))}
        metrics.update({f"{prefix}{k}": v / count for k, v in totals.items()})
        return metrics

    def _postfix(self, sums: dict[str, torch.Tensor]) -> dict[str, str]:
        count = max(float(sums["count"]), 1.0)
        labeled = max(float(sums.get("labeled", sums["count"])), 1.0)
        return {"loss": f"{float(sums['loss']) / count:.4f}",
                "acc": f"{100.0 * float(sums['correct']) / labeled:.2f}%"}

    @property
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_epoch(self, train_metrics: dict[str, float], val_metrics: dict[str, float]
                   ) -> dict[str, float]:
        """Append the epoch to ``history``, update the best values, log the summary line."""
        logs = {**train_metrics, **val_metrics, "lr": self.current_lr}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if "val_acc" in val_metrics:
            self.best_val_acc = max(self.best_val_acc, val_metrics["val_acc"])
        if "val_loss" in val_metrics:
            self.best_val_loss = min(self.best_val_loss, val_metrics["val_loss"])
        line = (f"Epoch {self.current_epoch + 1}/{self.num_epochs} - "
                f"Train Loss: {logs['train_loss']:.4f}, Train Acc: {logs['train_acc']:.2f}%, ")
        if val_metrics:
            line += f"Val Loss: {logs['val_loss']:.4f}, Val Acc: {logs['val_acc']:.2f}%, "
        line += f"LR: {logs['lr']:.6f}"
        logger.info(line)
        return logs

    def _maybe_save_checkpoint(self, logs: dict[str, float]) -> None:
        """Step 6: checkpoint callbacks save after every ``on_epoch_end`` has run, so a
        checkpoint holds each callback's state as of the end of this epoch."""
        self.callbacks.on_checkpoint(self.current_epoch, logs)

    # ------------------------------------------------------------------ checkpoints (§4)
    @property
    def unwrapped_model(self) -> nn.Module:
        """The model without a DistributedDataParallel wrapper (no ``module.`` prefixes)."""
        return getattr(self.model, "module", self.model)

    def state_checkpoint(self) -> dict[str, Any]:
        """Everything §4.1 asks for, plus what an exact resume and a stranger's evaluation need.

        Must be called at an optimizer-step boundary (epoch end, or right after a step).
        """
        if self._window_open:
            raise TrainingError("a checkpoint was requested between micro-batches of an "
                                "accumulation window; save right after an optimizer step")
        model = self.unwrapped_model
        data_state: dict[str, Any] = {"epoch": self.current_epoch if self.batches_done
                                      else self.epochs_completed,
                                      "batches_done": self.batches_done}
        generator = getattr(self.train_loader, "generator", None)
        if generator is not None:
            data_state["loader_generator"] = generator.get_state()
        if self.batches_done and self._epoch_sums is not None:
            data_state["epoch_sums"] = {k: v.detach().cpu() for k, v in self._epoch_sums.items()}
        return {
            # §4.1 minimum
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "epoch": max(self.epochs_completed - 1, 0) if not self.batches_done else self.current_epoch,
            "best_val_acc": float(self.best_val_acc),
            "best_val_loss": float(self.best_val_loss),
            "history": {k: [float(v) for v in vals] for k, vals in self.history.items()},
            # §4.1 recommended
            "scheduler_state_dict": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "scaler_state_dict": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "random_state": capture_rng_state(),
            "config": self.config.to_dict() if hasattr(self.config, "to_dict") else self.config,
            "model_class": model.__class__.__name__,
            "timestamp": datetime.now().isoformat(),
            # exact resume
            "epochs_completed": self.epochs_completed,
            "num_epochs": self.num_epochs,
            "global_step": self.global_step,
            "data_state": data_state,
            "callback_states": self.callbacks.state_dict(),
            # loading by someone else
            "model_kwargs": dict(getattr(model, "init_kwargs", {})),
            "metadata": dict(self.metadata),
            "pfdtrain_version": pfdtrain.__version__,
            "torch_version": str(torch.__version__),  # TorchVersion is not weights_only-safe
        }

    def load_checkpoint(self, filepath: Path | str, strict: bool = True) -> dict[str, Any]:
        """Restore model, optimizer, scheduler, scaler, RNG, history, best values, callback
        states and the data position; the next ``fit`` continues where the checkpoint stopped.

        Args:
            filepath: path to the checkpoint file.
            strict: require the model's keys to match exactly.

        Returns:
            The loaded checkpoint dict.
        """
        checkpoint = load_checkpoint_file(filepath, map_location=self.device)
        saved_class = checkpoint.get("model_class")
        model = self.unwrapped_model
        if saved_class is not None and saved_class != model.__class__.__name__:
            raise CheckpointError(f"{filepath} holds a {saved_class}, but this trainer's model is a "
                                  f"{model.__class__.__name__}; build the model the checkpoint was "
                                  f"trained with (its config is inside it)")
        try:
            model.load_state_dict(checkpoint["model_state_dict"], strict=strict)
        except RuntimeError as exc:
            raise CheckpointError(f"{filepath} does not fit this model: "
                                  f"{str(exc).splitlines()[0]}") from None
        if "optimizer_state_dict" in checkpoint:
            self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        if self.lr_scheduler is not None and checkpoint.get("scheduler_state_dict") is not None:
            self.lr_scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
        if self.scaler.is_enabled() and checkpoint.get("scaler_state_dict") is not None:
            self.scaler.load_state_dict(checkpoint["scaler_state_dict"])
        self.history = {k: list(v) for k, v in checkpoint.get("history", {}).items()}
        self.best_val_acc = checkpoint.get("best_val_acc", 0.0)
        self.best_val_loss = checkpoint.get("best_val_loss", float("inf"))
        self.epochs_completed = checkpoint.get("epochs_completed", checkpoint["epoch"] + 1)
        self.global_step = checkpoint.get("global_step", 0)
        data_state = checkpoint.get("data_state", {})
        self.batches_done = data_state.get("batches_done", 0)
        self.current_epoch = data_state.get("epoch", self.epochs_completed)
        self._epoch_sums = ({k: v.to(self.device) for k, v in data_state["epoch_sums"].items()}
                            if "epoch_sums" in data_state else None)
        generator = getattr(self.train_loader, "generator", None)
        if generator is not None and "loader_generator" in data_state:
            generator.set_state(data_state["loader_generator"])
        if "callback_states" in checkpoint:
            self.callbacks.load_state_dict(checkpoint["callback_states"])
        if "random_state" in checkpoint:
            restore_rng_state(checkpoint["random_state"])
        where = (f"epoch {self.current_epoch + 1}, batch {self.batches_done}" if self.batches_done
                 else f"end of epoch {self.epochs_completed}")
        logger.info(f"Checkpoint loaded: epoch={checkpoint['epoch']}, "
                    f"best_val_acc={self.best_val_acc:.2f}% (resuming at {where})")
        return checkpoint

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        if not self.mixed_precision:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self._to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self._to_device(v) for v in batch)
        return batch

    def reproducibility_facts(self) -> dict[str, Any]:
        """The §5.3 facts: everything needed to reproduce the run (logged at start, and in
        the dashboard's ``train_begin`` event)."""
        cfg = self.config
        group = self.optimizer.param_groups[0]
        batch_size = getattr(self.train_loader, "batch_size", None)
        world_size = torch.distributed.get_world_size() if is_distributed() else 1
        effective = (batch_size * self.gradient_accumulation_steps * world_size
                     if batch_size else None)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return {
            "seed": getattr(cfg, "seed", None),
            "deterministic": getattr(cfg, "deterministic",
                                     torch.are_deterministic_algorithms_enabled()),
            "pytorch_version": str(torch.__version__),
            "cuda_version": torch.version.cuda,
            "cudnn_version": cudnn,
            "device": str(self.device),
            "model": self.unwrapped_model.__class__.__name__,
            "optimizer": self.optimizer.__class__.__name__,
            "scheduler": self.lr_scheduler.__class__.__name__ if self.lr_scheduler else None,
            "batch_size": batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "world_size": world_size,
            "effective_batch_size": effective,
            "learning_rate": group["lr"],
            "weight_decay": group.get("weight_decay", 0.0),
            "mixed_precision": self.mixed_precision,
            "amp_dtype": str(self.amp_dtype).removeprefix("torch.") if self.mixed_precision else None,
            "pfdtrain_version": pfdtrain.__version__,
        }

    def _log_configuration(self) -> None:
        """The §5.3 block: everything needed to reproduce the run."""
        f = self.reproducibility_facts()
        lines = [
            "=== Training Configuration ===",
            f"Seed: {f['seed']}",
            f"Deterministic: {f['deterministic']}",
            f"PyTorch version: {f['pytorch_version']}",
            f"CUDA version: {f['cuda_version']}",
            f"cuDNN version: {f['cudnn_version']}",
            f"Device: {f['device']}",
            f"Model: {f['model']}",
            f"Optimizer: {f['optimizer']}",
            f"Scheduler: {f['scheduler']}",
            f"Batch size: {f['batch_size']}",
            f"Gradient accumulation steps: {f['gradient_accumulation_steps']}",
            f"World size: {f['world_size']}",
            f"Effective batch size: {f['effective_batch_size']}",
            f"Learning rate: {f['learning_rate']}",
            f"Weight decay: {f['weight_decay']}",
            f"Mixed precision: {f['mixed_precision']}"
            + (f" ({f['amp_dtype']})" if f["mixed_precision"] else ""),
        ]
        for line in lines:
            logger.info(line)
