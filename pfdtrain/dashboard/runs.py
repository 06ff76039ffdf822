"""Reading a folder of run folders for the dashboard: events, status, summaries (read-only).

The contract read here is docs/dashboard.md. Event files are read incrementally: each
:class:`EventLog` remembers how far it has read (a byte offset) and re-reads nothing while
the file's size and modification time are unchanged, so polling 50 runs of 1,000 epochs
each costs a ``stat`` per file. A half-written last line waits for its newline; a file
that shrank or was replaced (a resume cuts it back) is read again from the start.

Example:
    >>> store = RunStore(Path("runs"))
    >>> [(s["name"], s["status"]) for s in store.summaries()]
    [('cnn1d-20261126-101500', 'finished')]
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from pfdtrain.training.run_folder import CHECKPOINT_DIR, LOCK_FILE
from pfdtrain.utils.events import EVENTS_FILE
from pfdtrain.utils.locks import FLOCK_AVAILABLE, flock_held

#: How deep under RUNS_DIR run folders are looked for (``runs/x``; a benchmark's
#: ``runs/bench/runs/task-method-seed0``).
MAX_DEPTH = 4
#: Folders that are parts of a run, never runs themselves.
NOT_RUNS = {CHECKPOINT_DIR, "tensorboard", "__pycache__", "data"}
#: Statuses, in the order the runs page explains them.
STATUSES = ("running", "finished", "stopped_early", "crashed", "interrupted", "killed",
            "not_started", "unknown")
#: Bytes of the already-read part re-checked on each refresh: a file cut back and grown
#: again past the old offset (a resume) no longer ends with them, and is read afresh.
_TAIL_CHECK = 256


class RunNotFound(LookupError):
    """No run folder of that name under RUNS_DIR (or a name that would leave it)."""


# ------------------------------------------------------------------------------ events
class EventLog:
    """Incremental reader of one ``events.jsonl``.

    Args:
        path: the events file.

    Example:
        >>> log = EventLog(Path("runs/x/events.jsonl"))
        >>> log.refresh(); len(log.events), log.bad_lines
        (12, [])
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.events: list[dict] = []
        self.bad_lines: list[dict] = []  # {"line", "text", "error"}: corrupt complete lines
        self.generation = 0  # +1 each time the file is read again from the start
        self.partial_bytes = 0  # an unfinished last line (no newline yet)
        #: the newest ``epoch_progress`` of the running epoch (never kept in ``events``)
        self.progress: Optional[dict] = None
        #: the newest ``checkpoint_saved`` per file name (never kept in ``events``)
        self.checkpoints: dict[str, dict] = {}
        self.exists = False
        self.mtime = 0.0
        self._offset = 0
        self._lines = 0
        self._key: Optional[tuple] = None
        self._inode: Optional[int] = None
        self._tail = b""

    def _reset(self) -> None:
        self.events, self.bad_lines, self.progress, self.checkpoints = [], [], None, {}
        self._offset, self._lines, self._tail = 0, 0, b""
        self.generation += 1

    def refresh(self) -> bool:
        """Read what was appended since the last call; True when anything changed."""
        try:
            st = os.stat(self.path)
        except OSError:
            changed = self.exists
            if self.exists or self.events:
                self._reset()
            self.exists, self._key, self.partial_bytes = False, None, 0
            return changed
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._key:
            return False
        self.exists, self.mtime = True, st.st_mtime
        try:
            with open(self.path, "rb") as handle:
                if self._inode != st.st_ino or st.st_size < self._offset or not self._same_tail(handle):
                    self._reset()
                self._inode = st.st_ino
                handle.seek(self._offset)
                data = handle.read(max(st.st_size - self._offset, 0))
        except OSError:
            return False  # vanished between stat and open: the next refresh tells
        end = data.rfind(b"\n") + 1
        self._parse(data[:end])
        self._offset += end
        if end:
            self._tail = (self._tail + data[:end])[-_TAIL_CHECK:]
        self.partial_bytes = len(data) - end
        self._key = key
        return True

    def _same_tail(self, handle: Any) -> bool:
        if not self._tail:
            return True
        handle.seek(self._offset - len(self._tail))
        return handle.read(len(self._tail)) == self._tail

    def _parse(self, chunk: bytes) -> None:
        lines = chunk.split(b"\n")[:-1]
        kept, progress, progress_at = [], None, -1
        saved: dict[bytes, bytes] = {}
        for raw in lines:
            # epoch_progress comes every 2 s: only the newest one matters, so the others are
            # never decoded nor kept (a long run writes tens of thousands of them); of the
            # checkpoint_saved events only the newest per file (what the files are now)
            if raw.startswith(_PROGRESS_PREFIX):
                progress, progress_at = raw, len(kept)
            elif raw.startswith(_SAVED_PREFIX) and (name := _SAVED_FILE.search(raw)):
                saved[name.group(1)] = raw
            elif raw.strip():
                kept.append(raw)
        for raw in saved.values():
            try:
                event = json.loads(raw)
                self.checkpoints[str(event["file"])] = event
            except (ValueError, KeyError, TypeError):
                kept.append(raw)  # let the line-by-line path report it
        first = len(self.events)
        # One json.loads for the whole chunk is 3x faster than one per line; any bad line
        # sends it back to the line-by-line path, which names it.
        try:
            events = json.loads(b"[" + b",".join(kept) + b"]")
        except (ValueError, UnicodeDecodeError):
            events = None
        if events is not None and len(events) == len(kept) and all(
                isinstance(e, dict) and isinstance(e.get("event"), str) for e in events):
            self._lines += len(lines)
            self.events.extend(events)
        else:
            self._parse_lines(lines)
            progress, progress_at = None, -1
        # the newest progress, unless an epoch or the run ended after it
        if progress is not None:
            try:
                self.progress = json.loads(progress)
            except ValueError:
                self.progress = None
        for event in self.events[first + max(progress_at, 0) if progress is not None else first:]:
            if event.get("event") in _PROGRESS_ENDS:
                self.progress = None
        if any(e.get("event") == "epoch_progress" for e in self.events[first:]):
            # written by another writer than ours (other key order): same treatment
            for event in self.events[first:]:
                if event.get("event") == "epoch_progress":
                    self.progress = event
                elif event.get("event") in _PROGRESS_ENDS:
                    self.progress = None
            self.events[first:] = [e for e in self.events[first:]
                                   if e.get("event") != "epoch_progress"]
        for event in self.events[first:]:
            if event.get("event") == "checkpoint_saved" and event.get("file"):
                self.checkpoints[str(event["file"])] = event
        self.events[first:] = [e for e in self.events[first:]
                               if e.get("event") != "checkpoint_saved"]

    def _parse_lines(self, lines: list[bytes]) -> None:
        for raw in lines:
            self._lines += 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                    raise ValueError("not an object with an \"event\" name")
            except (ValueError, UnicodeDecodeError) as exc:
                self.bad_lines.append({"line": self._lines, "error": str(exc)[:200],
                                       "text": raw[:200].decode("utf-8", "replace")})
                continue
            self.events.append(event)


_PROGRESS_PREFIX = b'{"event": "epoch_progress"'
_SAVED_PREFIX = b'{"event": "checkpoint_saved"'
_SAVED_FILE = re.compile(rb'"file": "([^"\\]*)"')
#: Events after which an earlier epoch_progress no longer describes the running epoch.
_PROGRESS_ENDS = ("epoch_complete", "train_end", "train_begin", "resumed")


# ------------------------------------------------------------------------------ status
def lock_held(run_dir: Path) -> Optional[bool]:
    """Whether a process holds the run folder's ``.lock`` (``train``/``resume`` hold it,
    exclusively, for their whole life; the kernel drops it when they die in any way).

    No lock file: nothing ever trained there, so False. None when it cannot be told (no
    ``flock`` on this OS, an unreadable file); see :func:`pfdtrain.utils.locks.flock_held`.
    """
    path = run_dir / LOCK_FILE
    if FLOCK_AVAILABLE and not path.exists():
        return False
    return flock_held(path)


def run_status(events: list[dict], held: Optional[bool]) -> str:
    """The status rules of docs/dashboard.md, from the events and the lock (never the clock).

    - ``running``: a process holds the lock (also while it evaluates after ``train_end``);
    - else the last ``train_end`` (not followed by a ``resumed``) says ``finished``,
      ``stopped_early``, ``crashed`` or ``interrupted``;
    - else ``killed`` when training had begun (the process died without ``train_end``:
      SIGKILL, power loss, out of memory), ``not_started`` when no training event exists;
    - ``unknown`` when the lock cannot be probed and the run has not ended.
    """
    if held:
        return "running"
    end = None
    began = False
    for event in events:
        name = event.get("event")
        if name in ("train_begin", "resumed"):
            began, end = True, None
        elif name == "train_end":
            end = event
        elif name in ("epoch_complete", "epoch_progress"):
            began = True
    if end is not None:
        status = end.get("status")
        if status in STATUSES:
            return status
        return "stopped_early" if end.get("stopped_early") else "finished"  # before schema 1
    if held is None:
        return "unknown"
    return "killed" if began else "not_started"


# ------------------------------------------------------------------------------ one run
def _finite(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass
class _Cached:
    key: Any = None
    value: Any = None
    error: Optional[str] = None


def _read_cached(path: Path, cache: _Cached, parse: Any) -> tuple[Any, Optional[str]]:
    """``parse(text)`` of ``path``, re-read only when its size or mtime changed."""
    try:
        st = os.stat(path)
    except OSError:
        cache.key, cache.value, cache.error = None, None, None
        return None, None
    key = (st.st_size, st.st_mtime_ns)
    if key != cache.key:
        cache.key = key
        try:
            cache.value, cache.error = parse(path.read_text(encoding="utf-8")), None
        except (OSError, ValueError, yaml.YAMLError) as exc:
            cache.value, cache.error = None, f"{path.name} cannot be read: {str(exc)[:200]}"
    return cache.value, cache.error


@dataclass
class Run:
    """One run folder and what was read of it (cached between polls)."""

    root: Path
    name: str
    path: Path
    log: EventLog = field(init=False)
    _config: _Cached = field(default_factory=_Cached)
    _test: _Cached = field(default_factory=_Cached)
    _evaluation: _Cached = field(default_factory=_Cached)
    _summary_key: Any = None
    _summary: Optional[dict] = None

    def __post_init__(self) -> None:
        self.log = EventLog(self.path / EVENTS_FILE)

    # -------------------------------------------------------------- files
    def config(self) -> tuple[Optional[dict], Optional[str]]:
        """The run's config: ``config.yaml`` (rewritten by a resume), else ``train_begin``'s."""
        value, error = _read_cached(self.path / "config.yaml", self._config,
                                    lambda text: yaml.load(text, Loader=_YAML_LOADER))
        if isinstance(value, dict):
            return value, error
        return self._event_config(), error

    def _event_config(self) -> Optional[dict]:
        for event in reversed(self.log.events):
            if event.get("event") in ("train_begin", "resumed") and isinstance(
                    event.get("config"), dict):
                return event["config"]
        return None

    def test_metrics(self) -> tuple[Optional[dict], Optional[str]]:
        return _read_cached(self.path / "test_metrics.json", self._test, json.loads)

    def evaluation(self) -> tuple[Optional[dict], Optional[str]]:
        """``metrics.json`` of ``pfdtrain evaluate`` (the full report), when present."""
        return _read_cached(self.path / "metrics.json", self._evaluation, json.loads)

    def checkpoints(self) -> list[dict]:
        saved = self.log.checkpoints
        rows = []
        folder = self.path / CHECKPOINT_DIR
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            entries = []
        for entry in entries:
            if not entry.name.endswith(".pth") or not entry.is_file():
                continue
            st = entry.stat()
            event = saved.get(entry.name, {})
            rows.append({"file": entry.name, "bytes": st.st_size, "modified": st.st_mtime,
                         "kind": event.get("kind"), "epoch": event.get("epoch"),
                         "monitor": event.get("monitor"), "value": event.get("value")})
        return rows

    # -------------------------------------------------------------- views
    def refresh(self) -> None:
        self.log.refresh()

    def summary(self) -> dict:
        """The runs page row (cached while the files and the lock state are unchanged)."""
        self.refresh()
        held = lock_held(self.path)
        # the config the events carry is already decoded: parsing 50 config.yaml files
        # would cost the first page more than all their events (config.yaml is the fallback)
        config = self._event_config()
        if config is None:
            config, _ = self.config()
        test, _ = self.test_metrics()
        key = (self.log._key, self.log.generation, held, self._config.key, self._test.key,
               self._evaluation.key)
        if key == self._summary_key and self._summary is not None:
            return self._summary
        events = self.log.events
        status = run_status(events, held)
        total = epochs = None
        best_val = None
        duration = None
        started = None
        test_acc = None
        error = None
        for event in events:
            name = event.get("event")
            total = event.get("total_epochs", total)
            if name in ("train_begin",) and started is None:
                started = event.get("timestamp")
            if "elapsed_time" in event:
                duration = event.get("elapsed_time")
            if name == "epoch_complete":
                epochs = event.get("epoch")
                value = _finite(event.get("val_acc"))
                if value is not None and (best_val is None or value > best_val):
                    best_val = value
            elif name == "evaluation_complete" and event.get("split", "test") == "test":
                test_acc = _finite(event.get("accuracy"))
            elif name == "train_end":
                error = event.get("error")
            elif name == "resumed":
                error = None
        if test_acc is None and isinstance(test, dict):
            test_acc = _finite(test.get("accuracy"))
        cfg = config or {}
        data = (cfg.get("data") or {}).get("source")
        if data == "synthetic":
            data = f"synthetic ({(cfg.get('synthetic') or {}).get('kind', 'journal')})"
        self._summary_key = key
        self._summary = {
            "name": self.name, "status": status, "model": (cfg.get("model") or {}).get("name"),
            "data": data, "trainer": cfg.get("trainer"),
            "epochs_done": epochs or 0, "total_epochs": total or cfg.get("num_epochs"),
            "best_val_acc": best_val, "test_acc": test_acc, "duration": duration,
            "started": started, "last_update": self.log.mtime or None,
            "progress": self.log.progress if status == "running" else None,
            "eta": self._eta(status, epochs or 0, total, duration),
            "error": error if status in ("crashed", "interrupted") else None,
            "problems": len(self.problems(held, deep=False)),
        }
        return self._summary

    def _eta(self, status: str, done: int, total: Optional[int],
             duration: Optional[float]) -> Optional[float]:
        """Seconds left: the running epoch's ``epoch_progress`` says it best; between two of
        them, the epochs left at the mean time of those done."""
        if status != "running":
            return None
        if self.log.progress and _finite(self.log.progress.get("eta")) is not None:
            return float(self.log.progress["eta"])
        if done and total and duration:
            return max(total - done, 0) * float(duration) / done
        return None

    def problems(self, held: Optional[bool] = None, deep: bool = True) -> list[str]:
        """What is wrong with the folder, said on the page instead of breaking it (``deep``:
        also whether ``config.yaml`` parses, which the runs page does not wait for)."""
        out = [f"events.jsonl line {b['line']} is not a valid event ({b['error']}): "
               f"{b['text'][:80]!r}" for b in self.log.bad_lines]
        if not self.log.exists:
            out.append("events.jsonl is missing: no live events (an old run, callbacks.events "
                       "off, or a half-deleted folder)")
        if self.log.partial_bytes and not held:
            out.append(f"events.jsonl ends in an unfinished line ({self.log.partial_bytes} "
                       f"bytes): its writer died while writing it")
        if not (self.path / "config.yaml").is_file():
            out.append("config.yaml is missing (a half-deleted run folder?)")
        if self.log.checkpoints and not (self.path / CHECKPOINT_DIR).is_dir():
            out.append("checkpoints/ is missing although checkpoints were saved")
        for _, error in ((self.config(),) if deep else ()) + (self.test_metrics(),
                                                             self.evaluation()):
            if error:
                out.append(error)
        return out

    def detail(self) -> dict:
        """Everything the run page shows."""
        summary = self.summary()
        held = lock_held(self.path)
        config, _ = self.config()
        facts = None
        for event in self.log.events:
            if event.get("event") in ("train_begin", "resumed") and event.get("facts"):
                facts = event["facts"]
        evaluation, _ = self.evaluation()
        test, _ = self.test_metrics()
        return {"summary": summary, "config": config, "facts": facts,
                "checkpoints": self.checkpoints(), "evaluation": evaluation,
                "test_metrics": test, "problems": self.problems(held),
                "generation": self.log.generation}

    def history(self) -> dict[str, list]:
        """Per-epoch curves from ``epoch_complete`` (for the compare page)."""
        keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr")
        out: dict[str, list] = {k: [] for k in keys}
        for event in self.log.events:
            if event.get("event") == "epoch_complete":
                for k in keys:
                    out[k].append(event.get(k))
        return out


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: 10x faster


# ------------------------------------------------------------------------------ the folder
class RunStore:
    """The run folders under ``root``, found again on each scan, read incrementally.

    Args:
        root: RUNS_DIR.

    Example:
        >>> store = RunStore(Path("runs")); store.get("cnn1d-20261126-101500").detail()
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._runs: dict[str, Run] = {}
        #: held by each request: the readers keep offsets and caches that two server
        #: threads must not advance at once
        self.lock = threading.RLock()

    def scan(self) -> list[Run]:
        found: dict[str, Run] = {}
        self._walk(self.root, 0, found)
        self._runs = found
        return sorted(found.values(), key=lambda r: r.name)

    def _walk(self, folder: Path, depth: int, found: dict[str, Run]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in NOT_RUNS:
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            path = Path(entry.path)
            if any((path / marker).exists() for marker in (EVENTS_FILE, "config.yaml", LOCK_FILE,
                                                            CHECKPOINT_DIR)):
                name = path.relative_to(self.root).as_posix()
                found[name] = self._runs.get(name) or Run(self.root, name, path)
            elif depth + 1 < MAX_DEPTH:
                self._walk(path, depth + 1, found)

    def summaries(self) -> list[dict]:
        return [run.summary() for run in self.scan()]

    def get(self, name: str) -> Run:
        """The run called ``name`` (its path under RUNS_DIR, e.g. ``cnn1d-x`` or
        ``bench/runs/task-m-s0``); anything that would leave RUNS_DIR is refused.

        Raises:
            RunNotFound: no such run folder, or a name with ``..``, an absolute path, a
                symbolic link out of RUNS_DIR.
        """
        parts = name.split("/")
        if (not name or name.startswith("/") or "\\" in name or "\x00" in name
                or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
            raise RunNotFound(name)
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise RunNotFound(name)
        run = self._runs.get(name)
        if run is None:
            self.scan()
            run = self._runs.get(name)
        if run is None or run.path.resolve() != path:
            raise RunNotFound(name)
        return run

    def benchmark_results(self, extra: Optional[Path] = None) -> list[dict]:
        """``results.json`` files of ``pfdtrain benchmark`` under RUNS_DIR (and ``extra``)."""
        out = []
        for base in [self.root] + ([Path(extra).resolve()] if extra else []):
            for path in sorted(_find_files(base, "results.json", MAX_DEPTH)):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    out.append({"file": str(path.relative_to(base)), "error": str(exc)[:200]})
                    continue
                if isinstance(data, dict):
                    out.append({"file": str(path.relative_to(base)), "results": data})
        return out


def _find_files(folder: Path, name: str, depth: int) -> list[Path]:
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or entry.name in NOT_RUNS:
            continue
        if entry.name == name and entry.is_file():
            found.append(Path(entry.path))
        elif depth > 0 and entry.is_dir(follow_symlinks=False):
            found.extend(_find_files(Path(entry.path), name, depth - 1))
    return found


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer.lr": 0.001, ...}`` of a nested config dict."""
    out: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = config
    return out


def compare(runs: list[Run]) -> dict:
    """The compare page: curves, the config keys that differ, test metrics side by side."""
    configs = [flatten(run.config()[0] or {}) for run in runs]
    keys = sorted(set().union(*configs)) if configs else []
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1
              and k != "name"]
    metrics = []
    for run in runs:
        summary = run.summary()
        evaluation = run.evaluation()[0] or {}
        test = run.test_metrics()[0] or {}
        source = evaluation or test
        row = {"name": run.name, "status": summary["status"],
               "epochs": summary["epochs_done"], "duration": summary["duration"],
               "best_val_acc": summary["best_val_acc"], "test_acc": summary["test_acc"],
               "macro_f1": source.get("macro_f1"),
               "loss": source.get("loss", source.get("test_loss")),
               "recording_accuracy": evaluation.get("recording_accuracy"),
               "ece": evaluation.get("ece")}
        for snr, value in (evaluation.get("robustness") or {}).items():
            row[f"accuracy at {snr} dB"] = (value or {}).get("accuracy")
        per_class = source.get("per_class") or {}
        for cls, value in per_class.items():
            row[f"F1 {cls}"] = (value or {}).get("f1")
        metrics.append(row)
    return {"runs": [run.name for run in runs],
            "curves": {run.name: run.history() for run in runs},
            "config_diff": [{"key": k, "values": [c.get(k) for c in configs]} for k in differ],
            "metrics": metrics}
