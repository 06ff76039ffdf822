"""Structured logging (guide §1.2): ``get_logger(__name__)`` everywhere, one set-up per process.

Log records go through ``tqdm.write`` so they never tear a live progress bar.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Optional, Union

from tqdm import tqdm

ROOT_LOGGER = "pfdtrain"
_FORMAT = "%(asctime)s | %(levelname)-7s | %(message)s"
_DATEFMT = "%H:%M:%S"


class _TqdmHandler(logging.StreamHandler):
    """Writes above any active tqdm bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never crash training
            self.handleError(record)


def get_logger(name: str) -> logging.Logger:
    """Logger for a module, inside the ``pfdtrain`` hierarchy.

    Args:
        name: usually ``__name__``.

    Example:
        >>> logger = get_logger(__name__)
        >>> logger.info("Epoch 1/10 - ...")
    """
    if not name.startswith(ROOT_LOGGER):
        name = f"{ROOT_LOGGER}.{name}"
    root = logging.getLogger(ROOT_LOGGER)
    if not root.handlers:
        setup_logging()
    return logging.getLogger(name)


class _RunLogFileHandler(logging.FileHandler):
    """``train.log``: a failed write (full disk) stops the file, never the run or the console."""

    def handleError(self, record: logging.LogRecord) -> None:
        root = logging.getLogger(ROOT_LOGGER)
        root.removeHandler(self)
        exc = sys.exc_info()[1]
        root.warning(f"Stopped writing {self.baseFilename}: {exc}; the console keeps logging")


_FILE_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s | %(message)s"


def setup_logging(level: Union[int, str] = logging.INFO, log_file: Optional[Path] = None,
                  quiet: bool = False, hold_for_file: bool = False) -> None:
    """(Re)configure the ``pfdtrain`` loggers: console through tqdm, optionally a file too.

    Args:
        level: minimum level shown.
        log_file: also append every record to this file (the run folder's ``train.log``).
        quiet: console shows warnings and errors only (non-zero DDP ranks).
        hold_for_file: keep the records in memory until :func:`attach_log_file` names the
            file (a run folder is created only once config and data are validated, and its
            ``train.log`` still starts with the first line of the run).
    """
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    root.propagate = False
    console = _TqdmHandler(sys.stderr)
    console.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
    if quiet:
        console.setLevel(logging.WARNING)
    root.addHandler(console)
    if hold_for_file:
        root.addHandler(logging.handlers.MemoryHandler(capacity=100_000,
                                                       flushLevel=logging.CRITICAL + 1))
    if log_file is not None:
        attach_log_file(log_file)


def attach_log_file(log_file: Path) -> None:
    """Append the ``pfdtrain`` records to ``log_file`` from now on, the held ones first."""
    root = logging.getLogger(ROOT_LOGGER)
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    file_handler = _RunLogFileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    for held in [h for h in root.handlers if isinstance(h, logging.handlers.MemoryHandler)]:
        held.setTarget(file_handler)
        held.flush()
        root.removeHandler(held)
        held.close()
    root.addHandler(file_handler)
