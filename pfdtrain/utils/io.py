"""Atomic file writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, IO, Iterator, Union


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write; on success fsync it and ``os.replace`` it.

    For libraries that write to a file name (h5py). On any exception the temp file is
    removed and ``path`` keeps its old content. The temp file lives in the same folder
    because ``os.replace`` is atomic only within a filesystem.

    Example:
        >>> with atomic_path("data.h5") as tmp:
        ...     h5py.File(tmp, "w").close()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # on disk before it gets the final name
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
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
