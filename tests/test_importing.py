"""Importing recordings: readers, manifest import, resampling, CWRU layout, bad inputs, CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pfdtrain.cli_data import add_data_parser
from pfdtrain.data import DataError, read_dataset
from pfdtrain.data.importers.cwru import (CWRU_4CLASS, CWRU_10CLASS, cwru_file_class,
                                          cwru_manifest, import_cwru)
from pfdtrain.data.importers.manifest import import_manifest
from pfdtrain.data.importers.readers import RecordingError, RecordingWarning, read_signal
from pfdtrain.errors import PfdtrainError

RNG = np.random.default_rng(0)


def sine(freq: float, rate: float, n: int) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / rate)


def write_mat73(path: Path, variables: dict[str, np.ndarray], header: bool = True) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte user block whose
    128-byte header says version 0x0200, and every array stored transposed (column-major)."""
    with h5py.File(path, "w", userblock_size=512 if header else 0) as f:
        for name, value in variables.items():
            d = f.create_dataset(name, data=np.asarray(value).T)
            d.attrs["MATLAB_class"] = np.bytes_(b"double")
    if header:
        text = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  5 10:00:00 2026 "
                b"HDF5 schema 1.00 .")
        with open(path, "r+b") as f:
            f.write(text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- readers
def test_read_mat_v5_variables_suffix_and_rpm(tmp_path: Path) -> None:
    de, fe = RNG.normal(size=(3000, 1)), RNG.normal(size=(3000, 1))
    path = tmp_path / "97.mat"
    scipy.io.savemat(path, {"X097_DE_time": de, "X097_FE_time": fe, "X097RPM": [[1796.0]]})
    for wanted in ("X097_DE_time", "_DE_time", "DE", "de_time"):
        signal, info = read_signal(path, variable=wanted)
        assert signal.dtype == np.float64 and signal.shape == (3000,)
        np.testing.assert_array_equal(signal, de[:, 0])
    assert info["variable"] == "X097_DE_time" and info["rpm"] == 1796.0
    assert info["format"] == "mat-v5" and info["variables"] == ["X097RPM", "X097_DE_time",
                                                                "X097_FE_time"]
    with pytest.raises(RecordingError, match=r"97\.mat: variable 'X097_BA_time' not found; "
                                             r"available variables: X097RPM, X097_DE_time, "
                                             r"X097_FE_time"):
        read_signal(path, variable="X097_BA_time")
    with pytest.raises(RecordingError, match=r"97\.mat: holds 2 signal variables"):
        read_signal(path)
    with pytest.raises(RecordingError, match=r"'time' is ambiguous"):
        read_signal(path, variable="time")
    single = tmp_path / "one.mat"
    scipy.io.savemat(single, {"vib": de.T})  # a [1, N] row vector
    np.testing.assert_array_equal(read_signal(single)[0], de[:, 0])


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("shape", ["column", "row"])
def test_read_mat_v73_through_h5py(tmp_path: Path, header: bool, shape: str) -> None:
    x = RNG.normal(size=2500)
    value = x[:, None] if shape == "column" else x[None, :]  # MATLAB [N, 1] or [1, N]
    path = tmp_path / "rec73.mat"
    write_mat73(path, {"acc": value, "rpm": np.array([[1500.0]])}, header=header)
    with h5py.File(path, "r") as f:  # stored transposed, as MATLAB does
        assert f["acc"].shape == value.T.shape
    signal, info = read_signal(path, variable="acc")
    np.testing.assert_array_equal(signal, x)
    assert info["format"] == "mat-v7.3" and info["rpm"] == 1500.0
    with pytest.raises(RecordingError, match=r"rec73\.mat: variable 'vib' not found; available "
                                             r"variables: acc, rpm"):
        read_signal(path, variable="vib")


def test_read_npy_and_channels(tmp_path: Path) -> None:
    x = RNG.normal(size=(2000, 3))
    np.save(tmp_path / "one.npy", x[:, 0])
    np.save(tmp_path / "col.npy", x[:, :1])
    np.save(tmp_path / "multi.npy", x)
    np.save(tmp_path / "multi_t.npy", x.T)  # [channels, N]: the longer axis is time
    for name in ("one", "col"):
        np.testing.assert_array_equal(read_signal(tmp_path / f"{name}.npy")[0], x[:, 0])
    with pytest.raises(RecordingError, match=r"multi\.npy: the array has 3 channels.*0\.\.2"):
        read_signal(tmp_path / "multi.npy")
    np.testing.assert_array_equal(read_signal(tmp_path / "multi.npy", column=2)[0], x[:, 2])
    np.testing.assert_array_equal(read_signal(tmp_path / "multi_t.npy", column="1")[0], x[:, 1])
    with pytest.raises(RecordingError, match=r"channel 5 .*does not exist"):
        read_signal(tmp_path / "multi.npy", column=5)


def test_read_csv_with_and_without_header(tmp_path: Path) -> None:
    x = np.round(RNG.normal(size=(500, 2)), 6)
    with_header = tmp_path / "h.csv"
    with_header.write_text("time,accel\n" + "\n".join(f"{a},{b}" for a, b in x) + "\n")
    np.testing.assert_allclose(read_signal(with_header, column="accel")[0], x[:, 1])
    np.testing.assert_allclose(read_signal(with_header, column=0)[0], x[:, 0])
    signal, info = read_signal(with_header, column="1")
    np.testing.assert_allclose(signal, x[:, 1])
    assert info["variables"] == ["time", "accel"] and info["format"] == "csv"
    with pytest.raises(RecordingError, match=r"h\.csv: has 2 columns \(time, accel\)"):
        read_signal(with_header)
    with pytest.raises(RecordingError, match=r"column 'speed' not found; available columns: "
                                             r"time, accel"):
        read_signal(with_header, column="speed")
    plain = tmp_path / "p.csv"
    plain.write_text("\n".join(str(v) for v in x[:, 0]) + "\n")  # one column, no header
    np.testing.assert_allclose(read_signal(plain)[0], x[:, 0])
    semicolon = tmp_path / "s.csv"
    semicolon.write_text("a;b\n" + "\n".join(f"{a};{b}" for a, b in x) + "\n")
    np.testing.assert_allclose(read_signal(semicolon, column="b")[0], x[:, 1])


def test_reader_errors_name_the_file_and_problem(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"nope\.mat: file does not exist"):
        read_signal(tmp_path / "nope.mat")
    (tmp_path / "junk.mat").write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(RecordingError, match=r"junk\.mat: cannot be read as a MATLAB"):
        read_signal(tmp_path / "junk.mat")
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(RecordingError, match=r"junk\.npy: cannot be read as a \.npy"):
        read_signal(tmp_path / "junk.npy")
    (tmp_path / "rec.wav").write_bytes(b"RIFF")
    with pytest.raises(RecordingError, match=r"rec\.wav: unknown file type '\.wav'; "
                                             r"supported: \.mat"):
        read_signal(tmp_path / "rec.wav")
    x = np.ones(100)
    x[[10, 50]] = [np.nan, np.inf]
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(RecordingError, match=r"nan\.npy: the signal contains 2 NaN/inf "
                                             r"value\(s\) \(first at sample 10 of 100\)"):
        read_signal(tmp_path / "nan.npy")
    (tmp_path / "text.csv").write_text("a\n1\nx\n")
    with pytest.raises(RecordingError, match=r"text\.csv: column a cannot be read as numbers"):
        read_signal(tmp_path / "text.csv")
    assert issubclass(RecordingError, DataError) and issubclass(RecordingError, PfdtrainError)


# ---------------------------------------------------------------- manifest
def write_manifest(folder: Path, header: str, rows: list[str]) -> Path:
    path = folder / "recordings.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_manifest_import_with_metadata(tmp_path: Path) -> None:
    (tmp_path / "rig").mkdir()
    signals = {}
    for i in range(4):
        signals[i] = RNG.normal(size=3000 + 100 * i)
        np.save(tmp_path / "rig" / f"run{i}.npy", signals[i])
    csv_file = tmp_path / "rig" / "run4.csv"
    csv_file.write_text("t,acc\n" + "\n".join(f"{k},{float(v)!r}" for k, v in
                                              enumerate(RNG.normal(size=2500))) + "\n")
    manifest = write_manifest(tmp_path, "path,label,column,record_id,rpm,Load,severity", [
        "rig/run0.npy,outer,,,1500,0.5,2",
        "rig/run1.npy,healthy,,,1480,,",
        f"{tmp_path / 'rig' / 'run2.npy'},inner,,bearing-7,1510,1.0,0",  # absolute path
        "rig/run3.npy,healthy,,,,0.25,",
        "rig/run4.csv,inner,acc,,1500,0.75,1",
    ])
    out = tmp_path / "out" / "mine.h5"
    summary = import_manifest(manifest, out, sampling_rate=10000.0)
    assert summary.records == 5 and summary.skipped == []
    assert summary.class_names == ["healthy", "inner", "outer"]  # sorted unique labels
    assert summary.class_counts == {"healthy": 2, "inner": 2, "outer": 1}
    assert "imported 5 recordings (3 classes: healthy 2, inner 2, outer 1) at 10000 Hz" in \
        summary.line()
    data = read_dataset(out)  # verifies the content hash
    assert data.split_strategy == "none" and list(data.splits) == ["records"]
    rec = data.splits["records"]
    assert rec.record_ids == ["run0", "run1", "bearing-7", "run3", "run4"]
    assert rec.labels.tolist() == [2, 0, 1, 0, 1] and rec.severities.tolist() == [2, -1, 0, -1, 1]
    assert sorted(rec.metadata) == ["Load", "rpm"]
    np.testing.assert_array_equal(rec.metadata["rpm"], [1500, 1480, 1510, np.nan, 1500])
    assert np.isnan(rec.metadata["Load"][1]) and rec.metadata["Load"][4] == 0.75
    np.testing.assert_allclose(rec.record(2), signals[2].astype(np.float32))
    assert data.sampling_rate == 10000.0 and data.content_hash == summary.content_hash
    assert "recordings.csv" in data.source
    assert data.generator_config["files"]["bearing-7"].endswith("run2.npy")
    assert no_temp_files(out.parent)


def test_resampling_keeps_frequency_and_mixed_rates_need_it(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", sine(50.0, 12000.0, 12000))  # 1 s at 12 kHz
    np.save(tmp_path / "b.npy", sine(50.0, 8000.0, 16000))   # 2 s at 8 kHz
    manifest = write_manifest(tmp_path, "path,label,sampling_rate",
                              ["a.npy,x,12000", "b.npy,y,8000"])
    out = tmp_path / "r.h5"
    with pytest.raises(RecordingError, match=r"different sampling rates \(8000 Hz: 1 file\(s\)"
                                             r".*12000 Hz.*--resample"):
        import_manifest(manifest, out)
    assert not out.exists()
    summary = import_manifest(manifest, out, target_rate=6400.0)
    assert summary.sampling_rate == 6400.0
    rec = read_dataset(out).splits["records"]
    assert rec.lengths.tolist() == [6400, 12800]  # 12000 * 8/15 and 16000 * 4/5
    for i in range(2):
        x = rec.record(i).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        peak = np.fft.rfftfreq(x.size, 1 / 6400.0)[np.argmax(spectrum)]
        assert peak == pytest.approx(50.0, abs=0.6)
        assert np.sqrt(np.mean(x[500:-500] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.02)


def test_manifest_problems_are_errors_naming_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "good.npy", RNG.normal(size=3000))
    np.save(tmp_path / "short.npy", RNG.normal(size=1000))
    (tmp_path / "broken.mat").write_bytes(b"\x00" * 300)
    scipy.io.savemat(tmp_path / "novar.mat", {"X1_FE_time": RNG.normal(size=(3000, 1))})
    bad = np.ones(3000)
    bad[7] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    cases = [
        ("broken.mat,a,", r"recordings\.csv, row 3: .*broken\.mat: cannot be read as a MATLAB"),
        ("novar.mat,a,DE", r"novar\.mat: variable 'DE' not found; available variables: "
                           r"X1_FE_time"),
        ("short.npy,zebra,", r"short\.npy\): label 'zebra' is not in the class list \(a, b\)"),
        ("nan.npy,a,", r"nan\.npy: the signal contains 1 NaN/inf value\(s\) \(first at sample 7"),
        ("short.npy,a,", r"short\.npy\): the recording has 1000 samples, fewer than the minimum "
                         r"of 2048"),
        ("missing.npy,a,", r"missing\.npy: file does not exist"),
    ]
    out = tmp_path / "o.h5"
    for row, message in cases:
        manifest = write_manifest(tmp_path, "path,label,variable", ["good.npy,a,", row])
        with pytest.raises(RecordingError, match=message):
            import_manifest(manifest, out, sampling_rate=1000.0, classes=["a", "b"])
        assert not out.exists() and no_temp_files(tmp_path)  # nothing half written
    manifest = write_manifest(tmp_path, "path,label,load", ["good.npy,a,1", "good.npy,b,heavy"])
    with pytest.raises(RecordingError, match=r"record id 'good' is used by row 2.*and row 3"):
        import_manifest(manifest, out, sampling_rate=1000.0)
    manifest = write_manifest(tmp_path, "path,label,record_id,load",
                              ["good.npy,a,g1,1", "good.npy,b,g2,heavy"])
    with pytest.raises(RecordingError, match=r"row 3 .*metadata column 'load' has the "
                                             r"non-numeric value 'heavy'"):
        import_manifest(manifest, out, sampling_rate=1000.0)
    manifest = write_manifest(tmp_path, "path,label", ["good.npy,a"])
    with pytest.raises(RecordingError, match=r"good\.npy\): no sampling rate: the file states "
                                             r"none.*"
                                             r"--sampling-rate"):
        import_manifest(manifest, out)
    manifest = write_manifest(tmp_path, "file,label", ["good.npy,a"])
    with pytest.raises(RecordingError, match=r"required column\(s\) path missing"):
        import_manifest(manifest, out)
    manifest = write_manifest(tmp_path, "path,label", ["good.npy,a"])
    with pytest.raises(RecordingError, match=r"has 3000 samples, fewer than the minimum of 4000"):
        import_manifest(manifest, out, sampling_rate=1000.0, min_length=4000)
    assert not out.exists() and no_temp_files(tmp_path)


def test_skip_bad_warns_and_summarises(tmp_path: Path) -> None:
    np.save(tmp_path / "good.npy", RNG.normal(size=3000))
    np.save(tmp_path / "short.npy", RNG.normal(size=100))
    manifest = write_manifest(tmp_path, "path,label,record_id", [
        "good.npy,a,g1", "short.npy,a,s", "gone.npy,b,x", "good.npy,zebra,g2"])
    out = tmp_path / "o.h5"
    old = b"an older, complete dataset"
    out.write_bytes(old)
    with pytest.raises(RecordingError, match="short.npy"):
        import_manifest(manifest, out, sampling_rate=1000.0, classes=["a", "b"])
    assert out.read_bytes() == old  # a failed import leaves the old file untouched
    with pytest.warns(RecordingWarning) as caught:
        summary = import_manifest(manifest, out, sampling_rate=1000.0, classes=["a", "b"],
                                  skip_bad=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and all(m.startswith("skipped: ") for m in messages)
    assert summary.records == 1 and len(summary.skipped) == 3
    reasons = dict(summary.skipped)
    assert "fewer than the minimum" in reasons[str(tmp_path / "short.npy")]
    assert "does not exist" in reasons[str(tmp_path / "gone.npy")]
    assert summary.class_names == ["a", "b"] and summary.class_counts == {"a": 1, "b": 0}
    assert "; skipped 3" in summary.line()
    assert read_dataset(out).splits["records"].record_ids == ["g1"]
    manifest = write_manifest(tmp_path, "path,label", ["gone.npy,a"])
    with pytest.warns(RecordingWarning), \
            pytest.raises(RecordingError, match=r"no recording could be imported; 1 skipped"):
        import_manifest(manifest, tmp_path / "none.h5", sampling_rate=1.0, skip_bad=True)
    assert not (tmp_path / "none.h5").exists() and no_temp_files(tmp_path)


# ---------------------------------------------------------------- CWRU
def save_cwru(path: Path, number: int, n: int = 6000, channels: tuple = ("DE", "FE"),
              rpm: bool = True, extra_number: int | None = None) -> dict[str, np.ndarray]:
    variables = {f"X{number:03d}_{ch}_time": RNG.normal(size=(n, 1)) for ch in channels}
    if rpm:
        variables[f"X{number:03d}RPM"] = np.array([[1790.0 - number / 10]])
    if extra_number is not None:  # e.g. 99.mat also holds X098_DE_time
        variables[f"X{extra_number:03d}_DE_time"] = RNG.normal(size=(n, 1))
    scipy.io.savemat(path, variables)
    return variables


@pytest.fixture()
def cwru_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "cwru"
    (root / "sub").mkdir(parents=True)
    saved = {
        "97.mat": save_cwru(root / "97.mat", 97),
        "100.mat": save_cwru(root / "100.mat", 100, extra_number=99),  # two DE signals
        "105.mat": save_cwru(root / "105.mat", 105, rpm=False),         # nominal rpm
        "sub/130.mat": save_cwru(root / "sub" / "130.mat", 130),
        "Normal_1.mat": save_cwru(root / "Normal_1.mat", 98),
        "IR021_2.mat": save_cwru(root / "IR021_2.mat", 210),  # number inside differs (211)
        "B014_2.mat": save_cwru(root / "B014_2.mat", 187),
        "OR021@6_3.mat": save_cwru(root / "OR021@6_3.mat", 237, channels=("DE",)),  # no FE
    }
    (root / "notes.txt").write_text("not data")
    save_cwru(root / "OR007@3_0.mat", 144)  # an outer-race position outside the set
    return root, saved


def test_cwru_file_names() -> None:
    assert cwru_file_class("97.mat") == ("normal", 0)
    assert cwru_file_class("100.mat") == ("normal", 3)
    assert cwru_file_class("108.mat") == ("IR007", 3)
    assert cwru_file_class("118.mat") == ("B007", 0)
    assert cwru_file_class("200.mat") == ("OR014", 3)
    assert cwru_file_class("234.mat") == ("OR021", 0)
    assert cwru_file_class("normal_2.mat") == ("normal", 2)
    assert cwru_file_class("OR021@6_3.mat") == ("OR021", 3)
    assert cwru_file_class("B014_2.mat") == ("B014", 2)
    for name in ("101.mat", "144.mat", "OR007@3_0.mat", "IR007_4.mat", "notes.txt"):
        assert cwru_file_class(name) is None


def test_cwru_10class_import(cwru_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, saved = cwru_root
    skipped: list = []
    rows = cwru_manifest(root, skipped=skipped)
    assert [r["record_id"] for r in rows] == [  # 10-class order, then load
        "cwru-normal-0hp", "cwru-normal-1hp", "cwru-normal-3hp", "cwru-IR007-0hp",
        "cwru-IR021-2hp", "cwru-B014-2hp", "cwru-OR007-0hp", "cwru-OR021-3hp"]
    assert [r["label"] for r in rows] == ["normal", "normal", "normal", "IR007", "IR021",
                                          "B014", "OR007", "OR021"]
    assert sorted(Path(f).name for f, _ in skipped) == ["OR007@3_0.mat", "notes.txt"]
    by_id = {r["record_id"]: r for r in rows}
    assert by_id["cwru-normal-3hp"]["variable"] == "X100_DE_time"  # its own number preferred
    assert by_id["cwru-IR021-2hp"]["variable"] == "X210_DE_time"   # found by suffix

    out = tmp_path / "cwru.h5"
    with pytest.warns(RecordingWarning, match="not imported"):
        summary = import_cwru(root, out)
    assert summary.records == 8 and summary.class_names == list(CWRU_10CLASS)
    assert summary.sampling_rate == 12000.0 and len(summary.skipped) == 2
    data = read_dataset(out)
    rec = data.splits["records"]
    assert data.class_names == ["normal", "IR007", "IR014", "IR021", "B007", "B014", "B021",
                                "OR007", "OR014", "OR021"]
    ids = rec.record_ids
    assert ids[0] == "cwru-normal-0hp"
    assert [data.class_names[k] for k in rec.labels] == [r["label"] for r in rows]
    load = dict(zip(ids, rec.metadata["load"]))
    rpm = dict(zip(ids, rec.metadata["rpm"]))
    assert load["cwru-normal-1hp"] == 1.0 and load["cwru-OR021-3hp"] == 3.0
    assert rpm["cwru-normal-0hp"] == pytest.approx(1790.0 - 9.7)  # from X097RPM
    assert rpm["cwru-IR007-0hp"] == 1797.0  # 105.mat has no RPM: nominal for 0 HP
    sev = dict(zip(ids, rec.severities))
    assert sev["cwru-normal-0hp"] == -1 and sev["cwru-B014-2hp"] == 1 and sev["cwru-IR021-2hp"] == 2
    # DE channel by default, the file's own recording in 100.mat
    np.testing.assert_allclose(rec.record(ids.index("cwru-normal-3hp")),
                               saved["100.mat"]["X100_DE_time"][:, 0].astype(np.float32))
    np.testing.assert_allclose(rec.record(ids.index("cwru-IR021-2hp")),
                               saved["IR021_2.mat"]["X210_DE_time"][:, 0].astype(np.float32))
    assert "12 kHz drive-end" in data.source and "DE channel" in data.source


def test_cwru_4class_and_fan_end_channel(cwru_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, saved = cwru_root
    out = tmp_path / "fe.h5"
    with pytest.warns(RecordingWarning), \
            pytest.raises(RecordingError, match=r"OR021@6_3\.mat: variable '_FE_time' not found; "
                                                r"available variables: X237RPM, X237_DE_time"):
        import_cwru(root, out, label_set="4class", channel="FE")
    assert not out.exists() and no_temp_files(tmp_path)
    with pytest.warns(RecordingWarning):
        summary = import_cwru(root, out, label_set="4class", channel="FE", skip_bad=True)
    assert summary.records == 7 and summary.class_names == list(CWRU_4CLASS)
    assert summary.class_counts == {"normal": 3, "inner_race": 2, "ball": 1, "outer_race": 1}
    assert any("OR021@6_3.mat" in f and "_FE_time" in why for f, why in summary.skipped)
    rec = read_dataset(out).splits["records"]
    np.testing.assert_allclose(rec.record(rec.record_ids.index("cwru-normal-0hp")),
                               saved["97.mat"]["X097_FE_time"][:, 0].astype(np.float32))
    assert read_dataset(out).generator_config["channel"] == "FE"
    with pytest.raises(DataError, match="unknown CWRU channel 'XX'"):
        cwru_manifest(root, channel="XX")
    with pytest.raises(DataError, match="unknown CWRU label set"):
        cwru_manifest(root, label_set="3class")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordingError, match="no CWRU 12 kHz drive-end files found"):
        cwru_manifest(empty)


# ---------------------------------------------------------------- CLI hook
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pfdtrain")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_data_import(cwru_root: tuple[Path, dict], tmp_path: Path,
                         capsys: pytest.CaptureFixture) -> None:
    root, _ = cwru_root
    out = tmp_path / "c.h5"
    assert run_cli(["data", "import", "--layout", "cwru", "--root", str(root), "--out", str(out),
                    "--labels", "4class"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("imported 8 recordings (4 classes: normal 3, inner_race 2, ball 1"
                               ", outer_race 2) at 12000 Hz") and lines[0].endswith("skipped 2")
    assert len(lines) == 3 and lines[1].startswith("  skipped ")
    np.save(tmp_path / "a.npy", RNG.normal(size=4000))
    manifest = write_manifest(tmp_path, "path,label", ["a.npy,a", "missing.npy,b"])
    assert run_cli(["data", "import", "--manifest", str(manifest), "--out",
                    str(tmp_path / "m.h5"), "--sampling-rate", "2000", "--resample", "1000",
                    "--classes", "a,b", "--skip-bad", "--min-length", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("imported 1 recordings (2 classes: a 1, b 0) at 1000 Hz")
    assert "missing.npy" in lines[1]
    assert read_dataset(tmp_path / "m.h5").splits["records"].lengths.tolist() == [2000]
    with pytest.raises(PfdtrainError, match="needs --manifest"):
        run_cli(["data", "import", "--out", str(out)])
    with pytest.raises(PfdtrainError, match="--manifest do"):
        run_cli(["data", "import", "--layout", "cwru", "--root", str(root), "--out", str(out),
                 "--manifest", str(manifest)])
    with pytest.raises(PfdtrainError, match="--layout cwru needs --root"):
        run_cli(["data", "import", "--layout", "cwru", "--out", str(out)])
