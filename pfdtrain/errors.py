"""Errors a user can fix: the CLI prints their message as one paragraph, without a traceback."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Optional, Union


class PfdtrainError(Exception):
    """Base class of every error whose message tells the user what is wrong and how to fix it."""


class TrainingError(PfdtrainError, RuntimeError):
    """The run cannot go on as configured; the message says why and what to change."""


class EvaluationError(PfdtrainError):
    """A model cannot be evaluated or applied on this data; the message says why and the fix."""


class OutputError(PfdtrainError):
    """A file could not be written (disk full, read-only, no permission, a folder in the way).

    Whatever the write was replacing is left as it was: the message says so and names the
    path and the fix.
    """


# errno -> (what happened, what to do); the errors a user fixes outside pfdtrain
_FIXES = {
    errno.ENOSPC: ("the disk is full", "free space on that filesystem or write elsewhere "
                   "(e.g. --set output_dir=… or another --out)"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space under your quota or write elsewhere"),
    errno.EFBIG: ("the file grew past the size the system allows (file size limit)",
                  "raise the limit (ulimit -f) or write elsewhere"),
    errno.EROFS: ("the filesystem is read-only", "write to a writable folder (another --out or "
                  "output_dir), or copy the run folder somewhere writable first"),
    errno.EACCES: ("permission is denied", "make the folder writable for your user "
                   "(chmod/chown) or write elsewhere"),
    errno.EPERM: ("the operation is not permitted", "make the folder writable for your user "
                  "or write elsewhere"),
    errno.EISDIR: ("a folder has that name", "give a file path, e.g. <folder>/<name>.h5, or "
                   "remove the folder"),
    errno.EEXIST: ("a file is in the way where a folder is needed", "give a folder path (e.g. "
                   "another --out) or move the file"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a path whose parents "
                    "are folders"),
}

HANDLED_ERRNOS = frozenset(_FIXES)


def output_error(exc: OSError, path: Optional[Union[str, Path]] = None,
                 kept: Optional[str] = None) -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``, naming the path and the fix.

    Args:
        exc: the ``OSError`` the write raised.
        path: the file that was being written (``exc.filename`` when not given).
        kept: what is still intact, e.g. "the previous latest_model.pth is unchanged".

    Example:
        >>> raise output_error(exc, run_dir / "latest_model.pth") from None
    """
    target = path if path is not None else (exc.filename or "the output file")
    what, fix = _FIXES.get(exc.errno, (exc.strerror or str(exc), "check the path and try again"))
    kept_text = f" {kept[0].upper()}{kept[1:]}." if kept else ""
    error = OutputError(f"cannot write {target}: {what} ([Errno {exc.errno}] "
                        f"{exc.strerror}).{kept_text} Fix: {fix}.")
    error.errno, error.filename = exc.errno, str(target)
    return error
