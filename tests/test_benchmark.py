"""``pfdtrain benchmark``: tasks, the resumable loop, the table and bad input (issue 12 §2, §4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml

from pfdtrain.benchmark.methods import METHODS
from pfdtrain.benchmark.runner import run_benchmark, summarise
from pfdtrain.benchmark.suites import RECIPE, SUITES, BenchmarkError
from pfdtrain.benchmark.tasks import write_transfer_task
from pfdtrain.cli import main
from pfdtrain.config.training_config import TrainingConfig, apply_overrides
from pfdtrain.data.records import DataError, RecordSplit
from pfdtrain.data.splits import check_no_leakage
from pfdtrain.data.storage import read_dataset
from pfdtrain.training.domain_losses import DOMAIN_LOSSES
from tests.test_layouts import write_paderborn_file

REPO = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(12)


def _pool(n_per: int = 1000) -> RecordSplit:
    """Three classes at load 0, classes 1 and 2 only at load 1 (like CWRU's missing normal)."""
    records, labels, ids, loads = [], [], [], []
    for load, classes in ((0, (0, 1, 2)), (1, (1, 2))):
        for c in classes:
            records.append(RNG.normal(size=n_per).astype(np.float32) + c)
            labels.append(c)
            ids.append(f"c{c}-l{load}")
            loads.append(float(load))
    return RecordSplit.from_records(records, labels, ids, metadata={"load": loads})


# ---------------------------------------------------------------- tasks
def test_transfer_task_files(tmp_path):
    pool = _pool()
    load = pool.metadata["load"]
    files = write_transfer_task(pool, ["normal", "inner", "outer"], 1000.0, source=load == 0,
                                target=load == 1, out_dir=tmp_path, name="t", description="x",
                                pool_hash="h", min_length=100, gap=100)
    # the class missing on one side is dropped, the others relabelled in order
    assert files.classes == ("inner", "outer") and files.dropped_classes == ("normal",)
    main_file = read_dataset(files.data)
    target = read_dataset(files.target)
    records = main_file.splits["records"]
    assert list(records.metadata["domain"]) == ["source", "source", "target", "target"]
    assert records.labels.tolist() == [0, 1, 0, 1]
    # target halves: adaptation [0, 400), test [500, 1000), same samples as the recording
    adapt = target.splits["records"]
    assert adapt.ranges.tolist() == [[0, 400], [0, 400]]
    assert records.ranges[2:].tolist() == [[500, 1000], [500, 1000]]
    np.testing.assert_array_equal(records.record(2), pool.record(3)[500:])
    np.testing.assert_array_equal(adapt.record(0), pool.record(3)[:400])
    assert adapt.sources == records.sources[2:] == ["c1-l1", "c2-l1"]
    # the halves of one recording do not overlap: the leakage gate agrees
    check_no_leakage({"train": adapt, "test": records.subset([2, 3])}, strategy="time")
    # a second call with the same data reuses the files; other data rewrites them
    stamp = files.data.stat().st_mtime_ns
    write_transfer_task(pool, ["normal", "inner", "outer"], 1000.0, source=load == 0,
                        target=load == 1, out_dir=tmp_path, name="t", description="x",
                        pool_hash="h", min_length=100, gap=100)
    assert files.data.stat().st_mtime_ns == stamp
    write_transfer_task(pool, ["normal", "inner", "outer"], 1000.0, source=load == 0,
                        target=load == 1, out_dir=tmp_path, name="t", description="x",
                        pool_hash="other", min_length=100, gap=100)
    assert files.data.stat().st_mtime_ns != stamp


def test_transfer_task_refusals(tmp_path):
    pool = _pool()
    load = pool.metadata["load"]
    kw = dict(out_dir=tmp_path, name="t", description="x", pool_hash="h", gap=0)
    with pytest.raises(DataError, match="both source and target"):
        write_transfer_task(pool, ["a", "b", "c"], 1.0, source=load >= 0, target=load == 1,
                            min_length=10, **kw)
    with pytest.raises(DataError, match="no target recording"):
        write_transfer_task(pool, ["a", "b", "c"], 1.0, source=load == 0, target=load == 5,
                            min_length=10, **kw)
    with pytest.raises(DataError, match="too short.*one window of 600 samples"):
        write_transfer_task(pool, ["a", "b", "c"], 1.0, source=load == 0, target=load == 1,
                            min_length=600, **kw)


# ---------------------------------------------------------------- table math
def test_summary_mean_std_and_task_average():
    runs = [{"task": t, "method": "cnn1d", "seed": s, "accuracy": acc,
             "recording_accuracy": 100.0, "noise": {"0": acc - 10}}
            for t, s, acc in (("a", 0, 90.0), ("a", 1, 94.0), ("b", 0, 70.0), ("b", 1, 80.0))]
    summary = summarise("rolling-element", runs, ["a", "b"], ["cnn1d"])
    cell = summary["tasks"]["a"]["cnn1d"]["accuracy"]
    assert (cell["mean"], cell["std"], cell["per_seed"]) == (92.0, 2.0, [90.0, 94.0])
    # the task average per seed: (90 + 70) / 2 = 80, (94 + 80) / 2 = 87 → 83.5 ± 3.5
    average = summary["average"]["cnn1d"]["accuracy"]
    assert (average["mean"], average["std"]) == (83.5, 3.5)
    assert summary["average"]["cnn1d"]["noise:0"]["mean"] == 73.5
    # a method missing on one task gets no average (it would not be comparable)
    partial = summarise("rolling-element", runs[:3], ["a", "b"], ["cnn1d"])
    assert partial["average"]["cnn1d"]["seeds"] == [0]
    assert summarise("rolling-element", runs[:2], ["a", "b"], ["cnn1d"])["average"] == {}


def test_recipe_is_the_documented_recipe():
    recipe = yaml.safe_load((REPO / "recipes" / "cross-condition.yaml").read_text())
    mine = apply_overrides(TrainingConfig(), list(RECIPE))
    for section in ("checkpoint", "data", "augment"):
        for key, value in recipe[section].items():
            assert getattr(getattr(mine, section), key) == value, f"{section}.{key}"


def test_domain_methods_come_from_the_registry():
    assert {m for m, spec in METHODS.items() if spec.needs_target} == set(DOMAIN_LOSSES)


# ---------------------------------------------------------------- a real (tiny) benchmark
def test_rolling_element_benchmark_runs_resumes_and_tables(tmp_path):
    out = tmp_path / "bench"
    lines: list[str] = []
    kw = dict(seeds=[0], methods=["cnn1d", "coral"], tasks=["sim-speed-0to1"], out=out,
              epochs=1, echo=lines.append)
    results = run_benchmark("rolling-element", **kw)
    assert [r["key"] for r in results["runs"]] == ["sim-speed-0to1/cnn1d/seed0",
                                                   "sim-speed-0to1/coral/seed0"]
    assert lines[0].startswith("benchmark rolling-element: 2 runs") and "ETA" in lines[1]
    assert lines[-1].startswith("[2/2]") and lines[-1].endswith("ETA done")
    coral = next(r for r in results["runs"] if r["method"] == "coral")
    run_dir = Path(coral["run_dir"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    # the adaptation half is the unlabeled target; the test split is the other half
    assert config["data"]["target_source"].endswith("sim-speed-0to1-target.h5")
    assert config["trainer"] == "domain_adaptation" and config["domain"]["method"] == "coral"
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert metrics["accuracy"] == coral["accuracy"]
    table = (out / "results.md").read_text()
    assert "| cnn1d | 0 |" in table and "| coral | 0 |" in table and "0 dB %" in table

    # Interrupted in the coral run: its line never written, the run not finished.
    done = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(done[0] + "\n" + done[1][:40])  # a half-written line
    (run_dir / "test_metrics.json").unlink()
    lines.clear()
    again = run_benchmark("rolling-element", **kw)
    assert "1 already done" in lines[0] and len(lines) == 2
    assert "resum" in (run_dir / "train.log").read_text().lower()
    assert [r["accuracy"] for r in again["runs"]] == [r["accuracy"] for r in results["runs"]]
    # the cut line was dropped before the resumed run's line was appended
    assert [json.loads(x)["key"] for x in (out / "results.jsonl").read_text().splitlines()] \
        == ["sim-speed-0to1/cnn1d/seed0", "sim-speed-0to1/coral/seed0"]
    # --summary trains nothing
    lines.clear()
    run_benchmark("rolling-element", **kw, summary_only=True)
    assert len(lines) == 1 and "2 already done" in lines[0]


# ---------------------------------------------------------------- bad input
def test_unknown_method_task_and_misplaced_root(tmp_path):
    with pytest.raises(BenchmarkError, match="unknown method 'corall'.*Did you mean 'coral'"):
        run_benchmark("journal", methods=["corall"], out=tmp_path)
    with pytest.raises(BenchmarkError, match="takes no --root"):
        run_benchmark("journal", root=tmp_path, out=tmp_path)
    with pytest.raises(BenchmarkError, match="pass their folder with --root"):
        run_benchmark("cwru-loads", out=tmp_path)
    with pytest.raises(BenchmarkError, match="unknown task of suite journal 'jornal'"):
        run_benchmark("journal", tasks=["jornal"], out=tmp_path)


def test_a_root_in_another_layout_is_named(tmp_path, capsys):
    root = tmp_path / "PU"
    write_paderborn_file(root / "K001" / "N15_M07_F10_K001_1.mat")
    code = main(["benchmark", "cwru-loads", "--root", str(root), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not hold CWRU" in err and "no CWRU 12 kHz drive-end files" in err
    assert "paderborn" in err


def test_cwru_suite_needs_two_loads_and_paderborn_two_bearings(tmp_path):
    cwru = tmp_path / "cwru"
    cwru.mkdir()
    for name, number in (("IR007_0", 105), ("B007_0", 118)):
        scipy.io.savemat(cwru / f"{name}.mat", {f"X{number:03d}_DE_time": RNG.normal(
            size=(8192, 1)), f"X{number:03d}RPM": np.array([[1796.0]])})
    with pytest.raises(BenchmarkError, match=r"at 1 load\(s\) \(\[0\]\).*IR007_1.mat"):
        run_benchmark("cwru-loads", root=cwru, out=tmp_path / "o1")
    pu = tmp_path / "pu"
    for code in ("K001", "K002", "KA04", "KA15", "KI04"):
        for setting in ("N15_M07_F10", "N09_M07_F10"):
            write_paderborn_file(pu / code / f"{setting}_{code}_1.mat", 9000)
    with pytest.raises(BenchmarkError, match="inner_race has recordings of one bearing only"):
        run_benchmark("paderborn", root=pu, out=tmp_path / "o2")


def test_paderborn_tasks_put_source_and_target_on_other_bearings(tmp_path):
    pu = tmp_path / "pu"
    for code in ("K001", "K002", "KA04", "KA15", "KI04", "KI14"):
        for setting in ("N15_M07_F10", "N09_M07_F10"):
            write_paderborn_file(pu / code / f"{setting}_{code}_1.mat", 20000)
    from pfdtrain.benchmark.suites import SuiteContext

    tasks = SUITES["paderborn"].build(SuiteContext(pu, tmp_path / "o"))
    assert [t.name for t in tasks] == ["pu-N09_M07_F10-to-N15_M07_F10",
                                       "pu-N15_M07_F10-to-N09_M07_F10"]
    data = read_dataset(tmp_path / "o" / "data" / f"{tasks[0].name}.h5")
    records = data.splits["records"]
    sides = {d: {b for b, dom in zip(records.metadata["bearing"], records.metadata["domain"])
                 if dom == d} for d in ("source", "target")}
    assert sides == {"source": {"K001", "KA04", "KI04"}, "target": {"K002", "KA15", "KI14"}}


def test_few_labels_suite_scores_the_last_epoch_with_the_datas_physics_term(tmp_path):
    results = run_benchmark("few-labels", seeds=[0], methods=["cnn1d", "pinn"],
                            tasks=["sim-1pct"], out=tmp_path, epochs=1, echo=lambda _: None)
    runs = {r["method"]: r for r in results["runs"]}
    assert set(runs) == {"cnn1d", "pinn"}
    for method, run in runs.items():
        assert run["checkpoint"] == "latest_model.pth"
        config = yaml.safe_load((Path(run["run_dir"]) / "config.yaml").read_text())
        assert config["data"]["label_fraction"] == 0.01
        assert config["callbacks"]["early_stopping"]["enabled"] is False
        assert config["trainer"] == ("pinn" if method == "pinn" else "cnn")
    pinn = yaml.safe_load((Path(runs["pinn"]["run_dir"]) / "config.yaml").read_text())
    assert pinn["physics"]["term"] == "rolling_element"
    history = json.loads((Path(runs["pinn"]["run_dir"]) / "history.json").read_text())
    assert history["train_physics_loss"][0] > 0
