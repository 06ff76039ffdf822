"""Atomic file writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, IO, Iterator, Union


@contextmanager
def atomic_open(path: Union[str, Path], mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success flush, fsync and ``os.replace`` it.

    On any exception the temp file is removed and ``path`` keeps its old content. The temp
    file lives in the same folder because ``os.replace`` is atomic only within a filesystem.

    Args:
        path: final file.
        mode: ``"wb"`` or ``"w"``.

    Example:
        >>> with atomic_open("history.json", "w") as f:
        ...     json.dump(history, f)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


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
