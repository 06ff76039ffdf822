"""``pfdtrain benchmark SUITE``: every task × method × seed of a suite, one table.

    pfdtrain benchmark cwru-loads --root ../shared/data/cwru-12k-de --seeds 0 1 2
    pfdtrain benchmark rolling-element --methods cnn1d coral --out benchmarks/sim

Each task × method × seed is an ordinary run folder (``<out>/runs/<task>-<method>-seed<N>``)
trained with ``pfdtrain``'s one trainer loop and scored by ``pfdtrain evaluate`` on the
task's test recordings (window and recording accuracy; noise columns where the suite has
them). After every run ``<out>/results.jsonl`` gains its line and ``<out>/results.md`` and
``results.json`` are rewritten (mean ± std over seeds per task and method, the average over
the tasks, published figures beside ours where the protocol is comparable). An interrupted
benchmark started again with the same command skips the runs it finished and resumes the one
it was in (from that run's newest checkpoint).

Example:
    >>> results = run_benchmark("journal", seeds=[0], methods=["cnn1d"], out=Path("b"),
    ...                         epochs=1)                    # doctest: +SKIP
    >>> results["summary"]["journal"]["cnn1d"]["accuracy"]["mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from pfdtrain import __version__
from pfdtrain.benchmark.methods import METHODS
from pfdtrain.benchmark.references import REFERENCES
from pfdtrain.benchmark.suites import QUIET, RECIPE, SUITES, BenchmarkError, SuiteContext, Task
from pfdtrain.utils.io import atomic_open, write_json
from pfdtrain.utils.naming import did_you_mean


def run_key(task: str, method: str, seed: int) -> str:
    return f"{task}/{method}/seed{seed}"


def _overrides(suite: str, task: Task, method: str, seed: int, epochs: int, out: Path
               ) -> list[str]:
    m = METHODS[method]
    return [*RECIPE, *SUITES[suite].common, *QUIET, *task.overrides, *m.overrides,
            *(task.adaptation if m.needs_target else ()), *(task.physics if m.physics else ()),
            f"seed={seed}", f"num_epochs={epochs}", f"output_dir={out / 'runs'}",
            f"name={task.name}-{method}-seed{seed}", f"data.cache_dir={out / 'cache'}"]


def run_one(suite: str, task: Task, method: str, seed: int, epochs: int, out: Path
            ) -> dict[str, Any]:
    """Train (or finish) one run and score its checkpoint on the task's test recordings."""
    from pfdtrain.config.training_config import TrainingConfig, apply_overrides
    from pfdtrain.evaluation.evaluate import evaluate_checkpoint
    from pfdtrain.pipeline import resume_training, run_training

    overrides = _overrides(suite, task, method, seed, epochs, out)
    config = apply_overrides(TrainingConfig(), overrides)
    run_dir = out / "runs" / str(config.name)
    started = time.perf_counter()
    if not (run_dir / "test_metrics.json").is_file():   # written when a run has finished
        if (run_dir / "config.yaml").is_file():
            resume_training(run_dir, progress_bar=False, quiet=True)
        else:
            run_training(config, progress_bar=False, quiet=True)
    snrs = SUITES[suite].snrs
    metrics = evaluate_checkpoint(run_dir / "checkpoints" / task.checkpoint,
                                  out_dir=run_dir / "evaluation", snrs=snrs or None)
    return {"key": run_key(task.name, method, seed), "suite": suite, "task": task.name,
            "method": method, "seed": seed, "run_dir": str(run_dir), "overrides": overrides,
            "checkpoint": task.checkpoint, "epoch": metrics["epoch"],
            "num_test_windows": metrics["num_windows"],
            "accuracy": metrics["accuracy"],
            "recording_accuracy": metrics["recording"]["accuracy"],
            "noise": {f"{snr:g}": metrics["robustness"][f"{snr:g}"]["accuracy"]
                      for snr in snrs},
            "seconds": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------- the table
def _columns(suite: str) -> list[tuple[str, str]]:
    return ([("accuracy", "window acc %"), ("recording_accuracy", "recording acc %")]
            + [(f"noise:{snr:g}", f"{snr:g} dB %") for snr in SUITES[suite].snrs])


def _value(run: dict, column: str) -> float:
    if column.startswith("noise:"):
        return float(run["noise"][column.split(":", 1)[1]])
    return float(run[column])


def _stats(values: Sequence[float]) -> dict[str, Any]:
    # population std over seeds: defined for one seed too (0), and what the table states
    return {"mean": round(statistics.fmean(values), 2),
            "std": round(statistics.pstdev(values), 2), "n": len(values),
            "per_seed": [round(v, 2) for v in values]}


def summarise(suite: str, runs: Sequence[dict], tasks: Sequence[str], methods: Sequence[str]
              ) -> dict[str, Any]:
    """mean ± std over seeds per task × method × column, and the average over tasks (the
    mean of each seed's task average, over the seeds every task has)."""
    summary: dict[str, Any] = {}
    for task in tasks:
        for method in methods:
            mine = sorted((r for r in runs if r["task"] == task and r["method"] == method),
                          key=lambda r: r["seed"])
            if mine:
                summary.setdefault(task, {})[method] = {
                    "seeds": [r["seed"] for r in mine],
                    **{c: _stats([_value(r, c) for r in mine]) for c, _ in _columns(suite)}}
    average: dict[str, Any] = {}
    for method in methods:
        by_task = {t: {r["seed"]: r for r in runs if r["task"] == t and r["method"] == method}
                   for t in tasks}
        if not all(by_task.values()):
            continue  # an average over some tasks only would not be comparable
        seeds = sorted(set.intersection(*(set(v) for v in by_task.values())))
        if seeds:
            average[method] = {"seeds": seeds, "tasks": len(tasks), **{
                c: _stats([statistics.fmean(_value(by_task[t][s], c) for t in tasks)
                           for s in seeds]) for c, _ in _columns(suite)}}
    return {"tasks": summary, "average": average}


def _references(summary: dict, task_info: dict[str, Task]) -> list[str]:
    """The published results cited beside the table: its tasks' and its methods'."""
    methods = {m for t in summary["tasks"].values() for m in t}
    return sorted({t.reference for t in task_info.values() if t.reference}
                  | {METHODS[m].reference for m in methods if METHODS[m].reference})


def markdown(suite: str, summary: dict, task_info: dict[str, Task], skipped: list[str],
             command: str, epochs: int) -> str:
    cols = _columns(suite)
    head = ("| method | seeds | " + " | ".join(label for _, label in cols) + " |\n"
            + "| --- | --- |" + " ---: |" * len(cols))

    def row(method: str, cells: dict) -> str:
        return (f"| {method} | {','.join(map(str, cells['seeds']))} | "
                + " | ".join(f"{cells[c]['mean']:.2f} ± {cells[c]['std']:.2f}" for c, _ in cols)
                + " |")

    lines = [f"# Benchmark `{suite}`: {SUITES[suite].what}", "",
             f"`{command}` (pfdtrain {__version__}, {epochs} epochs per run). Accuracy on the "
             f"task's test recordings, mean ± std (population) over seeds; recording accuracy "
             f"is the soft vote over each recording's windows.", ""]
    if summary["average"]:
        lines += [f"**Average over the {len(task_info)} tasks**", "", head]
        lines += [row(m, cells) for m, cells in summary["average"].items()] + [""]
    for name, methods in summary["tasks"].items():
        task = task_info[name]
        lines += [f"**{name}**: {task.what}; scored: `{task.checkpoint}`", "", head]
        lines += [row(m, cells) for m, cells in methods.items()] + [""]
    refs = _references(summary, task_info)
    if refs:
        lines += ["**Published figures** (not produced by this command; protocols differ as "
                  "stated)", ""]
        for key in refs:
            ref = REFERENCES[key]
            figures = "; ".join(f"{k}: {v}" for k, v in ref.figures.items())
            lines.append(f"- {ref.citation}." + (f" Reported: {figures}." if figures else "")
                         + f" Protocol: {ref.protocol}")
        lines.append("")
    lines += [f"- {s}" for s in skipped]
    lines += ["", "Methods: " + "; ".join(f"`{m}` = {METHODS[m].what}"
                                          for m in dict.fromkeys(
                                              m for t in summary["tasks"].values() for m in t))]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- the command
def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def _check_names(names: Sequence[str], known: Sequence[str], what: str) -> None:
    for name in names:
        if name not in known:
            raise BenchmarkError(f"unknown {what} {name!r}; choose from "
                                 f"{', '.join(known)}.{did_you_mean(name, known)}")


def run_benchmark(suite: str, *, root: Optional[Path] = None, seeds: Sequence[int] = (0, 1, 2),
                  methods: Optional[Sequence[str]] = None, tasks: Optional[Sequence[str]] = None,
                  out: Optional[Path] = None, epochs: Optional[int] = None,
                  summary_only: bool = False, command: str = "",
                  echo: Any = print) -> dict[str, Any]:
    """Run (or continue) a benchmark suite and write its results table.

    Args:
        suite: a key of :data:`SUITES`.
        root: the folder of recordings (suites that read one).
        seeds: training seeds.
        methods: keys of :data:`METHODS` (default: the suite's).
        tasks: the suite's task names to run (default: all).
        out: output folder (default ``benchmarks/<suite>``).
        epochs: epochs per run (default: the suite's).
        summary_only: train nothing; rewrite the table from the finished runs.
        command: the command line, quoted in the table.
        echo: where progress lines go.

    Returns:
        The results written to ``<out>/results.json``.

    Raises:
        BenchmarkError: unknown suite, method or task; a suite without its ``--root``, or a
            ``--root`` in another layout.
    """
    _check_names([suite], list(SUITES), "benchmark suite")
    spec = SUITES[suite]
    methods = list(methods or spec.methods)
    _check_names(methods, list(METHODS), "method")
    if spec.needs_root and root is None:
        raise BenchmarkError(f"the {suite} suite reads recordings: pass their folder with "
                             f"--root DIR")
    if not spec.needs_root and root is not None:
        raise BenchmarkError(f"the {suite} suite uses generated data and takes no --root; "
                             f"the suites that read a folder are "
                             f"{', '.join(n for n, s in SUITES.items() if s.needs_root)}")
    out = Path(out or Path("benchmarks") / suite)
    epochs = int(epochs or spec.epochs)
    built = spec.build(SuiteContext(root, out))
    if tasks:
        _check_names(tasks, [t.name for t in built], f"task of suite {suite}")
        built = [t for t in built if t.name in tasks]
    task_info = {t.name: t for t in built}
    done_file = out / "results.jsonl"
    runs: dict[str, dict] = {}
    if done_file.is_file():
        text = done_file.read_text()
        for line in text.splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that run is done again
            runs[run["key"]] = run
        if not text.endswith("\n") and text:
            # the next line must not be appended to the cut one: keep the whole lines only
            with atomic_open(done_file, "w") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in runs.values())
    plan, skipped = [], []
    for task in built:
        for method in methods:
            if METHODS[method].needs_target and not task.adaptation:
                skipped.append(f"`{method}` not run on {task.name}: the task has no target "
                               f"condition to adapt to")
                continue
            plan += [(task, method, seed) for seed in seeds]
    todo = [p for p in plan if run_key(p[0].name, p[1], p[2]) not in runs]
    echo(f"benchmark {suite}: {len(plan)} runs ({len(built)} tasks × {len(methods)} methods × "
         f"{len(seeds)} seeds), {len(plan) - len(todo)} already done; results in {out}")
    started, finished = time.perf_counter(), 0
    results = _write(suite, out, runs, task_info, methods, skipped, command, epochs, seeds)
    for task, method, seed in ([] if summary_only else todo):
        run = run_one(suite, task, method, seed, epochs, out)
        runs[run["key"]] = run
        with done_file.open("a") as handle:
            handle.write(json.dumps(run) + "\n")
        finished += 1
        elapsed = time.perf_counter() - started
        left = len(todo) - finished
        echo(f"[{len(plan) - left}/{len(plan)}] {task.name} {method} seed {seed}: "
             f"{run['accuracy']:.2f} % (recordings {run['recording_accuracy']:.2f} %) in "
             f"{run['seconds']:.0f} s; elapsed {_fmt_duration(elapsed)}, ETA "
             f"{_fmt_duration(elapsed / finished * left) if left else 'done'}")
        results = _write(suite, out, runs, task_info, methods, skipped, command, epochs, seeds)
    return results


def _write(suite: str, out: Path, runs: dict, task_info: dict, methods: Sequence[str],
           skipped: list[str], command: str, epochs: int, seeds: Sequence[int]) -> dict:
    mine = [r for r in runs.values() if r["task"] in task_info and r["method"] in methods
            and r["seed"] in seeds]
    summary = summarise(suite, mine, list(task_info), methods)
    results = {"suite": suite, "what": SUITES[suite].what, "command": command,
               "pfdtrain_version": __version__, "epochs": epochs, "seeds": list(seeds),
               "methods": {m: METHODS[m].what for m in methods},
               "tasks": {n: {"what": t.what, "checkpoint": t.checkpoint}
                         for n, t in task_info.items()},
               "out": str(out),
               "references": {k: REFERENCES[k].__dict__ for k in _references(summary, task_info)},
               "skipped": skipped, "summary": summary,
               "runs": sorted(mine, key=lambda r: r["key"])}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    with atomic_open(out / "results.md", "w") as handle:
        handle.write(markdown(suite, summary, task_info, skipped, command, epochs))
    return results


def _cmd_benchmark(args: argparse.Namespace) -> int:
    command = "pfdtrain benchmark " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else \
        f"pfdtrain benchmark {args.suite}"
    from pfdtrain.utils.logging import setup_logging

    setup_logging(level="WARNING")
    results = run_benchmark(args.suite, root=Path(args.root) if args.root else None,
                            seeds=args.seeds, methods=args.methods, tasks=args.tasks,
                            out=Path(args.out) if args.out else None, epochs=args.epochs,
                            summary_only=args.summary, command=command)
    print((Path(results["out"]) / "results.md").read_text())
    return 0 if results["runs"] or args.summary else 1


def suites_markdown() -> str:
    """The README's tables of suites and methods, generated from :data:`SUITES` and
    :data:`METHODS`.

    Example:
        >>> print(suites_markdown().splitlines()[0])
        | suite | what | default methods | epochs | `--root` |
    """
    lines = ["| suite | what | default methods | epochs | `--root` |",
             "| --- | --- | --- | ---: | --- |"]
    for name, suite in SUITES.items():
        lines.append(f"| `{name}` | {suite.what} | {', '.join(suite.methods)} | {suite.epochs} "
                     f"| {'required' if suite.needs_root else '—'} |")
    lines += ["", "| method | what |", "| --- | --- |"]
    lines += [f"| `{name}` | {method.what} |" for name, method in METHODS.items()]
    return "\n".join(lines)


def add_benchmark_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``pfdtrain benchmark`` (its suites and methods listed from the registries)."""
    p = subparsers.add_parser(
        "benchmark", help="run a benchmark protocol: every task × method × seed, one table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every task × method × seed of a suite as ordinary run folders and "
                    "write a results table (mean ± std over seeds). Started again, it "
                    "continues where it stopped.\n\nsuites:\n" + "\n".join(
                        f"  {n:<16} {s.what}" for n, s in SUITES.items())
                    + "\n\nmethods:\n" + "\n".join(f"  {n:<16} {m.what}"
                                                    for n, m in METHODS.items()))
    p.add_argument("suite", choices=list(SUITES), help="the protocol")
    p.add_argument("--root", help="folder of recordings (cwru-loads, paderborn)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="methods to run (default: the suite's); " + ", ".join(METHODS))
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks of the suite")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the suite's)")
    p.add_argument("--out", help="output folder (default: benchmarks/<suite>)")
    p.add_argument("--summary", action="store_true",
                   help="train nothing: rewrite the table from the runs finished so far")
    p.set_defaults(func=_cmd_benchmark)
    return p


__all__ = ["run_benchmark", "add_benchmark_parser", "summarise", "markdown"]
