"""``pfdtrain sweep``: spec checks, two workers on one study, a killed worker, PostgreSQL, the
summary and bad input (issue 14 §2, §3). Every trial trains a real tiny model."""

from __future__ import annotations

import copy
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from pfdtrain.cli import main
from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.sweep.runner import run_sweep, trial_value
from pfdtrain.sweep.spec import (PRUNERS, SAMPLERS, SweepError, load_spec, parse_spec,
                                 registries_markdown)
from pfdtrain.sweep.storage import driver_url
from tests.helpers import TINY_CLI_CONFIG

REPO = Path(__file__).resolve().parent.parent
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the in-memory studies of a seed search
GOOD_LR, BAD_LR = 0.01, 1.0e-7


def _base(cache: Path, epochs: int) -> dict:
    config = copy.deepcopy(TINY_CLI_CONFIG)
    config["num_epochs"] = epochs
    config["device"] = "cpu"
    config["optimizer"] = {"lr": GOOD_LR}
    config["data"]["cache_dir"] = str(cache)
    # The test split is evaluated after each trial: keep the figures, skip the plots' cost.
    return config


def _write_spec(folder: Path, cache: Path, epochs: int = 3, **keys) -> Path:
    spec = {"config": _base(cache, epochs), "metric": "val_acc", **keys}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # one thread per worker: two workers with a thread per core each slow down many times
    env["OMP_NUM_THREADS"] = "1"
    return env


def _worker(spec: Path, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pfdtrain", "sweep", str(spec), *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # a hung worker must not outlive the test
        out, err = proc.communicate()
        raise AssertionError(f"worker still running after {timeout} s: {err[-3000:]}") from None
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """In-process trials train on one thread, like the worker processes: on a busy 2-core
    machine two OpenMP threads per tiny batch spend most of their time waiting for a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "shared-data"  # the tiny tests' shared data


# ---------------------------------------------------------------- the spec
BAD_SPECS = [
    ({"optimizer.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}, "did you mean 'lr'"),
    ({"optimiser.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}, "did you mean 'optimizer'"),
    ({"optimizer.lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "empty range"),
    ({"model.dropout": {"type": "float", "low": 0.2, "high": 0.2}}, "empty range"),
    ({"data.batch_size": {"type": "categorical", "choices": []}}, "empty choices"),
    ({"optimizer.lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}},
     "log range needs low > 0"),
    ({"optimizer.lr": {"type": "flaot", "low": 1e-4, "high": 1e-2}}, "Did you mean 'float'"),
    ({"model.dropout": {"type": "float", "low": 0.0, "high": 2.0}}, "out of range"),
    ({"num_epochs": {"type": "float", "low": 1.5, "high": 4.0}}, "must be an int"),
    ({"optimizer": {"type": "float", "low": 0.1, "high": 0.2}}, "must be a mapping"),
    ({"model.dropout": {"type": "float", "low": 0.0, "hi": 0.5}}, "Did you mean 'high'"),
    ({"name": {"type": "categorical", "choices": ["a", "b"]}}, "the sweep sets name itself"),
    ({"model.params.base_chanels": {"type": "int", "low": 4, "high": 8}},
     "Did you mean 'base_channels'"),
]


@pytest.mark.parametrize("space, message", BAD_SPECS)
def test_bad_search_spaces_are_refused_before_any_trial(space, message):
    with pytest.raises(SweepError, match=message):
        parse_spec({"space": space}, where="s.yaml")


@pytest.mark.parametrize("extra, message", [
    ({"pruner": "medain"}, "Did you mean 'median'"),
    ({"pruner": {"name": "median", "n_startup": 2}}, "Did you mean 'n_startup_trials'"),
    ({"sampler": "grid"}, "unknown sampler 'grid'; choose from tpe, random"),
    ({"metric": "test_acc"}, "never for selection"),
    ({"metric": "val_loss"}, "set direction: minimize"),
    ({"direction": "up"}, "direction 'up' is not one of"),
    ({"trails": 3}, "Did you mean 'trials'"),
    ({"base": "nowhere.yaml"}, "base config .*nowhere.yaml not found"),
    ({"set": {"num_epoch": 3}}, "did you mean 'num_epochs'"),
])
def test_bad_spec_keys_are_refused(extra, message):
    raw = {"space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}, **extra}
    with pytest.raises(SweepError, match=message):
        parse_spec(raw, where="s.yaml")


def test_a_valid_spec_applies_values_like_set(tmp_path):
    (tmp_path / "base.yaml").write_text("num_epochs: 7\noptimizer: {lr: 0.5}\n")
    spec = parse_spec({"base": "base.yaml", "set": {"optimizer.weight_decay": 0.0},
                       "space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                                  "log": True},
                                 "model.params.base_channels": {"type": "int", "low": 4,
                                                                "high": 16, "step": 4},
                                 "data.batch_size": {"choices": [16, 32]}}},
                      spec_dir=tmp_path)
    assert (spec.metric, spec.direction, spec.pruner[0], spec.sampler[0]) == (
        "val_acc", "maximize", "median", "tpe")
    config = spec.config_for({"optimizer.lr": 3e-3, "model.params.base_channels": 8,
                              "data.batch_size": 32})
    assert (config.num_epochs, config.optimizer.lr, config.optimizer.weight_decay) == (7, 3e-3, 0)
    assert config.model.params == {"base_channels": 8} and config.data.batch_size == 32
    assert spec.space["data.batch_size"].type == "categorical"
    # a seed is offset by the trial number: trial k draws the same values whichever worker
    # runs it, and two trials never repeat each other's draws
    seeded = parse_spec({"sampler": {"name": "random", "seed": 5},
                         "space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}})

    def draw(number: int) -> float:
        trial = optuna.create_study(sampler=seeded.make_sampler(number)).ask()
        return seeded.space["model.dropout"].suggest(trial)

    assert draw(3) == draw(3) != draw(4)


def test_the_documented_specs_are_valid():
    """The README's spec (its base: relative to recipes/) and the shipped example."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Hyperparameter sweeps"):]
    block = section[section.index("```yaml\n") + 8:section.index("\n```", section.index("```yaml"))]
    spec = parse_spec(yaml.safe_load(block), spec_dir=REPO / "recipes")
    assert spec.base.num_epochs == 8 and spec.base.checkpoint.monitor == "val_loss"
    assert list(spec.space) == ["optimizer.lr", "model.dropout", "data.batch_size",
                                "model.params.base_channels"]
    assert load_spec(REPO / "recipes" / "sweep-example.yaml").sampler == ("tpe", {"seed": 0})
    halving = parse_spec({"pruner": {"name": "successive_halving", "reduction_factor": 3},
                          "space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}})
    assert type(halving.make_pruner()).__name__ == "SuccessiveHalvingPruner"


def test_trial_value_is_the_best_epoch_in_the_direction():
    history = {"val_acc": [40.0, float("nan"), 70.0, 60.0], "val_loss": [1.0, 0.5, 0.7, 0.9]}
    assert trial_value(history, "val_acc", "maximize") == 70.0
    assert trial_value(history, "val_loss", "minimize") == 0.5


def test_readme_lists_the_pruners_and_samplers_of_the_registries():
    table = registries_markdown()
    assert table in (REPO / "README.md").read_text()
    assert all(f"`{name}`" in table for name in [*PRUNERS, *SAMPLERS])


# ---------------------------------------------------------------- bad input at the CLI
def test_cli_bad_input_is_one_error_line(tmp_path, capsys, cache):
    spec = _write_spec(tmp_path, cache, epochs=1, space={"model.dropout": {"type": "float", "low": 0.0,
                                                                 "high": 0.5}})

    def error(*args: str) -> str:
        assert main(["sweep", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pfdtrain: error: ") and "Traceback" not in err
        return " ".join(err.split())

    assert "sweep spec missing.yaml not found" in error("missing.yaml")
    message = error(str(spec), "--storage", "postgresql://nobody@127.0.0.1:1/x",
                    "--out", str(tmp_path / "o"))
    assert "cannot be reached" in message and "127.0.0.1:1" in message
    assert "check that the server runs" in message
    assert "not a database URL" in error(str(spec), "--storage", "nosuchdb://x/y",
                                         "--out", str(tmp_path / "o"))
    message = error(str(spec), "--summary", "--out", str(tmp_path / "never"))
    assert "no study file" in message and "Run `pfdtrain sweep SPEC` first" in message
    run_sweep(spec, trials=1, out=tmp_path / "o", echo=lambda line: None)
    assert "no study named 'other'" in error(str(spec), "--summary", "--study", "other",
                                             "--storage", str(tmp_path / "o" / "study.journal"))
    # a new study (the journal removed) never trains into the old study's run folders
    (tmp_path / "o" / "study.journal").rename(tmp_path / "old.journal")
    assert "already holds a run" in error(str(spec), "--out", str(tmp_path / "o"))
    (tmp_path / "old.journal").replace(tmp_path / "o" / "study.journal")
    # the study remembers its space: a changed spec does not mix its trials in
    changed = _write_spec(tmp_path, cache, epochs=1, space={"model.dropout": {"type": "float",
                                                                    "low": 0.0, "high": 0.4}})
    assert "was created with another space" in error(str(changed), "--out", str(tmp_path / "o"))
    # ... and its base config: another set:/config: is refused the same way
    changed = _write_spec(tmp_path, cache, epochs=2, space={"model.dropout": {"type": "float",
                                                                    "low": 0.0, "high": 0.5}})
    assert "was created with another base config" in error(str(changed), "--out",
                                                           str(tmp_path / "o"))


def test_a_metric_the_runs_do_not_log_names_the_keys(tmp_path, cache):
    spec = _write_spec(tmp_path, cache, epochs=1, metric="val_acuracy",
                       space={"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}})
    with pytest.raises(SweepError, match=r"'val_acuracy' is not a history key.*val_acc"):
        run_sweep(spec, trials=1, out=tmp_path / "o", echo=lambda line: None)


# ---------------------------------------------------------------- two workers, one study
def _seed_with_good_then_bad(spec_path: Path, trials: int) -> int:
    """A sampler seed whose trials 0 and 1 draw the good learning rate and some later trial
    the bad one: whichever worker runs it, that bad trial meets a completed good trial and
    is pruned (the random sampler draws trial k from seed + k alone)."""
    raw = yaml.safe_load(spec_path.read_text())
    for seed in range(200):
        raw["sampler"] = {"name": "random", "seed": seed}
        spec = parse_spec(raw)
        lrs = []
        for number in range(trials):
            trial = optuna.create_study(sampler=spec.make_sampler(number)).ask()
            # the sweep draws the keys in the space's order: so does this
            lrs.append({k: p.suggest(trial) for k, p in spec.space.items()}["optimizer.lr"])
        if lrs[:2] == [GOOD_LR, GOOD_LR] and BAD_LR in lrs[2:]:
            return seed
    raise AssertionError("no seed gives the pattern")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, cache):
    folder = tmp_path_factory.mktemp("two-workers")
    spec = _write_spec(folder, cache, epochs=3, pruner={"name": "median", "n_startup_trials": 1},
                       space={"optimizer.lr": {"type": "categorical", "choices": [GOOD_LR, BAD_LR]},
                              "model.dropout": {"type": "float", "low": 0.0, "high": 0.5}})
    raw = yaml.safe_load(spec.read_text())
    raw["sampler"] = {"name": "random", "seed": _seed_with_good_then_bad(spec, 4)}
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    workers = [_worker(Path("spec.yaml"), folder, "--trials", "4") for _ in range(2)]
    try:
        outputs = [_finish(w) for w in workers]
    finally:
        for w in workers:  # one that failed must not leave the other running into later tests
            if w.poll() is None:
                w.kill()
                w.communicate()
    return folder, folder / "sweeps" / "spec", outputs


def test_two_workers_share_one_study(two_workers):
    folder, out, outputs = two_workers
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    trials = optuna.load_study(study_name="spec", storage=storage).get_trials()
    states = [t.state.name for t in trials]
    # exactly the requested count finished, none left running, none failed
    assert len(trials) == 4 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "PRUNED" in states and "COMPLETE" in states
    # each trial was run once, by one worker, in its own ordinary run folder (which worker ran
    # how many depends on when each started: on a loaded machine one may run them all)
    announced = [line.split()[2] for o in outputs for line in o.splitlines()
                 if line.startswith("[") and " trial " in line]
    assert sorted(announced) == ["0", "1", "2", "3"]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    for t in trials:
        run_dir = folder / t.user_attrs["run_dir"]
        assert run_dir.name == f"trial-{t.number:04d}"
        config = TrainingConfig.from_yaml(run_dir / "config.yaml")
        assert config.optimizer.lr == t.params["optimizer.lr"]
        assert (run_dir / "checkpoints" / "latest_model.pth").is_file()
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        end = next(e for e in events if e["event"] == "train_end")
        # a pruned trial ends like an early stop, not a crash
        assert end["status"] == ("stopped_early" if t.state.name == "PRUNED" else "finished")
        history = json.loads((run_dir / "history.json").read_text())
        assert len(history["val_acc"]) == len(t.intermediate_values)  # reported every epoch
        if t.state.name == "COMPLETE":
            assert t.value == max(history["val_acc"])
        if t.params["optimizer.lr"] == BAD_LR:  # it learns nothing: below a completed trial
            assert t.state.name == "PRUNED"


def test_summary_writes_a_best_config_train_takes(two_workers, capsys):
    folder, out, _ = two_workers
    assert main(["sweep", str(folder / "spec.yaml"), "--summary", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    config = TrainingConfig.from_yaml(out / "best.yaml")
    assert config.optimizer.lr == best["params"]["optimizer.lr"] == GOOD_LR
    assert config.model.dropout == pytest.approx(best["params"]["model.dropout"])
    assert config.name is None and config.output_dir == "runs"  # a new run, not a trial's
    assert f"best: trial {best['number']}" in printed
    # the table's row of the best trial names its state and run folder
    row = next(line for line in printed.splitlines() if line.split()[:1] == [str(best["number"])])
    assert row.split()[1] == "complete" and row.rstrip().endswith(f"trial-{best['number']:04d}")
    assert f"run folder {best['run_dir']})" in (out / "best.yaml").read_text()
    assert "pruned" in printed and "parameter importances need at least 4" in printed


# ---------------------------------------------------------------- a killed worker
def test_a_worker_killed_mid_trial_is_failed_and_the_study_goes_on(tmp_path, cache):
    _write_spec(tmp_path, cache, epochs=4, pruner="none",
                       space={"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}})
    events = tmp_path / "sweeps" / "spec" / "runs" / "trial-0000" / "events.jsonl"
    first = _worker(Path("spec.yaml"), tmp_path, "--trials", "2")
    deadline = time.monotonic() + 90
    while not (events.is_file() and "epoch_complete" in events.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert "train_end" not in events.read_text()  # killed mid-trial, not after it
    out = _finish(_worker(Path("spec.yaml"), tmp_path, "--trials", "2"))
    assert "trial 0 marked failed: its worker ended mid-trial" in out
    summary = json.loads((tmp_path / "sweeps" / "spec" / "summary.json").read_text())
    states = {t["number"]: t["state"] for t in summary["trials"]}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    assert "ended mid-trial" in summary["trials"][0]["failure"]
    assert summary["counts"]["COMPLETE"] == 2
    # the killed trial's folder is still an ordinary run folder `pfdtrain resume` can finish
    assert (tmp_path / "sweeps" / "spec" / "runs" / "trial-0000" / "config.yaml").is_file()


# ---------------------------------------------------------------- PostgreSQL
def _version_key(path: str) -> tuple:
    """``/usr/lib/postgresql/16/bin/initdb`` → ``(16,)``: numeric, so 16 sorts after 9.6."""
    version = Path(path).parent.parent.name
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        if (Path(bindir) / "initdb").is_file():
            return Path(bindir)
    except (OSError, subprocess.SubprocessError):
        pass
    # Debian: not on PATH; the highest version when several are installed
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    """Skip, saying why; on CI (``CI`` set) PostgreSQL is installed, so a broken one fails."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is installed but cannot be used: {reason}")
    pytest.skip(reason)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return f"(no {path.name})"


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free port, removed afterwards."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH, in pg_config --bindir or "
                    "/usr/lib/postgresql/*/bin); .ci/run installs it")
    folder = Path(tempfile.mkdtemp(prefix="pfdtrain-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        runuser = shutil.which("runuser")
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            runuser = None
        if runuser is None:
            shutil.rmtree(folder)
            _unavailable("running as root without a 'postgres' user and runuser: PostgreSQL "
                         "refuses to run as root")
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port, log = folder / "data", _free_port(), folder / "log"
    run = dict(capture_output=True, text=True, cwd=folder)
    started = False
    try:
        try:
            # C locale, UTF-8: initdb fails where the environment's locale is not installed
            init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A",
                                   "trust", "-U", "postgres", "--locale=C", "-E", "UTF8"],
                                  timeout=120, **run)
        except subprocess.TimeoutExpired:
            _unavailable("initdb did not finish in 120 s")
        if init.returncode != 0:
            _unavailable(f"initdb failed here: {init.stderr.strip()[-300:]}")
        started = True  # from here on stopped in finally (a failed stop does no harm)
        try:
            start = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w",
                                    "-t", "30", "-l", str(log), "-o",
                                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -F",
                                    "start"], timeout=60, **run)
        except subprocess.TimeoutExpired:
            _unavailable(f"pg_ctl start did not return in 60 s; server log: {_tail(log)}")
        if start.returncode != 0:
            _unavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]}; server log: "
                         f"{_tail(log)}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            try:
                subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m",
                                "immediate", "-w", "-t", "30", "stop"], timeout=60, **run)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(folder, ignore_errors=True)


def test_a_study_in_postgresql(tmp_path, cache, postgres_url):
    spec = _write_spec(tmp_path, cache, epochs=2, pruner="none",
                       space={"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}})
    lines: list[str] = []
    summary = run_sweep(spec, trials=2, storage=postgres_url, out=tmp_path / "o",
                        echo=lines.append)
    assert summary["counts"]["COMPLETE"] == 2
    assert lines[-1].startswith("parameter importances need at least 4 completed trials (this "
                                "study has 2")
    # a second worker (here: a later one) joins the same study and finds it done
    again = run_sweep(spec, trials=2, storage=postgres_url, out=tmp_path / "o2",
                      echo=lambda line: None)
    assert [t["number"] for t in again["trials"]] == [0, 1]
    study = optuna.load_study(study_name="spec", storage=driver_url(postgres_url))
    assert study.best_trial.number == summary["best"]["number"]


# ---------------------------------------------------------------- races and dead workers
_SPACE = {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}


def _study_with(finished: int, running: int):
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    for _ in range(finished):
        study.tell(study.ask(), 1.0)
    for _ in range(running):
        study.ask()  # other workers' trials
    return study, storage


def test_a_trial_asked_beyond_the_count_is_ended_unrun(tmp_path):
    from pfdtrain.sweep.runner import _run_trial, admitted
    from pfdtrain.sweep.storage import WorkerLock
    from pfdtrain.sweep.summary import trial_rows

    # two workers saw room for one more trial and both asked: the lower number wins
    study, storage = _study_with(finished=2, running=0)
    first, second = study.ask(), study.ask()
    assert admitted(study, first.number, 3) and not admitted(study, second.number, 3)
    assert admitted(study, second.number, 4)
    # N-1 finished + 1 running (another worker's): a newly asked trial is surplus
    study, storage = _study_with(finished=2, running=1)
    spec = parse_spec({"space": _SPACE})
    lines: list[str] = []
    with WorkerLock(tmp_path / "workers") as worker:
        state = _run_trial(study, storage, spec, tmp_path / "o", worker, lines.append, 3)
    assert state == "SURPLUS" and lines == []
    late = study.get_trials()[-1]
    assert late.number == 3 and late.state.name == "FAIL" and late.user_attrs["surplus"]
    assert not (tmp_path / "o" / "runs").exists()  # no run folder
    assert [r["number"] for r in trial_rows(study)] == [0, 1, 2]  # not in the table


def test_only_trials_of_dead_workers_on_this_machine_are_failed(tmp_path):
    from pfdtrain.sweep.storage import (BOOT_ID, MACHINE_ID, WorkerLock, _read_id,
                                        fail_dead_trials, machine_id, trial_id)

    study, storage = _study_with(finished=0, running=5)
    dead_lock = tmp_path / "dead.lock"
    dead_lock.touch()  # a killed worker's file: left behind, its flock free
    owners = [
        {"id": "dead", "host": socket.gethostname(), "machine": machine_id(),
         "lock": str(dead_lock)},
        # same host name, another machine (container, cloned image): its lock is not ours
        {"id": "twin", "host": socket.gethostname(), "machine": socket.gethostname() + "/other",
         "lock": str(dead_lock)},
        # a missing lock file proves nothing
        {"id": "gone", "host": socket.gethostname(), "machine": machine_id(),
         "lock": str(tmp_path / "missing.lock")},
        # this machine (host name and /etc/machine-id) before a restart (another boot id)
        {"id": "before-reboot", "host": socket.gethostname(),
         "machine": socket.gethostname() + "/old-boot", "boot": "old-boot",
         "machine_id": _read_id(MACHINE_ID), "lock": str(tmp_path / "missing.lock")},
    ]
    for number, owner in enumerate(owners):
        storage.set_trial_user_attr(trial_id(storage, study, number), "worker", owner)
    with WorkerLock(tmp_path / "workers") as worker:
        storage.set_trial_user_attr(trial_id(storage, study, 4), "worker", worker.record())
        rebooted = _read_id(MACHINE_ID) is not None and _read_id(BOOT_ID) is not None
        assert fail_dead_trials(study, storage, worker) == ([0, 3] if rebooted else [0])
    assert [t.state.name for t in study.get_trials()] == [
        "FAIL", "RUNNING", "RUNNING", "FAIL" if rebooted else "RUNNING", "RUNNING"]
    assert machine_id().startswith(socket.gethostname() + "/")


def test_a_trial_ended_elsewhere_while_it_trains_is_one_line(tmp_path, monkeypatch):
    """Another worker marked the trial failed: the pruning callback's report raises inside
    fit; the worker says so in one line and goes on."""
    import pfdtrain.pipeline
    from pfdtrain.sweep.runner import _run_trial
    from pfdtrain.sweep.storage import WorkerLock

    study, storage = _study_with(finished=0, running=0)

    def fit_failed_elsewhere(config, extra_callbacks=(), **kwargs):
        number = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))[0].number
        study.tell(number, state=optuna.trial.TrialState.FAIL)  # "another worker"
        extra_callbacks[0].on_epoch_end(0, {"val_acc": 50.0})
        raise AssertionError("report on a finished trial must raise")

    monkeypatch.setattr(pfdtrain.pipeline, "run_training", fit_failed_elsewhere)
    lines: list[str] = []
    with WorkerLock(tmp_path / "workers") as worker:
        state = _run_trial(study, storage, parse_spec({"space": _SPACE}), tmp_path / "o",
                           worker, lines.append, 2)
    assert state == "ENDED" and study.get_trials()[0].state.name == "FAIL"
    assert lines == ["trial 0 was ended by another worker while it ran; it is not counted, "
                     "going on"]


def test_a_storage_failure_mid_sweep_is_one_error_line(tmp_path, cache, monkeypatch, capsys):
    import sqlalchemy.exc

    import pfdtrain.pipeline

    def lost(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed "
                                                                            "the connection"))

    monkeypatch.setattr(pfdtrain.pipeline, "run_training", lost)
    spec = _write_spec(tmp_path, cache, epochs=1, space=_SPACE)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfdtrain: error: ") and "Traceback" not in err
    assert "failed mid-sweep (OperationalError" in err and "rerun the same command" in err
    assert "server closed the connection" in " ".join(err.split())


def test_best_yaml_is_the_config_the_best_trial_ran(tmp_path):
    from types import SimpleNamespace

    from pfdtrain.sweep.summary import best_config

    spec = parse_spec({"set": {"num_epochs": 3}, "space": _SPACE})
    run_dir = tmp_path / "runs" / "trial-0002"
    run_dir.mkdir(parents=True)
    ran = spec.config_for({"model.dropout": 0.25}, name="trial-0002",
                          output_dir=str(run_dir.parent))
    (run_dir / "config.yaml").write_text(TrainingConfig.from_dict(
        {**ran.to_dict(), "num_epochs": 5}).to_yaml())  # what the trial really ran
    trial = SimpleNamespace(user_attrs={"run_dir": str(run_dir)},
                            params={"model.dropout": 0.25})
    config = best_config(trial, spec)
    assert (config.num_epochs, config.model.dropout) == (5, 0.25)
    assert (config.name, config.output_dir) == (spec.base.name, spec.base.output_dir)
    # no run folder (moved away): rebuilt from the spec
    trial.user_attrs["run_dir"] = str(tmp_path / "moved")
    assert best_config(trial, spec).num_epochs == 3


def test_a_changed_base_config_is_refused_like_a_changed_space():
    raw = {"set": {"num_epochs": 3}, "space": _SPACE}
    same = parse_spec(raw).identity()
    assert parse_spec({**raw, "set": {"num_epochs": 3, "name": "x"}}).identity() == same
    changed = parse_spec({**raw, "set": {"num_epochs": 4}}).identity()
    assert changed != same and changed["space"] == same["space"]


def test_pruning_stops_training_but_never_after_the_last_epoch():
    from pfdtrain.sweep.pruning import OptunaPruningCallback
    from tests.helpers import tiny_trainer

    # A pruner that prunes every report: val_acc (0-100) is always below 1000.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=1000.0))
    for epochs, expected_pruned, expected_epochs in ((3, 0, 1), (1, None, 1)):
        trial = study.ask()
        pruning = OptunaPruningCallback(trial, monitor="val_acc")
        history = tiny_trainer(callbacks=[pruning]).fit(epochs)
        assert pruning.pruned_epoch == expected_pruned
        assert len(history["val_acc"]) == expected_epochs
        assert list(study.trials[-1].intermediate_values) == [0]  # epoch 0 was reported


def test_a_pruned_trial_shows_its_best_value_like_the_progress_line():
    from pfdtrain.sweep.summary import trial_rows

    for direction, expected in (("maximize", 30.0), ("minimize", 10.0)):
        study = optuna.create_study(direction=direction)
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, intermediate_values={0: 10.0, 1: 30.0, 2: 20.0},
            params={"x": 0.5}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)}))
        # as the sweep ends one: Optuna then gives it its last reported value (20)
        trial = study.ask()
        for step, value in enumerate((10.0, 30.0, 20.0)):
            trial.report(value, step)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        assert study.trials[-1].value == 20.0
        assert [r["value"] for r in trial_rows(study)] == [expected, expected]
