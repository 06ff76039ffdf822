"""Where a study lives, and how a trial whose worker died is found and failed.

* No ``--storage``: an Optuna journal file, ``<out>/study.journal``. Every process on one
  machine that opens it joins the same study (appends are serialised by a file lock).
* ``--storage URL``: any Optuna RDB URL (``postgresql://user:pass@host/db``,
  ``sqlite:///file.db``), so workers on many machines share one study; a path without
  ``://`` names a journal file.

A worker holds an exclusive ``flock`` on ``<out>/workers/<worker id>.lock`` for its whole
life and records that file, its machine (:func:`machine_id`: host name and kernel boot id)
and PID in every trial it runs. The kernel releases the lock when the process ends in any
way (SIGKILL included), so a RUNNING trial whose worker's lock is free on this machine
belongs to a dead worker, and so does one whose worker ran on this machine (same host name
and ``/etc/machine-id``) before it restarted (another boot id): the next worker to look
marks it FAILED (finished trials are counted; a failed one is not, so it is never counted
twice). A missing lock file proves
nothing (a worker that exits cleanly removes it, and leaves no RUNNING trial), so such a
trial is left alone. On RDB storage, trials of other machines are covered by Optuna's
heartbeat: a trial with no heartbeat for :data:`GRACE_PERIOD` seconds is failed by the next
worker that checks.

Example:
    >>> storage = open_storage(None, Path("sweeps/lr"))
    >>> with WorkerLock(Path("sweeps/lr/workers")) as worker:
    ...     fail_dead_trials(study, storage, worker)
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from pfdtrain.errors import output_error
from pfdtrain.sweep.spec import SweepError
from pfdtrain.utils.locks import flock_held

try:  # POSIX; Windows has no flock
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

JOURNAL_FILE = "study.journal"
HEARTBEAT_INTERVAL = 20  # seconds between a running trial's heartbeats (RDB storage)
GRACE_PERIOD = 90        # seconds without a heartbeat before a trial counts as dead
# A trial is created before its worker records itself in it; one that stays unclaimed this
# long was created by a worker that died in between.
UNCLAIMED_GRACE = 120


def hide_password(url: str) -> str:
    """``url`` with its password masked (``***``); a path or unparsable URL as given."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def is_rdb_url(storage: Optional[str]) -> bool:
    """Whether ``--storage`` names a database (an Optuna RDB URL, ``scheme://...``) rather
    than a journal file path (or nothing: the default journal)."""
    return storage is not None and "://" in storage


def journal_path(storage: Optional[str], out: Path) -> Path:
    """The journal file of a non-URL ``--storage``: the path given, or ``<out>/study.journal``
    when none is given."""
    return Path(storage) if storage is not None else Path(out) / JOURNAL_FILE


class FlockJournalLock:
    """The journal file's write lock as an OS ``flock`` on ``<journal>.flock``.

    Optuna's default lock is a symlink that a worker killed while appending leaves behind;
    the others then wait out a grace period (forever, when the journal path is relative: the
    stale-lock check follows the link and never finds its target). The kernel releases a
    ``flock`` when its holder dies, however it dies. Like the journal file itself, it
    serves the processes of one machine.

    Args:
        journal: the journal file.

    Example:
        >>> JournalFileBackend(str(path.resolve()), lock_obj=FlockJournalLock(path))
    """

    def __init__(self, journal: Path) -> None:
        self.path = Path(str(journal) + ".flock").resolve()
        self._fd: Optional[int] = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder releases it or dies
            except BaseException:
                os.close(fd)  # interrupted or refused: no handle left behind
                raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver pfdtrain installs named, when the URL names none.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; pfdtrain depends on psycopg2
    (``psycopg2-binary``), so a bare URL uses it unless psycopg 3 is installed.
    """
    import importlib.util

    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


def open_storage(storage: Optional[str], out: Path, create: bool = True) -> Any:
    """The Optuna storage ``storage`` names (default: the journal file under ``out``).

    Args:
        storage: an RDB URL, a journal file path, or None for ``<out>/study.journal``.
        out: the sweep's output folder.
        create: make the journal file when missing (``--summary`` only reads).

    Raises:
        SweepError: a URL that cannot be used or reached, or a missing journal when reading.
    """
    import optuna

    if not is_rdb_url(storage):
        path = journal_path(storage, out)
        if not create and not path.is_file():
            raise SweepError(f"no study file {path}: nothing has been swept there yet. Run "
                             f"`pfdtrain sweep SPEC` first, or pass the --out/--study/--storage "
                             f"the sweep ran with")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(
                str(path.resolve()), lock_obj=FlockJournalLock(path))
        except OSError as exc:
            raise output_error(exc, path) from None
        return optuna.storages.JournalStorage(backend)
    shown = hide_password(str(storage))
    scheme = str(storage).split("://", 1)[0]
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme.startswith("postgresql"):
        # an unreachable host fails in seconds instead of the OS's minutes-long TCP timeout
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat options are flagged experimental
            return optuna.storages.RDBStorage(driver_url(str(storage)), engine_kwargs=engine_kwargs,
                                              heartbeat_interval=HEARTBEAT_INTERVAL,
                                              grace_period=GRACE_PERIOD)
    except ImportError as exc:
        cause = exc.__cause__ or exc
        raise SweepError(f"storage {shown}: the database driver is not installed ({cause}); "
                         f"install it, or name an installed one in the URL (pfdtrain comes "
                         f"with psycopg2 for postgresql+psycopg2://)") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors, told as one line
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        name = type(exc).__name__
        if name in ("ArgumentError", "NoSuchModuleError"):
            raise SweepError(f"storage {shown} is not a database URL Optuna can use ({reason}); "
                             f"give e.g. postgresql://USER:PASSWORD@HOST:5432/DB or "
                             f"sqlite:///study.db, or a journal file path, or omit --storage "
                             f"for <out>/study.journal") from None
        raise SweepError(f"storage {shown} cannot be reached ({name}: {reason[:300]}); check "
                         f"that the server runs and accepts connections at that host and port, "
                         f"and that the user, password and database exist") from None


class WorkerLock:
    """This worker's liveness token: an exclusive lock on ``<folder>/<id>.lock``.

    Args:
        folder: where workers' lock files live (``<out>/workers``).

    Example:
        >>> with WorkerLock(Path("sweeps/lr/workers")) as worker:
        ...     trial.set_user_attr("worker", worker.record())
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = self.folder / f"{self.id}.lock"
        self._fd: Optional[int] = None

    def __enter__(self) -> "WorkerLock":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise output_error(exc, self.path) from None
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self._fd)
                self._fd = None
                raise output_error(exc, self.path) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
            self.path.unlink(missing_ok=True)

    def record(self) -> dict:
        """What a trial stores so that other workers can tell whether this one lives."""
        return {"id": self.id, "host": socket.gethostname(), "machine": machine_id(),
                "machine_id": _read_id(MACHINE_ID), "boot": _read_id(BOOT_ID),
                "pid": os.getpid(), "lock": str(self.path.resolve())}


BOOT_ID = "/proc/sys/kernel/random/boot_id"  # new at every boot of the kernel
MACHINE_ID = "/etc/machine-id"               # the installation's, kept across reboots


def _read_id(source: str) -> Optional[str]:
    try:
        ident = Path(source).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return ident or None


def machine_id() -> str:
    """This machine (and boot) as ``<hostname>/<boot id>``: two machines may share a host
    name (containers, cloned images), but not a kernel boot id. Falls back to
    ``/etc/machine-id``, then the host name alone, where there is no boot id."""
    host = socket.gethostname()
    ident = _read_id(BOOT_ID) or _read_id(MACHINE_ID)
    return f"{host}/{ident}" if ident else host


def _rebooted_since(owner: dict) -> bool:
    """Whether ``owner`` ran on this very machine (host name and ``/etc/machine-id`` alike)
    in an earlier boot: no process of that boot lives."""
    mine, boot = _read_id(MACHINE_ID), _read_id(BOOT_ID)
    return (owner.get("host") == socket.gethostname() and mine is not None and boot is not None
            and owner.get("machine_id") == mine and owner.get("boot") not in (None, boot))


def _lock_is_free(path: str) -> bool:
    """Whether no live process holds ``path``'s flock. A missing file (or one that cannot
    be opened) tells nothing: a worker that exits cleanly removes its file and leaves no
    RUNNING trial, so the trial's owner is unknown, never dead."""
    return flock_held(path) is False


def heartbeat_enabled(storage: Any) -> bool:
    """Whether ``storage`` records trial heartbeats (RDB storage opened by :func:`open_storage`)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def trial_id(storage: Any, study: Any, number: int) -> int:
    """The storage's id of ``study``'s trial ``number`` (public ``BaseStorage`` calls)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def fail_dead_trials(study: Any, storage: Any, worker: WorkerLock) -> list[int]:
    """Mark FAILED every RUNNING trial whose worker is gone; the numbers failed.

    On this machine a worker is gone when its lock file exists and its lock is free; on RDB
    storage Optuna's heartbeat check also fails trials of dead workers on other machines.

    Args:
        study: the ``optuna.Study``.
        storage: the storage :func:`open_storage` returned (the study's).
        worker: this worker (its own trials are never failed).
    """
    import optuna
    from optuna.trial import TrialState

    if heartbeat_enabled(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # flagged experimental since Optuna 2.9
            optuna.storages.fail_stale_trials(study)
    failed = []
    here = machine_id()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if owner is None:
            started = trial.datetime_start
            if started is None or (datetime.now() - started).total_seconds() < UNCLAIMED_GRACE:
                continue  # just created by a live worker that is about to claim it
            reason = "its worker ended before recording itself in the trial"
        elif owner.get("id") == worker.id:
            continue  # ours
        elif owner.get("machine") != here:
            if not _rebooted_since(owner):
                continue  # another machine's trial: the RDB heartbeat covers it
            reason = (f"its worker (PID {owner.get('pid')} on {owner.get('host')}) ran before "
                      f"the machine restarted")
        elif _lock_is_free(owner["lock"]):
            reason = (f"its worker (PID {owner.get('pid')} on {owner.get('host')}) ended "
                      f"mid-trial (killed or crashed)")
        else:
            continue
        try:
            storage.set_trial_user_attr(trial_id(storage, study, trial.number), "failure",
                                        f"{reason}; marked failed by worker {worker.id}")
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        except (RuntimeError, ValueError):
            continue  # another worker failed it first
        failed.append(trial.number)
    return failed


class Heartbeat:
    """Records a running trial's heartbeat in RDB storage every :data:`HEARTBEAT_INTERVAL` s.

    Optuna's ``optimize`` runs the same thread; a sweep asks and tells trials itself, so it
    runs its own. A no-op on storages without heartbeats (the journal file).

    Started right after ``ask()``: Optuna's stale-trial check only fails trials that have
    beaten at least once, so a trial whose worker dies before its first beat would stay
    RUNNING for good.

    Args:
        storage: the storage :func:`open_storage` returned (the study's).
        study: the study.
        trial: the running ``optuna.Trial``.

    Example:
        >>> with Heartbeat(storage, study, trial):
        ...     run_training(config)
    """

    def __init__(self, storage: Any, study: Any, trial: Any) -> None:
        self.storage = storage
        self.enabled = heartbeat_enabled(storage)
        # Optuna's own heartbeat thread is keyed by the storage's trial id
        self.trial_id = trial_id(storage, study, trial.number) if self.enabled else None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the grace
                pass
            if self._stop.wait(HEARTBEAT_INTERVAL):
                return

    def __enter__(self) -> "Heartbeat":
        if self.enabled:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name="sweep-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
