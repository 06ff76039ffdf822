"""The callback system (guide §2): one ``Callback`` base, one ``CallbackList`` dispatcher.

A callback sees the trainer through ``self.trainer`` (set by ``set_trainer`` before
``on_train_begin``), so it can read the §6.2 attributes or ask the run to stop with
``self.trainer.stop_training = True``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from pfdtrain.errors import TrainingError
from pfdtrain.training.checkpoint import get_checkpoint_filename, save_checkpoint
from pfdtrain.utils.events import append_event, now_iso
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)


class Callback:
    """Base class: every hook is a no-op; override the ones you need.

    Args:
        None.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, logs["train_loss"])
    """

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        """Give the callback access to the trainer running it."""
        self.trainer = trainer

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        """Before the first epoch of ``fit`` (``logs`` is empty)."""

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        """After the last epoch of ``fit`` (``logs`` holds the final metrics)."""

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        """Before each epoch (0-based ``epoch``)."""

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        """After each epoch; ``logs`` holds every metric of the epoch."""

    def on_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        """Before each training batch (``batch`` counts from 0 within the epoch)."""

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        """After each training batch; ``logs`` holds that batch's ``loss`` (a detached
        tensor, so reading it is the callback's choice of a host sync) and ``batch_size``."""

    def on_checkpoint(self, epoch: int, logs: Optional[dict] = None) -> None:
        """Step 6 of the canonical loop, after every ``on_epoch_end``: write checkpoints here
        (an extension of §2.1, so saved files include all callbacks' end-of-epoch state)."""

    def on_checkpoint_saved(self, path: Path, logs: Optional[dict] = None) -> None:
        """A checkpoint callback wrote ``path``; ``logs`` holds ``kind`` (best, latest,
        periodic, recovery, final), ``epoch`` (1-based), ``monitor`` and ``value``."""

    def on_exception(self, exc: BaseException) -> None:
        """``fit`` is ending with ``exc`` (a crash, or Ctrl-C as ``KeyboardInterrupt``);
        ``on_train_end`` will not run. The exception propagates after every callback ran."""

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        """After the run's one test-split evaluation (the pipeline's, once ``fit`` returned):
        ``logs`` holds its metrics (``accuracy``, ``macro_f1``, ``confusion_matrix``,
        ``class_names``, ``metrics_file``...), or is empty when the data has no test split."""

    def get_state(self) -> dict:
        """Internal state for inspection (guide §2.3)."""
        return {}

    def state_dict(self) -> dict:
        """State to store in a checkpoint so the callback resumes with the run."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""


class CallbackList(Callback):
    """Dispatches each hook to its callbacks, in order.

    Args:
        callbacks: the callbacks to run.

    Example:
        >>> callbacks = CallbackList([LearningRateMonitor(optimizer)])
        >>> callbacks.on_train_begin()
    """

    def __init__(self, callbacks: Optional[Iterable[Callback]] = None) -> None:
        self.callbacks: list[Callback] = list(callbacks or [])

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer
        for cb in self.callbacks:
            cb.set_trainer(trainer)

    def _dispatch(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._dispatch("on_train_begin", {} if logs is None else logs)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self._dispatch("on_train_end", {} if logs is None else logs)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._dispatch("on_epoch_begin", epoch, {} if logs is None else logs)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._dispatch("on_epoch_end", epoch, {} if logs is None else logs)

    def on_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        self._dispatch("on_batch_begin", batch, {} if logs is None else logs)

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._dispatch("on_batch_end", batch, {} if logs is None else logs)

    def on_checkpoint(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._dispatch("on_checkpoint", epoch, {} if logs is None else logs)

    def on_checkpoint_saved(self, path: Path, logs: Optional[dict] = None) -> None:
        self._dispatch("on_checkpoint_saved", path, {} if logs is None else logs)

    def on_exception(self, exc: BaseException) -> None:
        # Every callback gets its say even when one of them fails: the original exception
        # is the one the user must see.
        for cb in self.callbacks:
            try:
                cb.on_exception(exc)
            except Exception as inner:  # noqa: BLE001 - reported, then the original propagates
                logger.error(f"{type(cb).__name__}.on_exception failed: {inner}")

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        self._dispatch("on_test_end", {} if logs is None else logs)

    def _keys(self) -> list[str]:
        """Stable names for saved states: class name, numbered from the second of a kind."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    def get_state(self) -> dict:
        return {key: cb.get_state() for key, cb in zip(self._keys(), self.callbacks)}

    def state_dict(self) -> dict:
        return {key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks)}

    def load_state_dict(self, state: dict) -> None:
        for key, cb in zip(self._keys(), self.callbacks):
            if key in state:
                cb.load_state_dict(state[key])
            elif cb.state_dict():
                logger.warning(f"No saved state for callback {key}; it starts fresh")


# ---------------------------------------------------------------------------------------------
# The §2.4 standard callbacks
# ---------------------------------------------------------------------------------------------

class LearningRateMonitor(Callback):
    """Logs every learning-rate change, per parameter group, at the end of each epoch.

    Args:
        optimizer: the optimizer whose ``param_groups`` are watched.
        verbose: log each change (otherwise only record it in ``get_state()``).

    Example:
        >>> callbacks = CallbackList([LearningRateMonitor(optimizer, verbose=True)])
    """

    def __init__(self, optimizer: Any, verbose: bool = True) -> None:
        self.optimizer = optimizer
        self.verbose = verbose
        self.state: dict[str, Any] = {"last_lrs": None, "changes": []}

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        if self.state["last_lrs"] is None:
            self.state["last_lrs"] = self._lrs()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        current = self._lrs()
        previous = self.state["last_lrs"] or current
        changed = [(group, old, new) for group, (old, new) in enumerate(zip(previous, current))
                   if old != new]
        for group, old, new in changed:
            self.state["changes"].append({"epoch": epoch, "group": group, "old": old, "new": new})
        if self.verbose and changed:
            if len({(old, new) for _, old, new in changed}) == 1:  # one line when groups agree
                groups = ("all param groups" if len(changed) == len(current)
                          else f"param groups {[g for g, _, _ in changed]}")
                detail = f"{changed[0][1]:.6g} -> {changed[0][2]:.6g} ({groups})"
            else:
                detail = ", ".join(f"group {g}: {old:.6g} -> {new:.6g}" for g, old, new in changed)
            logger.info(f"LR changed after epoch {epoch + 1}: {detail}")
        self.state["last_lrs"] = current

    def get_state(self) -> dict:
        return self.state

    def state_dict(self) -> dict:
        return {"last_lrs": self.state["last_lrs"], "changes": list(self.state["changes"])}

    def load_state_dict(self, state: dict) -> None:
        self.state = {"last_lrs": state["last_lrs"], "changes": list(state["changes"])}


class GradientMonitor(Callback):
    """Watches the total gradient norm of every optimizer step (after unscaling, before clipping).

    The epoch mean of the finite norms goes into ``history['gradient_norm']``; a norm above
    ``alert_threshold`` logs a warning, a NaN or inf norm logs an error naming the step. The
    norms stay on the device between checks, so the monitor syncs only every
    ``log_interval`` steps and at epoch end.

    Args:
        model: the model (used for the norm when no trainer runs the callback).
        log_interval: optimizer steps between checks (and debug log lines).
        alert_threshold: norm above which a warning is logged.

    Example:
        >>> GradientMonitor(model, log_interval=100, alert_threshold=10.0)
    """

    def __init__(self, model: Any, log_interval: int = 100, alert_threshold: float = 10.0) -> None:
        self.model = model
        self.log_interval = max(1, int(log_interval))
        self.alert_threshold = float(alert_threshold)
        self._pending: list[tuple[int, int, int, Any]] = []  # (step, epoch, batch, norm tensor)
        self._last_step = -1
        self.state: dict[str, Any] = {"epoch_norms": [], "nonfinite_steps": [], "alerts": 0}

    def _current_norm(self) -> Any:
        if self.trainer is not None:
            return self.trainer.last_grad_norm
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else None

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        step = self.trainer.global_step if self.trainer is not None else self._last_step + 1
        if step == self._last_step:
            return  # inside an accumulation window: no optimizer step yet
        self._last_step = step
        norm = self._current_norm()
        if norm is None:
            return
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self._pending.append((step, epoch, batch, norm.detach()))
        if len(self._pending) % self.log_interval == 0:
            self._check(self._pending[-self.log_interval:])

    def _check(self, entries: list) -> None:
        values = torch.stack([e[3].float() for e in entries]).cpu().tolist()
        for (step, epoch, batch, _), value in zip(entries, values):
            if value != value or value in (float("inf"), float("-inf")):
                self.state["nonfinite_steps"].append(step)
                logger.error(f"GradientMonitor: non-finite gradient norm ({value}) at step {step} "
                             f"(epoch {epoch + 1}, batch {batch}); check the learning rate, the "
                             f"inputs for NaN/inf, or enable gradient clipping")
            elif value > self.alert_threshold:
                self.state["alerts"] += 1
                logger.warning(f"GradientMonitor: gradient norm {value:.3f} above "
                               f"{self.alert_threshold} at step {step} (epoch {epoch + 1}, "
                               f"batch {batch})")
        logger.debug(f"GradientMonitor: step {entries[-1][0]}, gradient norm {values[-1]:.4f}")

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        remainder = len(self._pending) % self.log_interval
        if remainder:
            self._check(self._pending[-remainder:])
        values = (torch.stack([e[3].float() for e in self._pending]).cpu().tolist()
                  if self._pending else [])
        finite = [v for v in values if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else float("nan")
        self._pending = []
        self.state["epoch_norms"].append(mean)
        if logs is not None:
            logs["gradient_norm"] = mean
        if self.trainer is not None:
            self.trainer.history.setdefault("gradient_norm", []).append(mean)

    def get_state(self) -> dict:
        return self.state

    def state_dict(self) -> dict:
        pending = ([[e[0], e[1], e[2]] for e in self._pending],
                   torch.stack([e[3].float().cpu() for e in self._pending]) if self._pending
                   else None)
        return {"state": {"epoch_norms": list(self.state["epoch_norms"]),
                          "nonfinite_steps": list(self.state["nonfinite_steps"]),
                          "alerts": self.state["alerts"]},
                "pending_positions": pending[0], "pending_norms": pending[1],
                "last_step": self._last_step}

    def load_state_dict(self, state: dict) -> None:
        self.state = {"epoch_norms": list(state["state"]["epoch_norms"]),
                      "nonfinite_steps": list(state["state"]["nonfinite_steps"]),
                      "alerts": state["state"]["alerts"]}
        norms = state["pending_norms"]
        self._pending = [(p[0], p[1], p[2], norms[i]) for i, p in
                         enumerate(state["pending_positions"])]
        self._last_step = state["last_step"]


def _is_improvement(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    """NaN is never an improvement; the first finite value always is."""
    if value != value:
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _require_metric(owner: str, monitor: str, logs: dict) -> float:
    if monitor not in logs:
        raise TrainingError(f"{owner} monitors '{monitor}', but the epoch's logs hold only "
                            f"{', '.join(sorted(logs))}. Set its monitor to one of those keys "
                            f"(val_* keys need a validation split).")
    return float(logs[monitor])


class EarlyStoppingCallback(Callback):
    """Ends ``fit`` when the monitored metric stops improving.

    Args:
        monitor: the logs key to watch, e.g. ``val_loss``.
        patience: epochs without improvement before stopping.
        mode: ``min`` (lower is better) or ``max``.
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: at the end of training (stopped early or not), load the weights
            of the best epoch into the model.

    Example:
        >>> EarlyStoppingCallback(monitor="val_loss", patience=10, mode="min", min_delta=1e-4)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 10, mode: str = "min",
                 min_delta: float = 0.0, restore_best_weights: bool = False) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStoppingCallback mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.state: dict[str, Any] = {"best_value": None, "best_epoch": None, "wait": 0,
                                      "stopped_epoch": None}
        self.best_weights: Optional[dict] = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = _require_metric("EarlyStoppingCallback", self.monitor, logs or {})
        if _is_improvement(value, self.state["best_value"], self.mode, self.min_delta):
            self.state.update(best_value=value, best_epoch=epoch, wait=0)
            if self.restore_best_weights and self.trainer is not None:
                self.best_weights = {k: v.detach().cpu().clone() for k, v in
                                     self.trainer.unwrapped_model.state_dict().items()}
            return
        self.state["wait"] += 1
        if self.state["wait"] >= self.patience:
            self.state["stopped_epoch"] = epoch
            logger.info(f"Early stopping: {self.monitor} has not improved for {self.state['wait']} "
                        f"epochs (best {self.state['best_value']:.4f} at epoch "
                        f"{(self.state['best_epoch'] or 0) + 1})")
            if self.trainer is not None:
                self.trainer.stop_training = True

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.trainer is not None:
            self.trainer.unwrapped_model.load_state_dict(self.best_weights)
            logger.info(f"Restored the best weights: {self.monitor}="
                        f"{self.state['best_value']:.4f} from epoch {self.state['best_epoch'] + 1}")

    def get_state(self) -> dict:
        return self.state

    def state_dict(self) -> dict:
        return {**self.state, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best_weights = state.get("best_weights")
        self.state = {k: state[k] for k in ("best_value", "best_epoch", "wait", "stopped_epoch")}


class ModelCheckpointCallback(Callback):
    """Writes the §4.2 checkpoint files atomically.

    ``best_model.pth`` whenever the monitored value improves, ``latest_model.pth`` every
    epoch (and every ``every_n_steps`` optimizer steps as a mid-epoch recovery point),
    ``checkpoint_epoch{NNN}_{monitor}{value}.pth`` every ``every_n_epochs`` epochs (every
    epoch when ``save_best_only`` is False and no period is given), ``final_model.pth`` at
    the end. Inside a trainer the files hold the trainer's full resumable state; driven by
    hand (guide §2.2) they hold the model, optimizer and the history seen in the logs.

    Args:
        checkpoint_dir: folder of the files.
        model: the model to save when no trainer drives the callback.
        optimizer: the optimizer to save when no trainer drives the callback.
        monitor: the logs key deciding the best model.
        mode: ``max`` (accuracy) or ``min`` (loss).
        save_best_only: write ``best_model.pth`` only on improvement and no per-epoch backups.
        every_n_epochs: period of the ``checkpoint_epoch{NNN}`` backups (None: see above).
        every_n_steps: period, in optimizer steps, of mid-epoch ``latest_model.pth`` saves.

    Example:
        >>> ModelCheckpointCallback(Path("./checkpoints"), model, optimizer, monitor="val_acc",
        ...                         mode="max", save_best_only=True)
    """

    def __init__(self, checkpoint_dir: Any, model: Any = None, optimizer: Any = None,
                 monitor: str = "val_acc", mode: str = "max", save_best_only: bool = True,
                 every_n_epochs: Optional[int] = None, every_n_steps: Optional[int] = None) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpointCallback mode must be 'min' or 'max', got {mode!r}")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.model = model
        self.optimizer = optimizer
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = save_best_only
        self.every_n_epochs = every_n_epochs or (None if save_best_only else 1)
        self.every_n_steps = every_n_steps or None
        self.state: dict[str, Any] = {"best_value": None, "best_epoch": None, "saved": []}
        self._history: dict[str, list[float]] = {}
        self._last_saved_step = -1

    def _checkpoint(self, epoch: int) -> dict:
        if self.trainer is not None:
            return self.trainer.state_checkpoint()
        if self.model is None:
            raise TrainingError("ModelCheckpointCallback needs a model when no trainer runs it")
        checkpoint = {"model_state_dict": self.model.state_dict(), "epoch": epoch,
                      "best_val_acc": max(self._history.get("val_acc", [0.0])),
                      "best_val_loss": min(self._history.get("val_loss", [float("inf")])),
                      "history": {k: list(v) for k, v in self._history.items()},
                      "model_class": type(self.model).__name__,
                      "model_kwargs": dict(getattr(self.model, "init_kwargs", {}))}
        if self.optimizer is not None:
            checkpoint["optimizer_state_dict"] = self.optimizer.state_dict()
        return checkpoint

    def _save(self, checkpoint: dict, name: str, kind: str, epoch: int,
              value: Optional[float]) -> None:
        save_checkpoint(checkpoint, self.checkpoint_dir / name)
        self.state["saved"].append(name)
        if self.trainer is not None:  # tell the others (the dashboard events) what was saved
            self.trainer.callbacks.on_checkpoint_saved(
                self.checkpoint_dir / name, {"kind": kind, "epoch": epoch + 1,
                                             "monitor": self.monitor, "value": value})

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.trainer is None:  # driven by hand: keep the history the logs show
            for key, value in (logs or {}).items():
                if isinstance(value, (int, float)):
                    self._history.setdefault(key, []).append(float(value))
            self.on_checkpoint(epoch, logs)

    def on_checkpoint(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        value = _require_metric("ModelCheckpointCallback", self.monitor, logs)
        improved = _is_improvement(value, self.state["best_value"], self.mode, 0.0)
        if improved:
            self.state.update(best_value=value, best_epoch=epoch)
        checkpoint = self._checkpoint(epoch)  # after the update: it carries this state
        if improved:
            self._save(checkpoint, "best_model.pth", "best", epoch, value)
            logger.info(f"✓ New best model: {self.monitor}={value:.4f}")
        self._save(checkpoint, "latest_model.pth", "latest", epoch, value)
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._save(checkpoint, get_checkpoint_filename("checkpoint", epoch + 1, value,
                                                           self.monitor),
                       "periodic", epoch, value)
        if self.trainer is not None:
            self._last_saved_step = self.trainer.global_step

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        trainer = self.trainer
        if (self.every_n_steps is None or trainer is None or trainer._window_open
                or trainer.global_step == self._last_saved_step
                or trainer.global_step % self.every_n_steps != 0):
            return
        self._last_saved_step = trainer.global_step
        self._save(trainer.state_checkpoint(), "latest_model.pth", "recovery",
                   trainer.current_epoch, None)
        logger.debug(f"Recovery checkpoint at step {trainer.global_step}")

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.trainer is not None or self.model is not None:
            epoch = self.trainer.current_epoch if self.trainer is not None else len(
                next(iter(self._history.values()), [])) - 1
            self._save(self._checkpoint(epoch), "final_model.pth", "final", epoch,
                       self.state["best_value"])

    def get_state(self) -> dict:
        return self.state

    def state_dict(self) -> dict:
        return {"best_value": self.state["best_value"], "best_epoch": self.state["best_epoch"]}

    def load_state_dict(self, state: dict) -> None:
        self.state.update(best_value=state["best_value"], best_epoch=state["best_epoch"])


class TimingCallback(Callback):
    """Epoch and batch times, throughput and ETA; adds ``epoch_time`` to the epoch's logs.

    Args:
        verbose: log a timing line after each epoch.

    Example:
        >>> TimingCallback()
    """

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose
        self.state: dict[str, Any] = {"epoch_times": [], "samples_per_sec": [],
                                      "mean_batch_time": []}
        self._epoch_start = 0.0
        self._batch_start = 0.0
        self._batch_times: list[float] = []
        self._samples = 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch_start = time.perf_counter()
        self._batch_times, self._samples = [], 0

    def on_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        self._batch_start = time.perf_counter()

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._batch_times.append(time.perf_counter() - self._batch_start)
        self._samples += int((logs or {}).get("batch_size", 0))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        elapsed = time.perf_counter() - self._epoch_start
        rate = self._samples / elapsed if elapsed > 0 else 0.0
        batch_mean = sum(self._batch_times) / len(self._batch_times) if self._batch_times else 0.0
        self.state["epoch_times"].append(elapsed)
        self.state["samples_per_sec"].append(rate)
        self.state["mean_batch_time"].append(batch_mean)
        if logs is not None:
            logs["epoch_time"] = elapsed
        if self.verbose:
            remaining = 0
            if self.trainer is not None:
                remaining = max(self.trainer.num_epochs - (epoch + 1), 0)
            recent = self.state["epoch_times"][-3:]
            eta = remaining * sum(recent) / len(recent)
            logger.info(f"Epoch time: {elapsed:.1f} s ({rate:.0f} samples/s, "
                        f"{1000 * batch_mean:.1f} ms/batch), ETA {eta:.0f} s")

    def get_state(self) -> dict:
        return self.state


class DashboardEventWriter(Callback):
    """Live progress for the dashboard (§6.2): JSON lines appended to ``events.jsonl``.

    The contract (every key, and how readers treat the file) is docs/dashboard.md. Every line
    carries ``"schema"`` (:data:`~pfdtrain.utils.events.EVENTS_SCHEMA`). Events:
    ``train_begin`` (with the run's ``config`` and the §5.3 reproducibility ``facts``), one
    ``epoch_complete`` per epoch with the guide's keys (``epoch`` counted from 1, ``val_*``
    null without validation, ``elapsed_time`` in seconds of training, carried over a resume;
    plus those of :attr:`EXTRA_KEYS` the run's history has, e.g. ``train_domain_loss``),
    ``epoch_progress`` inside an epoch at most every ``progress_interval`` seconds (also the
    run's heartbeat), ``checkpoint_saved`` after each checkpoint file, ``train_end`` with a
    ``status`` (``finished``, ``stopped_early``, ``crashed`` or ``interrupted``) and
    ``evaluation_complete`` after the pipeline's test evaluation. Each line is written whole
    with one ``write`` on a file opened for appending, so a reader tailing the file never
    sees half an event.

    A resumed run first cuts the file back to its length when the checkpoint was written
    (events of work the checkpoint does not hold, e.g. the ``epoch_complete`` of an epoch
    whose save was killed, would otherwise appear twice), then writes ``resumed`` in place
    of ``train_begin``: ``epoch`` (1-based) and ``batches_done`` say where inside which epoch
    training continues, ``step`` the optimizer step. A reader that sees the file shrink
    reads it again from the start.

    Args:
        path: the events file, usually ``<run folder>/events.jsonl``.
        progress_interval: least seconds (monotonic clock) between two ``epoch_progress``
            events; the first comes that long after the epoch starts.

    Example:
        >>> DashboardEventWriter(run_dir / "events.jsonl", progress_interval=2.0)
    """

    def __init__(self, path: Any, progress_interval: float = 2.0) -> None:
        self.path = Path(path)
        self.progress_interval = float(progress_interval)
        self._start = 0.0
        self._elapsed_before = 0.0  # training time of earlier (resumed-from) sessions
        self._resumed = False  # set by load_state_dict
        self._resumed_at_bytes: Optional[int] = None  # the file's length at the checkpoint
        # inside the running epoch (epoch_progress)
        self._epoch_t0 = 0.0
        self._epoch_first_batch = 0
        self._epoch_samples = 0
        self._last_progress = 0.0
        self._epoch_durations: list[float] = []
        self._ended = False

    def _emit(self, event: dict) -> None:
        append_event(self.path, event)

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._start

    def _total_epochs(self) -> Optional[int]:
        return self.trainer.num_epochs if self.trainer is not None else None

    def _config_and_facts(self) -> dict:
        trainer = self.trainer
        if trainer is None:
            return {"config": None, "facts": None}
        config = trainer.config
        config = config.to_dict() if hasattr(config, "to_dict") else config
        return {"config": config if isinstance(config, dict) else None,
                "facts": trainer.reproducibility_facts()}

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()
        self._ended = False
        trainer = self.trainer
        start_epoch = trainer.epochs_completed if trainer is not None else 0
        if not self._resumed:
            self._emit({"event": "train_begin", "total_epochs": self._total_epochs(),
                        "start_epoch": start_epoch + 1, "timestamp": _now(),
                        **self._config_and_facts()})
            return
        if (self._resumed_at_bytes is not None and self.path.is_file()
                and self.path.stat().st_size > self._resumed_at_bytes):
            os.truncate(self.path, self._resumed_at_bytes)
        self._emit({"event": "resumed", "epoch": trainer.current_epoch + 1,
                    "batches_done": trainer.batches_done, "step": trainer.global_step,
                    "total_epochs": self._total_epochs(),
                    "elapsed_time": round(self._elapsed_before, 3), "timestamp": _now(),
                    **self._config_and_facts()})

    #: History keys an ``epoch_complete`` carries besides the guide's, when the run has them.
    EXTRA_KEYS: tuple[str, ...] = ("train_domain_loss",)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch_t0 = self._last_progress = time.monotonic()
        self._epoch_first_batch = self.trainer.batches_done if self.trainer is not None else 0
        self._epoch_samples = 0

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._epoch_samples += int((logs or {}).get("batch_size", 0))
        now = time.monotonic()
        # Throttled by the monotonic clock: a fast loop writes one line per interval, not
        # one per batch (the file stays small and the reader's work constant).
        if self.trainer is None or now - self._last_progress < self.progress_interval:
            return
        self._last_progress = now
        trainer = self.trainer
        done = batch + 1
        batches = self._epoch_first_batch + len(trainer.train_loader)
        seconds = max(now - self._epoch_t0, 1e-9)
        per_batch = seconds / max(done - self._epoch_first_batch, 1)
        epoch_eta = max(batches - done, 0) * per_batch
        # Later epochs take as long as the finished ones did (validation included), or as
        # this one's batches suggest before any finished.
        full_epoch = (sum(self._epoch_durations[-3:]) / len(self._epoch_durations[-3:])
                      if self._epoch_durations else batches * per_batch)
        remaining_epochs = max(trainer.num_epochs - trainer.current_epoch - 1, 0)
        self._emit({"event": "epoch_progress", "epoch": trainer.current_epoch + 1,
                    "total_epochs": trainer.num_epochs, "batch": done, "batches": batches,
                    "samples_per_sec": round(self._epoch_samples / seconds, 2),
                    "epoch_eta": round(epoch_eta, 2),
                    "eta": round(epoch_eta + remaining_epochs * full_epoch, 2),
                    "elapsed_time": round(self._elapsed(), 3), "timestamp": _now()})

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        self._epoch_durations.append(time.monotonic() - self._epoch_t0)
        event = {"event": "epoch_complete", "epoch": epoch + 1,
                 "total_epochs": self._total_epochs(),
                 "train_loss": logs.get("train_loss"), "train_acc": logs.get("train_acc"),
                 "val_loss": logs.get("val_loss"), "val_acc": logs.get("val_acc"),
                 "lr": logs.get("lr"), "elapsed_time": round(self._elapsed(), 3)}
        event.update({key: logs[key] for key in self.EXTRA_KEYS if key in logs})
        self._emit(event)

    def on_checkpoint_saved(self, path: Path, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        value = logs.get("value")
        self._emit({"event": "checkpoint_saved", "file": Path(path).name,
                    "kind": logs.get("kind"), "epoch": logs.get("epoch"),
                    "monitor": logs.get("monitor"),
                    "value": float(value) if value is not None else None,
                    "timestamp": _now()})

    def _end(self, status: str, error: Optional[str] = None) -> None:
        trainer = self.trainer
        event = {"event": "train_end",
                 "epochs_completed": trainer.epochs_completed if trainer is not None else None,
                 "total_epochs": self._total_epochs(),
                 "stopped_early": bool(trainer is not None and trainer.stop_training),
                 "best_val_acc": trainer.best_val_acc if trainer is not None else None,
                 "best_val_loss": (trainer.best_val_loss if trainer is not None
                                   and trainer.best_val_loss != float("inf") else None),
                 "elapsed_time": round(self._elapsed(), 3), "timestamp": _now(),
                 "status": status}
        if error is not None:
            event["error"] = error
        self._emit(event)
        self._ended = True

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        stopped = bool(self.trainer is not None and self.trainer.stop_training)
        self._end("stopped_early" if stopped else "finished")

    def on_exception(self, exc: BaseException) -> None:
        if self._ended or not self._start:
            return  # the run already ended cleanly, or never began (nothing to close)
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "crashed"
        message = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        self._end(status, message[:1000])

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        if logs:
            self._emit(evaluation_event(logs, source="train"))

    def state_dict(self) -> dict:
        return {"elapsed_time": self._elapsed() if self._start else self._elapsed_before,
                "events_bytes": self.path.stat().st_size if self.path.is_file() else 0}

    def load_state_dict(self, state: dict) -> None:
        self._elapsed_before = float(state["elapsed_time"])
        self._resumed = True
        # checkpoints from before pfdtrain 0.2 do not know the length: keep the whole file
        length = state.get("events_bytes")
        self._resumed_at_bytes = int(length) if length is not None else None


def evaluation_event(metrics: dict, source: str) -> dict:
    """The ``evaluation_complete`` event of a metrics dict (``test_metrics.json`` of a run, or
    ``metrics.json`` of ``pfdtrain evaluate``): the file and the headline figures.

    Args:
        metrics: the metrics; ``metrics_file`` (or ``files["metrics"]``) names its file,
            relative to the run folder when it lies inside it.
        source: ``"train"`` (the pipeline's test evaluation) or ``"evaluate"``.
    """
    file = metrics.get("metrics_file") or (metrics.get("files") or {}).get("metrics")
    loss = metrics.get("loss", metrics.get("test_loss"))
    return {"event": "evaluation_complete", "source": source,
            "metrics_file": str(file) if file else None,
            # test_metrics.json's "split" describes how the data was split: that is "test"
            "split": split if isinstance(split := metrics.get("split"), str) else "test",
            "checkpoint": metrics.get("checkpoint"),
            "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
            "loss": loss, "recording_accuracy": metrics.get("recording_accuracy"),
            "ece": metrics.get("ece"), "num_samples": metrics.get("num_samples",
                                                                  metrics.get("num_windows")),
            "timestamp": _now()}


def _now() -> str:
    return now_iso()
