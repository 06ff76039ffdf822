"""Issue 10 §6: bad input ends with one `pfdtrain: error:` paragraph naming the file (and
manifest row) and the fix, exit code 2, nothing half-written; --skip-bad skips and lists."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pfdtrain.cli import main
from pfdtrain.data import RecordSplit, read_dataset, write_dataset
from pfdtrain.data.records import DataError

RNG = np.random.default_rng(3)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    # One error paragraph, last (training may have logged its run folder before it).
    assert err.count("pfdtrain: error:") == 1 and "Traceback" not in err, err
    return " ".join(err[err.index("pfdtrain: error:"):].split())  # the CLI wraps lines


def _no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _dataset(path: Path, n: int = 4, length: int = 3000) -> Path:
    split = RecordSplit.from_records([RNG.normal(size=length) for _ in range(n)],
                                     [i % 2 for i in range(n)], [f"r{i}" for i in range(n)])
    write_dataset(path, {"records": split}, class_names=["a", "b"], sampling_rate=1000.0,
                  source="test", split_strategy="none")
    return path


def _train(data: Path, *extra: str) -> int:
    return main(["train", "--no-progress", "--set", f"data.source={data}", "--set",
                 "data.window_length=256", "--set", "data.window_stride=256", "--set",
                 "data.split=record", "--set", "num_epochs=1", "--set", "device=cpu",
                 "--set", "model.params={base_channels: 4}", *extra])


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------- dataset files
def test_truncated_dataset_file(in_tmp, capsys):
    full = _dataset(in_tmp / "d.h5")
    data = full.read_bytes()
    for cut, name in ((len(data) // 2, "half.h5"), (200, "head.h5")):
        (in_tmp / name).write_bytes(data[:cut])
        assert _train(in_tmp / name) == 2
        err = _error(capsys)
        assert f"{name} is not a readable HDF5 file" in err and "truncated" in err
        assert "pfdtrain data import" in err  # the fix
    assert main(["evaluate", "x.pth", "--data", str(in_tmp / "half.h5")]) == 2
    capsys.readouterr()


def test_foreign_files_as_dataset(in_tmp, capsys):
    with h5py.File(in_tmp / "other.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(10))
    assert _train(in_tmp / "other.h5") == 2
    assert "other.h5 is not a pfdtrain dataset (format attribute None" in _error(capsys)
    scipy.io.savemat(in_tmp / "rec.mat", {"x": np.zeros(10)})
    assert _train(in_tmp / "rec.mat") == 2
    assert "rec.mat is not a readable HDF5 file" in _error(capsys)


def test_nan_samples_in_a_dataset_file(in_tmp, capsys):
    path = _dataset(in_tmp / "d.h5")
    with h5py.File(path, "r+") as f:
        f["records/signals"][3000 + 17] = np.nan  # record r1, sample 17
    assert _train(path) == 2
    err = _error(capsys)
    assert "holds 1 NaN/inf sample(s); the first is sample 17 of record r1" in err
    split = RecordSplit.from_records([np.array([0.0, np.inf, 1.0])], [0], ["bad"])
    with pytest.raises(DataError, match="sample 1 of record bad"):
        write_dataset(in_tmp / "w.h5", {"records": split}, class_names=["a"],
                      sampling_rate=1.0, source="t")
    assert not (in_tmp / "w.h5").exists() and _no_leftovers(in_tmp)


def test_empty_class_names_in_a_dataset_file(in_tmp, capsys):
    path = _dataset(in_tmp / "d.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["class_names"] = "[]"
    assert _train(path) == 2
    assert "d.h5 lists no class names" in _error(capsys)
    with pytest.raises(DataError, match="no class names given"):
        write_dataset(in_tmp / "w.h5", {"records": RecordSplit.from_records([], [], [])},
                      class_names=[], sampling_rate=1.0, source="t")


def test_recording_shorter_than_one_window(in_tmp, capsys):
    path = _dataset(in_tmp / "d.h5", length=200)
    assert _train(path) == 2
    err = _error(capsys)
    assert "data.window_length = 256 is longer than the shortest record" in err
    assert "d.h5" in err and "data.window_length=200" in err


# ----------------------------------------------------------------------- imports
def _manifest(folder: Path, rows: list[str]) -> Path:
    (folder / "m.csv").write_text("path,label,variable\n" + "\n".join(rows) + "\n")
    return folder / "m.csv"


def _import(*args: str) -> int:
    return main(["data", "import", "--out", "data/o.h5", "--sampling-rate", "1000", *args])


@pytest.mark.parametrize("bad_row, message", [
    ("nan.npy,b,", r"row 3.*nan\.npy: the signal contains 2 NaN/inf value\(s\) \(first at "
                   r"sample 5 of 3000\); clean or interpolate them"),
    ("short.npy,b,", r"row 3 \(.*short\.npy\): the recording has 100 samples, fewer than the "
                     r"minimum of 2048"),
    ("good2.npy,,", r"row 3 \(.*good2\.npy\): the label cell is empty"),
    ("s.mat,b,bearing.x", r"row 3: .*s\.mat: struct path 'bearing\.x': field 'x' not found in "
                          r"'bearing'; its fields: gs, sr"),
    ("s.mat,b,bearing.gs", r"row 3 \(.*s\.mat\): the file states a sampling rate of 2000 Hz "
                           r"\('bearing\.sr'\) but --sampling-rate says 1000 Hz"),
    ("cut.mat,b,", r"row 3: .*cut\.mat: cannot be read as a MATLAB \.mat file"),
])
def test_bad_recordings_stop_the_import_or_are_skipped(in_tmp, capsys, bad_row, message):
    np.save(in_tmp / "good.npy", RNG.normal(size=3000))
    np.save(in_tmp / "good2.npy", RNG.normal(size=3000))
    nan = RNG.normal(size=3000)
    nan[[5, 9]] = np.nan
    np.save(in_tmp / "nan.npy", nan)
    np.save(in_tmp / "short.npy", RNG.normal(size=100))
    scipy.io.savemat(in_tmp / "s.mat", {"bearing": {"gs": RNG.normal(size=(3000, 1)),
                                                     "sr": 2000.0}})
    scipy.io.savemat(in_tmp / "whole.mat", {"x": RNG.normal(size=(3000, 1))})
    (in_tmp / "cut.mat").write_bytes((in_tmp / "whole.mat").read_bytes()[:300])
    manifest = _manifest(in_tmp, ["good.npy,a,", bad_row])
    assert _import("--manifest", str(manifest)) == 2
    import re
    assert re.search(message, _error(capsys)), message
    assert not (in_tmp / "data" / "o.h5").exists() and _no_leftovers(in_tmp)
    assert _import("--manifest", str(manifest), "--skip-bad") == 0
    out = capsys.readouterr().out
    assert "imported 1 recordings" in out and "; skipped 1" in out
    assert "\n  skipped " in out  # one line per skipped file
    assert len(read_dataset(in_tmp / "data" / "o.h5").splits["records"]) == 1


def test_layout_file_stating_another_rate(in_tmp, capsys):
    root = in_tmp / "CWRU"
    root.mkdir()
    scipy.io.savemat(root / "97.mat", {"X097_DE_time": RNG.normal(size=(4096, 1))})
    scipy.io.savemat(root / "105.mat", {"X105_DE_time": RNG.normal(size=(4096, 1)),
                                        "fs": 48000.0})
    assert main(["data", "import", "--layout", "cwru", "--root", "CWRU", "--out", "c.h5"]) == 2
    err = _error(capsys)
    assert "105.mat: the file states a sampling rate of 48000 Hz ('fs')" in err
    assert "sampled at 12000 Hz" in err and "--skip-bad" in err
    assert not (in_tmp / "c.h5").exists()
    assert main(["data", "import", "--layout", "cwru", "--root", "CWRU", "--out", "c.h5",
                 "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "imported 1 recordings" in out and "skipped" in out and "48000 Hz" in out
