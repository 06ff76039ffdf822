"""The pruning callback: a sweep trial reports its metric each epoch and stops when pruned."""

from __future__ import annotations

from typing import Any, Optional

from pfdtrain.sweep.spec import SweepError
from pfdtrain.training.cnn_callbacks import Callback
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)


class OptunaPruningCallback(Callback):
    """Reports ``monitor`` to an Optuna trial after every epoch; ends training when pruned.

    The trial's pruner decides from the values reported so far (by this and the other
    trials of the study). A pruned trial ends like an early stop: the epoch's checkpoint is
    written, ``fit`` returns and the run folder's ``train_end`` event says
    ``stopped_early`` (not ``crashed``); :attr:`pruned_epoch` tells the sweep to record the
    trial as pruned. Steps are 0-based epochs, so the trials of a study compare like epochs.
    The last epoch is reported but never pruned: the trial has finished by then.

    Args:
        trial: the ``optuna.Trial`` being trained.
        monitor: the history key to report, e.g. ``val_acc``.

    Example:
        >>> pruning = OptunaPruningCallback(trial, monitor="val_acc")
        >>> result = run_training(config, extra_callbacks=[pruning])
        >>> pruning.pruned_epoch   # None, or the 0-based epoch it was pruned after
    """

    def __init__(self, trial: Any, monitor: str = "val_acc") -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_epoch: Optional[int] = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            # Every trial would fail the same way: a spec error, not a bad trial.
            raise SweepError(f"the sweep's metric {self.monitor!r} is not a history key of "
                             f"this run; its epochs log {', '.join(sorted(logs))}. Set metric: "
                             f"to one of those (val_* keys need a validation split)")
        value = float(logs[self.monitor])
        self.trial.report(value, step=epoch)
        last_epoch = self.trainer is not None and epoch + 1 >= self.trainer.num_epochs
        # Pruning after the last epoch would save nothing and throw a finished trial away.
        if not last_epoch and self.trial.should_prune():
            self.pruned_epoch = epoch
            logger.info(f"Trial {self.trial.number} pruned after epoch {epoch + 1}: "
                        f"{self.monitor}={value:.4f}")
            if self.trainer is not None:
                self.trainer.stop_training = True

    def get_state(self) -> dict:
        return {"trial": self.trial.number, "monitor": self.monitor,
                "pruned_epoch": self.pruned_epoch}
