"""The live-events file ``<run>/events.jsonl``: how a line is written (docs/dashboard.md).

Writers (the trainer's ``DashboardEventWriter``, ``pfdtrain evaluate``) append one JSON
object per line, each line whole with one ``write`` on a file opened for appending, so a
reader tailing the file never sees half an event from a live writer (only from a writer
killed inside ``write``, which readers skip as an unfinished last line).

Example:
    >>> append_event(run_dir / EVENTS_FILE, {"event": "evaluation_complete", "accuracy": 97.5})
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Union

from pfdtrain.errors import output_error

EVENTS_FILE = "events.jsonl"
#: Version of the event format, carried by every line as ``"schema"``. Raised when a key
#: changes meaning or disappears; adding keys or events keeps it.
EVENTS_SCHEMA = 1


def now_iso() -> str:
    """Local wall-clock time, to the second (the ``timestamp`` of lifecycle events)."""
    return datetime.now().isoformat(timespec="seconds")


def append_event(path: Union[str, Path], event: dict[str, Any],
                 kept: str = "the checkpoints written so far are intact") -> None:
    """Append ``event`` (plus ``"schema"``) as one line to the events file ``path``.

    Args:
        path: the events file, usually ``<run folder>/events.jsonl``.
        event: the event; its ``"event"`` key names it.
        kept: what is still intact when the write fails (said in the error).

    Raises:
        OutputError: the file cannot be written (full disk, read-only folder, ...).
    """
    path = Path(path)
    line = (json.dumps({**event, "schema": EVENTS_SCHEMA}, allow_nan=True) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise output_error(exc, path, kept) from None
