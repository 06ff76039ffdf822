"""The public datasets' native layouts (MFPT, Paderborn, CWRU roots), MATLAB struct paths,
rates stated by the files, and the README's layout walk-through pieces."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pfdtrain.cli import main
from pfdtrain.data import read_dataset
from pfdtrain.data.importers import LAYOUTS
from pfdtrain.data.importers.mfpt import import_mfpt, mfpt_file_class
from pfdtrain.data.importers.paderborn import import_paderborn, paderborn_file_info
from pfdtrain.data.importers.readers import RecordingError, parse_struct_path, read_signal

RNG = np.random.default_rng(7)


def write_mfpt_file(path: Path, rate: float, n: int, shaft: float = 25.0,
                    load: float = 270.0) -> np.ndarray:
    """As distributed: struct ``bearing`` with sr, gs (an N x 1 column), load, rate."""
    signal = RNG.normal(size=n)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"bearing": {"sr": float(rate), "gs": signal[:, None],
                                        "load": float(load), "rate": float(shaft)}})
    return signal


def write_mfpt_tree(root: Path, n_base: int = 9000, n_fault: int = 5000) -> None:
    write_mfpt_file(root / "1 - Three Baseline Conditions" / "baseline_1.mat", 97656, n_base)
    write_mfpt_file(root / "2 - Three Outer Race Fault Conditions" / "OuterRaceFault_1.mat",
                    97656, n_base)
    for k, load in ((1, 25.0), (2, 50.0)):
        write_mfpt_file(root / "3 - Seven More Outer Race Fault Conditions"
                        / f"OuterRaceFault_vload_{k}.mat", 48828, n_fault, load=load)
        write_mfpt_file(root / "4 - Seven Inner Race Fault Conditions"
                        / f"InnerRaceFault_vload_{k}.mat", 48828, n_fault, load=load)
    (root / "5 - Analyses").mkdir(parents=True)
    (root / "5 - Analyses" / "notes.txt").write_text("not data")
    write_mfpt_file(root / "6 - Real World Examples" / "IntermediateSpeedBearing.mat",
                    48828, n_fault)


CHANNELS = ("force", "phase_current_1", "phase_current_2", "speed", "temp_2_bearing_module",
            "torque", "vibration_1")


def write_paderborn_file(path: Path, n: int = 6400, vibration: np.ndarray | None = None
                         ) -> np.ndarray:
    """As distributed: a variable named like the file, a 1x1 struct with Info, X, Y,
    Description; Y a 1x7 struct array of channels (Name, Type, Unit, Data 1xN, Raster)."""
    vib = RNG.normal(size=n) if vibration is None else vibration
    y = np.zeros((1, len(CHANNELS)), dtype=[("Name", "O"), ("Type", "O"), ("Unit", "O"),
                                            ("Data", "O"), ("Raster", "O")])
    for i, name in enumerate(CHANNELS):
        data = vib if name == "vibration_1" else RNG.normal(size=n // 4 if "temp" not in name
                                                            else 4)
        y[0, i] = (name, "measured", "m/s^2" if name == "vibration_1" else "-",
                   np.asarray(data, dtype=np.float64)[None, :],
                   "Mech" if name in ("speed", "torque") else "HostService")
    x = np.zeros((1, 3), dtype=[("Name", "O"), ("Type", "O"), ("Unit", "O"), ("Data", "O"),
                                ("Raster", "O")])
    for i in range(3):
        x[0, i] = (f"time_{i}", "time", "s", np.arange(4.0)[None, :], "Mech")
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {path.stem: {"Info": {"Date": "2015-07-01"}, "X": x, "Y": y,
                                        "Description": "test"}})
    return vib


def write_paderborn_tree(root: Path, n: int = 6400) -> None:
    for code in ("K001", "K002", "KA01", "KA04", "KI04", "KB23"):
        for setting in ("N15_M07_F10", "N09_M07_F10"):
            for k in (1, 2):
                write_paderborn_file(root / code / f"{setting}_{code}_{k}.mat", n)


# ------------------------------------------------------------------------------------------
# struct paths
# ------------------------------------------------------------------------------------------

def test_parse_struct_path():
    assert parse_struct_path("bearing.gs", Path("f")) == [("bearing", None), ("gs", None)]
    assert parse_struct_path("a.Y[Name=vibration_1].Data", Path("f")) == [
        ("a", None), ("Y", "Name=vibration_1"), ("Data", None)]
    for bad in ("a..b", "a[Name=x", "a.b]", ".a"):
        with pytest.raises(RecordingError, match="malformed"):
            parse_struct_path(bad, Path("f"))


def test_struct_paths_nested_and_by_name(tmp_path):
    sig = RNG.normal(size=3000)
    scipy.io.savemat(tmp_path / "n.mat", {"a": {"b": {"c": sig[None, :]}, "fs": 5000.0}})
    out, info = read_signal(tmp_path / "n.mat", variable="a.b.c")
    np.testing.assert_allclose(out, sig)
    assert info["variable"] == "a.b.c"
    vib = write_paderborn_file(tmp_path / "N15_M07_F10_KA04_1.mat", 4000)
    out, _ = read_signal(tmp_path / "N15_M07_F10_KA04_1.mat",
                         variable="N15_M07_F10_KA04_1.Y[Name=vibration_1].Data")
    np.testing.assert_allclose(out, vib)
    out, _ = read_signal(tmp_path / "N15_M07_F10_KA04_1.mat",
                         variable="N15_M07_F10_KA04_1.Y[6].Data")
    np.testing.assert_allclose(out, vib)
    (tmp_path / "renamed.mat").write_bytes((tmp_path / "N15_M07_F10_KA04_1.mat").read_bytes())
    out, _ = read_signal(tmp_path / "renamed.mat", variable="*.Y[Name=vibration_1].Data")
    np.testing.assert_allclose(out, vib)  # '*': the file's only variable, whatever its name
    scipy.io.savemat(tmp_path / "two.mat", {"a": {"b": sig[None, :]}, "fs": 5000.0})
    with pytest.raises(RecordingError, match=r"starts at '\*'.*it has 2: a, fs"):
        read_signal(tmp_path / "two.mat", variable="*.b")


def test_a_missing_struct_path_names_the_fields_where_it_stopped(tmp_path):
    write_mfpt_file(tmp_path / "baseline_1.mat", 97656, 3000)
    with pytest.raises(RecordingError, match=r"field 'signal' not found in 'bearing'; its "
                                             r"fields: sr, gs, load, rate"):
        read_signal(tmp_path / "baseline_1.mat", variable="bearing.signal")
    with pytest.raises(RecordingError, match=r"variable 'bearings' not found; available "
                                             r"variables: bearing"):
        read_signal(tmp_path / "baseline_1.mat", variable="bearings.gs")
    with pytest.raises(RecordingError, match=r"'bearing.gs' is not a struct"):
        read_signal(tmp_path / "baseline_1.mat", variable="bearing.gs.x")
    write_paderborn_file(tmp_path / "N15_M07_F10_KA04_1.mat", 3000)
    stem = "N15_M07_F10_KA04_1"
    with pytest.raises(RecordingError, match=r"no element of '.*\.Y' has Name = 'vibration_2'; "
                                             r"its Name values: force, .*vibration_1"):
        read_signal(tmp_path / f"{stem}.mat", variable=f"{stem}.Y[Name=vibration_2].Data")
    with pytest.raises(RecordingError, match=r"struct array of 7 elements; select one"):
        read_signal(tmp_path / f"{stem}.mat", variable=f"{stem}.Y.Data")


def test_struct_path_in_a_v73_file(tmp_path):
    """MATLAB v7.3 stores a struct as an HDF5 group, a struct array's fields as references."""
    sig = RNG.normal(size=2000)
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        g = f.create_group("bearing")
        g.create_dataset("gs", data=sig[None, :])
        g.create_dataset("sr", data=np.array([[25600.0]]))
        refs = f.create_group("#refs#")
        y = g.create_group("Y")
        names, datas = [], []
        for i, name in enumerate(("force", "vibration_1")):
            n = refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in name], np.uint16))
            n.attrs["MATLAB_class"] = np.bytes_("char")
            d = refs.create_dataset(f"d{i}", data=(sig * (i + 1))[None, :])
            names.append(n.ref)
            datas.append(d.ref)
        y.create_dataset("Name", data=np.array(names, dtype=h5py.ref_dtype)[:, None])
        y.create_dataset("Data", data=np.array(datas, dtype=h5py.ref_dtype)[:, None])
    out, info = read_signal(path, variable="bearing.gs")
    np.testing.assert_allclose(out, sig)
    assert info["sampling_rate"] == 25600.0
    out, _ = read_signal(path, variable="bearing.Y[Name=vibration_1].Data")
    np.testing.assert_allclose(out, sig * 2)
    with pytest.raises(RecordingError, match=r"field 'x' not found in 'bearing'; its fields: "
                                             r"Y, gs, sr"):
        read_signal(path, variable="bearing.x")


# ------------------------------------------------------------------------------------------
# MFPT
# ------------------------------------------------------------------------------------------

def test_mfpt_file_names():
    assert mfpt_file_class("baseline_3.mat") == "normal"
    assert mfpt_file_class("OuterRaceFault_2.mat") == "outer_race"
    assert mfpt_file_class("OuterRaceFault_vload_7.mat") == "outer_race"
    assert mfpt_file_class("InnerRaceFault_vload_1.mat") == "inner_race"
    assert mfpt_file_class("PlanetaryBearing.mat") is None


def test_mfpt_mixed_rates_are_refused_without_resample(tmp_path):
    root = tmp_path / "MFPT Fault Data Sets"
    write_mfpt_tree(root)
    out = tmp_path / "mfpt.h5"
    with pytest.raises(RecordingError, match=r"different sampling rates \(48828 Hz: 4 file\(s\).*"
                                             r"97656 Hz: 2 file\(s\).*--resample"):
        import_mfpt(root, out)
    assert not out.exists()


def test_mfpt_import_with_resample(tmp_path):
    root = tmp_path / "MFPT Fault Data Sets"
    write_mfpt_tree(root, n_base=9766, n_fault=4883)
    with pytest.warns(UserWarning, match="IntermediateSpeedBearing.mat: not an MFPT"):
        summary = import_mfpt(root, tmp_path / "mfpt.h5", target_rate=48828.0)
    assert summary.class_names == ["normal", "inner_race", "outer_race"]
    assert summary.class_counts == {"normal": 1, "inner_race": 2, "outer_race": 3}
    data = read_dataset(tmp_path / "mfpt.h5")
    split = data.splits["records"]
    assert data.sampling_rate == 48828.0
    i = split.record_ids.index("mfpt-baseline_1")
    assert split.lengths[i] == 4883  # 9766 samples at 97,656 Hz -> half at 48,828 Hz
    j = split.record_ids.index("mfpt-InnerRaceFault_vload_2")
    assert split.metadata["load"][j] == 50.0 and split.metadata["shaft_hz"][j] == 25.0
    assert data.generator_config["original_sampling_rates"]["mfpt-baseline_1"] == 97656.0


def test_mfpt_faults_alone_import_at_their_rate(tmp_path):
    root = tmp_path / "faults"
    write_mfpt_file(root / "InnerRaceFault_vload_1.mat", 48828, 5000)
    write_mfpt_file(root / "OuterRaceFault_vload_1.mat", 48828, 5000)
    assert import_mfpt(root, tmp_path / "f.h5").sampling_rate == 48828.0


# ------------------------------------------------------------------------------------------
# Paderborn
# ------------------------------------------------------------------------------------------

def test_paderborn_file_names():
    info = paderborn_file_info("N15_M07_F10_KA04_1.mat")
    assert info == {"bearing": "KA04", "label": "outer_race", "rpm": 1500.0, "torque_nm": 0.7,
                    "radial_force_n": 1000.0, "measurement": 1.0, "damage_origin": "real"}
    info = paderborn_file_info("N09_M01_F04_KI01_20.mat")
    assert (info["label"], info["rpm"], info["torque_nm"], info["radial_force_n"],
            info["damage_origin"]) == ("inner_race", 900.0, 0.1, 400.0, "artificial")
    assert paderborn_file_info("N15_M07_F10_K001_3.mat")["damage_origin"] == "none"
    assert paderborn_file_info("N15_M07_F10_KB23_3.mat")["label"] == "inner_outer_race"
    assert paderborn_file_info("N15_M07_F10_KA04_1.txt") is None


def test_paderborn_import(tmp_path):
    root = tmp_path / "paderborn"
    write_paderborn_tree(root)
    summary = import_paderborn(root, tmp_path / "pu.h5")
    assert summary.class_names == ["healthy", "outer_race", "inner_race", "inner_outer_race"]
    assert summary.class_counts == {"healthy": 8, "outer_race": 8, "inner_race": 4,
                                    "inner_outer_race": 4}
    assert summary.sampling_rate == 64000.0
    split = read_dataset(tmp_path / "pu.h5").splits["records"]
    i = split.record_ids.index("N09_M07_F10_KA01_2")
    assert split.metadata["bearing"][i] == "KA01"
    assert split.metadata["damage_origin"][i] == "artificial"
    assert split.metadata["rpm"][i] == 900.0 and split.metadata["radial_force_n"][i] == 1000.0
    assert sorted(set(split.metadata["bearing"])) == ["K001", "K002", "KA01", "KA04", "KB23",
                                                      "KI04"]
    three = import_paderborn(root, tmp_path / "pu3.h5", label_set="3class")
    assert three.records == 20 and len(three.skipped) == 4  # the KB23 files


def test_paderborn_file_stating_another_rate_is_refused_or_skipped(tmp_path):
    root = tmp_path / "paderborn"
    write_paderborn_tree(root)
    odd = root / "K001" / "N15_M07_F10_K001_1.mat"
    contents = scipy.io.loadmat(odd)
    scipy.io.savemat(odd, {"N15_M07_F10_K001_1": contents["N15_M07_F10_K001_1"],
                           "fs": 48000.0})
    with pytest.raises(RecordingError, match=r"K001_1\.mat: the file states a sampling rate of "
                                             r"48000 Hz \('fs'\) but this layout's files are "
                                             r"sampled at 64000 Hz"):
        import_paderborn(root, tmp_path / "pu.h5")
    assert not (tmp_path / "pu.h5").exists()
    summary = import_paderborn(root, tmp_path / "pu.h5", skip_bad=True)
    assert summary.records == 23 and "48000 Hz" in summary.skipped[0][1]


# ------------------------------------------------------------------------------------------
# Roots relative and absolute, through the command line
# ------------------------------------------------------------------------------------------

def _write_cwru(root: Path) -> None:
    root.mkdir(parents=True)
    for name, number in (("Normal_0", 97), ("IR007_0", 105), ("B007_1", 119)):
        scipy.io.savemat(root / f"{name}.mat",
                         {f"X{number:03d}_DE_time": RNG.normal(size=(4096, 1)),
                          f"X{number:03d}RPM": np.array([[1796.0]])})


@pytest.mark.parametrize("layout", ["cwru", "mfpt", "paderborn"])
def test_layouts_import_with_relative_and_absolute_roots(tmp_path, monkeypatch, capsys, layout):
    root = tmp_path / "sets" / layout.upper()
    if layout == "cwru":
        _write_cwru(root)
    elif layout == "mfpt":
        write_mfpt_tree(root)
    else:
        write_paderborn_tree(root, n=4096)
    extra = ["--resample", "48828"] if layout == "mfpt" else []
    monkeypatch.chdir(tmp_path)
    relative = Path("sets") / layout.upper()
    assert main(["data", "import", "--layout", layout, "--root", str(relative), "--out",
                 "data/rel.h5", *extra]) == 0
    assert main(["data", "import", "--layout", layout, "--root", str(root), "--out",
                 str(tmp_path / "data" / "abs.h5"), *extra]) == 0
    rel, ab = read_dataset("data/rel.h5"), read_dataset(tmp_path / "data" / "abs.h5")
    assert rel.content_hash == ab.content_hash and len(rel.splits["records"]) > 0
    assert "imported" in capsys.readouterr().out


def test_layout_options_that_do_not_apply_are_refused(tmp_path, capsys):
    write_mfpt_tree(tmp_path / "m")
    assert main(["data", "import", "--layout", "mfpt", "--root", str(tmp_path / "m"),
                 "--out", str(tmp_path / "o.h5"), "--labels", "4class"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfdtrain: error:") and "choose one of 3class" in err
    assert set(LAYOUTS) == {"cwru", "mfpt", "paderborn"}


def test_missing_struct_path_through_a_manifest_names_the_row(tmp_path, capsys):
    write_mfpt_file(tmp_path / "baseline_1.mat", 97656, 3000)
    (tmp_path / "m.csv").write_text("path,label,variable\nbaseline_1.mat,normal,bearing.signal\n")
    assert main(["data", "import", "--manifest", str(tmp_path / "m.csv"), "--out",
                 str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfdtrain: error:") and "row 2" in err and "its fields: sr, gs" in err
    assert not (tmp_path / "o.h5").exists()


# ------------------------------------------------------------------------------------------
# Rates stated by the files (issue 9, item 6), text metadata in manifests
# ------------------------------------------------------------------------------------------

def test_manifest_uses_the_rate_a_file_states_and_refuses_a_contradiction(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"acc": RNG.normal(size=(5000, 1)), "fs": 25600.0})
    scipy.io.savemat(tmp_path / "b.mat", {"acc": RNG.normal(size=(5000, 1)), "Fs": 25600.0})
    write = (tmp_path / "m.csv").write_text
    write("path,label,variable,sampling_rate\na.mat,x,acc,\nb.mat,y,acc,\n")
    from pfdtrain.data.importers.manifest import import_manifest

    assert import_manifest(tmp_path / "m.csv", tmp_path / "o.h5").sampling_rate == 25600.0
    _, info = read_signal(tmp_path / "b.mat", variable="acc")
    assert info["sampling_rate"] == 25600.0 and info["sampling_rate_variable"] == "Fs"
    write("path,label,variable,sampling_rate\na.mat,x,acc,12000\nb.mat,y,acc,\n")
    with pytest.raises(RecordingError, match=r"row 2 .*a\.mat\): the file states a sampling "
                                             r"rate of 25600 Hz \('fs'\) but the row's "
                                             r"sampling_rate cell says 12000 Hz"):
        import_manifest(tmp_path / "m.csv", tmp_path / "o2.h5")
    with pytest.raises(RecordingError, match=r"--sampling-rate says 12000 Hz"):
        write("path,label,variable\na.mat,x,acc\n")
        import_manifest(tmp_path / "m.csv", tmp_path / "o2.h5", sampling_rate=12000.0)
    scipy.io.savemat(tmp_path / "c.mat", {"acc": RNG.normal(size=(5000, 1)), "fs": 51200.0})
    write("path,label,variable\na.mat,x,acc\nc.mat,y,acc\n")
    with pytest.raises(RecordingError, match=r"different sampling rates \(25600 Hz: 1.*51200 Hz"):
        import_manifest(tmp_path / "m.csv", tmp_path / "o2.h5")
    assert not (tmp_path / "o2.h5").exists()
    summary = import_manifest(tmp_path / "m.csv", tmp_path / "o2.h5", target_rate=25600.0)
    assert summary.sampling_rate == 25600.0
    assert read_dataset(tmp_path / "o2.h5").splits["records"].lengths.tolist() == [5000, 2500]


def test_manifest_text_metadata_columns(tmp_path):
    for k in range(4):
        np.save(tmp_path / f"r{k}.npy", RNG.normal(size=3000))
    (tmp_path / "m.csv").write_text("path,label,bearing,rpm\nr0.npy,a,KA04,1500\n"
                                    "r1.npy,a,KA15,1500\nr2.npy,b,K001,\nr3.npy,b,,900\n")
    from pfdtrain.data.importers.manifest import import_manifest

    import_manifest(tmp_path / "m.csv", tmp_path / "o.h5", sampling_rate=1000.0)
    split = read_dataset(tmp_path / "o.h5").splits["records"]
    assert split.metadata["bearing"].tolist() == ["KA04", "KA15", "K001", ""]
    np.testing.assert_array_equal(split.metadata["rpm"], [1500.0, 1500.0, np.nan, 900.0])
