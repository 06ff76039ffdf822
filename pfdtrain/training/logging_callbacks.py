"""Logs for other tools, one callback each: TensorBoard (``logging.tensorboard``) and a CSV
file (``logging.csv``). The dashboard reads ``events.jsonl`` instead (``DashboardEventWriter``).

Example:
    >>> callbacks = [TensorBoardLogger(run_dir / "tensorboard"), CSVLogger(run_dir / "metrics.csv")]
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Optional

from pfdtrain.errors import PfdtrainError, output_error
from pfdtrain.training.cnn_callbacks import Callback

#: Config keys logged as TensorBoard hyperparameters (the HParams tab compares runs by them).
HPARAM_KEYS = ("trainer", "model.name", "model.dropout", "optimizer.name", "optimizer.lr",
               "optimizer.weight_decay", "scheduler.name", "loss.name", "data.batch_size",
               "data.window_length", "data.transform", "data.split", "augment.enabled",
               "num_epochs", "seed", "mixed_precision.enabled")

#: Epoch-log keys and their TensorBoard tags (loss and accuracy curves of a split together).
SCALAR_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
               "val_acc": "accuracy/val", "lr": "lr", "gradient_norm": "gradient_norm",
               "epoch_time": "epoch_time_s"}


def _lookup(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class TensorBoardLogger(Callback):
    """Writes the run to TensorBoard through ``torch.utils.tensorboard``.

    Every epoch: losses, accuracies, learning rate, gradient norm and epoch time (step =
    epoch, from 1), and any other numeric epoch log under ``other/``. After the test
    evaluation (``on_test_end``): the hyperparameters of :data:`HPARAM_KEYS` with the final
    metrics (best validation accuracy and loss, test accuracy and macro F1) and the test
    confusion matrix as an image. A resumed run drops what the interrupted session logged
    after its checkpoint (``purge_step``), so no epoch appears twice; a new run in a reused
    folder drops the earlier attempt's.

    Args:
        log_dir: the event-file folder, usually ``<run folder>/tensorboard``.

    Example:
        >>> TensorBoardLogger(run_dir / "tensorboard")   # then: tensorboard --logdir runs/x/tensorboard
    """

    def __init__(self, log_dir: Any) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self._final: dict[str, float] = {}

    def _open(self, purge_step: Optional[int]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a dependency; a broken install lacks it
            raise PfdtrainError(f"logging.tensorboard needs the tensorboard package ({exc}); "
                                f"install it with `pip install tensorboard`, or set "
                                f"logging.tensorboard: false") from None
        try:
            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        except OSError as exc:
            raise output_error(exc, self.log_dir) from None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        # Steps from here on replace any logged before (a resumed session's epochs after its
        # checkpoint, or a reused folder's earlier attempt): TensorBoard hides them.
        done = self.trainer.epochs_completed if self.trainer is not None else 0
        self._open(done + 1)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.writer is None:
            self._open(None)
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(SCALAR_TAGS.get(key, f"other/{key}"), float(value),
                                       epoch + 1)
        self.writer.flush()  # a live TensorBoard shows the epoch now, not at exit

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        trainer = self.trainer
        self._final = {"hparam/epochs_completed": float(trainer.epochs_completed
                                                         if trainer is not None else 0)}
        if trainer is not None and trainer.history.get("val_acc"):
            self._final["hparam/best_val_acc"] = float(trainer.best_val_acc)
            self._final["hparam/best_val_loss"] = float(trainer.best_val_loss)
        if self.writer is not None:
            self.writer.flush()

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        from pfdtrain.evaluation.plots import confusion_matrix_figure

        if self.writer is None:
            self._open(None)
        logs = logs or {}
        metrics = dict(self._final)
        for key in ("accuracy", "macro_f1"):
            if isinstance(logs.get(key), (int, float)):
                metrics[f"hparam/test_{key}"] = float(logs[key])
                self.writer.add_scalar(f"test/{key}", float(logs[key]),
                                       int(metrics.get("hparam/epochs_completed", 0)))
        config = getattr(self.trainer, "config", None) if self.trainer is not None else None
        config = config.to_dict() if hasattr(config, "to_dict") else (config or {})
        hparams = {}
        for key in HPARAM_KEYS:
            value = _lookup(config, key)
            hparams[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
        if metrics:
            self.writer.add_hparams(hparams, metrics, run_name="hparams")
        if logs.get("confusion_matrix") and logs.get("class_names"):
            figure = confusion_matrix_figure(logs["confusion_matrix"], logs["class_names"],
                                             title="Test confusion matrix (row-normalised)")
            self.writer.add_figure("test/confusion_matrix", figure,
                                   int(metrics.get("hparam/epochs_completed", 0)))
        self.writer.close()

    def on_exception(self, exc: BaseException) -> None:
        if self.writer is not None:
            self.writer.close()


class CSVLogger(Callback):
    """One row per epoch in a CSV file: ``epoch`` (from 1) and every numeric epoch log.

    The columns are those of the first epoch (a resumed run keeps the file's header). Each
    row is written whole with one ``write``; a resumed run first cuts the file back to its
    length at the checkpoint, so no epoch appears twice.

    Args:
        path: the CSV file, usually ``<run folder>/metrics.csv``.

    Example:
        >>> CSVLogger(run_dir / "metrics.csv")   # then: pandas.read_csv("runs/x/metrics.csv")
    """

    def __init__(self, path: Any) -> None:
        self.path = Path(path)
        self._columns: Optional[list[str]] = None
        self._resume_bytes: Optional[int] = None

    def _append(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            raise output_error(exc, self.path, "the checkpoints written so far are intact"
                               ) from None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        if self._resume_bytes is None:
            self.path.unlink(missing_ok=True)  # a fresh run starts a fresh file
            return
        if self.path.is_file():
            if self.path.stat().st_size > self._resume_bytes:
                os.truncate(self.path, self._resume_bytes)
            with open(self.path, newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), None)
            self._columns = header or None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        values = {k: v for k, v in (logs or {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        buffer = io.StringIO()
        if self._columns is None:
            self._columns = ["epoch", *values]
            csv.writer(buffer).writerow(self._columns)
        row = {"epoch": epoch + 1, **values}
        csv.writer(buffer).writerow([row.get(column, "") for column in self._columns])
        self._append(buffer.getvalue())

    def state_dict(self) -> dict:
        return {"bytes": self.path.stat().st_size if self.path.is_file() else 0}

    def load_state_dict(self, state: dict) -> None:
        self._resume_bytes = int(state.get("bytes", 0))
