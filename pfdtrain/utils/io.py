"""Atomic file writes: a crash, kill or full disk mid-write never leaves a truncated file.

Temp files are named ``.<final name>.<random>.tmp`` beside their target, so a run folder's
leftovers from a killed writer are easy to find (:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

from pfdtrain.errors import HANDLED_ERRNOS, output_error

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write; on success fsync it and ``os.replace`` it.

    For libraries that write to a file name (h5py). On any exception the temp file is
    removed and ``path`` keeps its old content. The temp file lives in the same folder
    because ``os.replace`` is atomic only within a filesystem. A write that fails because
    of the filesystem (full, read-only, no permission, a folder named like the file) raises
    :class:`~pfdtrain.errors.OutputError` naming ``path`` and the fix.

    Example:
        >>> with atomic_path("data.h5") as tmp:
        ...     h5py.File(tmp, "w").close()
    """
    path = Path(path)
    kept = (f"the previous {path.name} is unchanged" if path.is_file()
            else "nothing was written there")
    if path.is_dir():
        raise output_error(IsADirectoryError(21, "Is a directory"), path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                        dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(exc, path, kept) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # on disk before it gets the final name
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # h5py reports write failures as either
        tmp.unlink(missing_ok=True)
        code = getattr(exc, "errno", None) or _errno_in_message(str(exc))
        if code not in HANDLED_ERRNOS:
            raise
        raise output_error(OSError(code, os.strerror(code)), path, kept) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_open(path: Union[str, Path], mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it atomically replaces ``path``.

    Args:
        path: final file.
        mode: ``"wb"`` or ``"w"``.

    Example:
        >>> with atomic_open("history.json", "w") as f:
        ...     json.dump(history, f)
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle


def remove_stale_temp_files(folder: Union[str, Path]) -> list[Path]:
    """Delete the temp files a killed writer left in ``folder`` (not recursive).

    Only call this while no other process writes there (a run folder's lock is held).

    Returns:
        The files removed.
    """
    removed = []
    for stale in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _errno_in_message(message: str) -> Optional[int]:
    """h5py reports a failed write as an OSError or RuntimeError without ``errno``, naming it
    in the text (``... errno = 28, error message = 'No space left on device' ...``)."""
    found = re.search(r"errno\s*=\s*(\d+)", message)
    return int(found.group(1)) if found else None


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Union[str, Path], data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
