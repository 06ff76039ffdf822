"""The callback system (guide §2): one ``Callback`` base, one ``CallbackList`` dispatcher.

A callback sees the trainer through ``self.trainer`` (set by ``set_trainer`` before
``on_train_begin``), so it can read the §6.2 attributes or ask the run to stop with
``self.trainer.stop_training = True``.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin",
         "on_batch_end", "on_checkpoint")


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

    def get_state(self) -> dict:
        return {type(cb).__name__: cb.get_state() for cb in self.callbacks}
