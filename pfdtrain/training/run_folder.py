"""The run folder: its name, its lock, and what a new or resumed run finds in it.

One process trains in a run folder at a time: ``train`` and ``resume`` hold an exclusive OS
lock (``flock``) on ``<run folder>/.lock`` for as long as they run. The kernel releases it
when the process ends in any way, SIGKILL included, so a crash never leaves a stale lock;
the file's text (PID, host, command, start time) only names the holder to a second process.

A folder whose earlier attempt stopped before its first checkpoint is no dead end: ``train``
with the same name reuses it and ``resume`` starts the run again from its ``config.yaml``.

Example:
    >>> run_dir = plan_run_dir(config)          # nothing written yet
    >>> with RunFolderLock(run_dir):            # created, locked, checked
    ...     claim_run_dir(run_dir)
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.errors import PfdtrainError, output_error
from pfdtrain.utils.io import remove_stale_temp_files
from pfdtrain.utils.logging import get_logger

try:  # POSIX; Windows has no flock
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

logger = get_logger(__name__)

LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
# What a run writes into its folder besides checkpoints/ (README's run-folder table).
RUN_FILES = ("config.yaml", "history.json", "history.png", "test_metrics.json",
             "events.jsonl", "train.log", "metrics.csv")


class RunFolderBusyError(PfdtrainError):
    """Another live process trains in this run folder."""


def plan_run_dir(config: TrainingConfig) -> Path:
    """``<output_dir>/<name>``, decided without writing anything.

    A default name is ``<model>-<timestamp>``; if that folder exists (two runs started in
    the same second) a suffix ``-2``, ``-3``… is added.
    """
    root = Path(config.output_dir)
    if config.name is not None:
        return root / config.name
    name = f"{config.model.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, suffix = root / name, 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{name}-{suffix}"
    return run_dir


def has_checkpoints(run_dir: Path) -> bool:
    """Whether any checkpoint file (good or damaged) is in ``run_dir/checkpoints``."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    return folder.is_dir() and any(folder.glob("*.pth"))


def claim_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` ready for a new run; call it holding the folder's lock.

    A folder that holds a run with checkpoints is refused (resume it or pick another name).
    A folder whose earlier attempt left no checkpoint is reused: its old run files are
    removed, so that the new run's history and events start clean.
    """
    if (run_dir / "config.yaml").exists():
        if has_checkpoints(run_dir):
            raise ConfigError(f"run folder {run_dir} already holds a run; continue it with "
                              f"`pfdtrain resume {run_dir}` or choose another name")
        logger.warning(f"Reusing run folder {run_dir}: its earlier attempt stopped before its "
                       f"first checkpoint")
        clear_run_files(run_dir, keep_config=False)


def clear_run_files(run_dir: Path, keep_config: bool) -> None:
    """Remove what an attempt without checkpoints wrote (never anything pfdtrain did not write)."""
    for name in RUN_FILES:
        if keep_config and name == "config.yaml":
            continue
        (run_dir / name).unlink(missing_ok=True)
    remove_temp_files(run_dir)


def remove_temp_files(run_dir: Path) -> None:
    """Delete the temp files of writers that were killed mid-write (the lock must be held)."""
    removed = remove_stale_temp_files(run_dir) + remove_stale_temp_files(run_dir / CHECKPOINT_DIR)
    if removed:
        logger.info(f"Removed {len(removed)} temporary file(s) left by an interrupted write: "
                    f"{', '.join(p.name for p in removed)}")


class RunFolderLock:
    """Exclusive lock on a run folder for the lifetime of a ``train`` or ``resume``.

    Creates the folder if needed. A second process gets :class:`RunFolderBusyError` naming
    the holder's PID and host; nothing is waited for.

    Args:
        run_dir: the run folder.

    Example:
        >>> with RunFolderLock(Path("runs/x")):
        ...     train()
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: Optional[int] = None

    def acquire(self) -> "RunFolderLock":
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise output_error(exc, self.path) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(fd)
                os.close(fd)
                raise RunFolderBusyError(
                    f"run folder {self.run_dir} is in use by another pfdtrain process "
                    f"({holder}); two processes would interleave its checkpoints, history and "
                    f"events. Wait for that process to finish or stop it, or train under "
                    f"another name") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": " ".join(sys.argv[:4]),
                  "started": datetime.now().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError:
            pass  # the lock holds without its description (e.g. a full disk)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunFolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "it is just starting"
    return (f"PID {holder.get('pid')} on host {holder.get('host')}, started "
            f"{holder.get('started')}: {holder.get('command')}")
