"""Is a live process holding this lock file? (a run folder's ``.lock``, a sweep worker's).

pfdtrain's long-lived processes hold an exclusive ``flock`` on a file for their whole life;
the kernel drops it however the process ends (exit, crash, SIGKILL), so the lock says
whether its holder is alive without a clock or a PID that may have been reused.

Example:
    >>> flock_held(Path("runs/x/.lock"))   # True while `pfdtrain train` runs there
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

try:  # POSIX; Windows has no flock
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

#: Whether this OS has ``flock`` (without it a holder's liveness cannot be told).
FLOCK_AVAILABLE = fcntl is not None


def flock_held(path: Union[str, Path]) -> Optional[bool]:
    """Whether a live process holds an ``flock`` on ``path``.

    Probed with a non-blocking *shared* lock on the existing file, released at once: probes
    never block each other, and the file is never created.

    Args:
        path: the lock file.

    Returns:
        True (held), False (free), or None when it cannot be told: no ``flock`` on this OS,
        or the file is missing or unreadable (each caller decides what a missing file means).

    Example:
        >>> flock_held("sweeps/x/workers/vm-123.lock") is False   # that worker is gone
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
