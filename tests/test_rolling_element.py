"""The rolling-element bearing simulator: geometry, envelope-spectrum physics, grid, cache, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt

from pfdtrain.config.training_config import (ConfigError, RollingElementConfig, SyntheticConfig,
                                             TrainingConfig, apply_overrides)
from pfdtrain.data.rolling_element import (characteristic_frequencies, class_names,
                                           generate_record, generate_records, load_zone,
                                           record_assignment, strike_frequency)
from pfdtrain.data.synthetic_cache import synthetic_dataset_path
from tests.helpers import TINY_CLI_CONFIG, run_cli

FS = 12000
CFG = SyntheticConfig(kind="rolling_element", record_duration=2.0)  # 0.5 Hz resolution
FAULT_LOCATION = {"inner_race": "inner", "outer_race": "outer", "ball": "ball"}


def envelope_spectrum(x: np.ndarray, fs: float = FS, band: tuple[float, float] = (2400, 4800)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass around the resonances, Hilbert envelope, magnitude spectrum (Hann)."""
    sos = butter(4, band, btype="band", fs=fs, output="sos")
    env = np.abs(hilbert(sosfiltfilt(sos, np.asarray(x, dtype=np.float64))))
    env -= env.mean()
    return np.fft.rfftfreq(env.size, 1 / fs), np.abs(np.fft.rfft(env * np.hanning(env.size)))


def fault_frequency(name: str, info: dict) -> float:
    freqs = {"bpfo": info["bpfo_hz"], "bpfi": info["bpfi_hz"], "bsf": info["bsf_hz"]}
    return strike_frequency(FAULT_LOCATION[name], freqs)


# ---------------------------------------------------------------- geometry
def test_characteristic_frequencies_match_the_equations_and_cwru_table() -> None:
    geometry = RollingElementConfig()
    fr = 1797 / 60
    f = characteristic_frequencies(fr, geometry)
    ratio = 7.94 / 39.04
    assert f["ftf"] == pytest.approx(fr / 2 * (1 - ratio), rel=1e-12)
    assert f["bpfo"] == pytest.approx(9 * fr / 2 * (1 - ratio), rel=1e-12)
    assert f["bpfi"] == pytest.approx(9 * fr / 2 * (1 + ratio), rel=1e-12)
    assert f["bsf"] == pytest.approx(39.04 / (2 * 7.94) * fr * (1 - ratio ** 2), rel=1e-12)
    # The CWRU bearing data center's table for the 6205 (multiples of the shaft speed; its
    # "rolling element" figure is 2 x BSF, the rate at which a ball defect strikes).
    assert f["bpfi"] / fr == pytest.approx(5.4152, abs=1e-4)
    assert f["bpfo"] / fr == pytest.approx(3.5848, abs=1e-4)
    assert f["ftf"] / fr == pytest.approx(0.39828, abs=1e-4)  # the table rounds: 0.39831
    assert 2 * f["bsf"] / fr == pytest.approx(4.7135, abs=1e-4)
    angled = characteristic_frequencies(fr, dataclasses.replace(geometry, contact_angle_deg=60.0))
    assert angled["bpfo"] == pytest.approx(9 * fr / 2 * (1 - ratio / 2), rel=1e-12)


def test_load_zone_widens_with_load() -> None:
    assert math.degrees(load_zone(0.5)[1]) == pytest.approx(90.0)
    widths = [load_zone(x)[1] for x in (0.25, 0.5, 0.75, 1.0)]
    assert widths == sorted(widths) and math.degrees(widths[-1]) == pytest.approx(120.0)


# ---------------------------------------------------------------- physics
@pytest.mark.parametrize("name", ["inner_race", "outer_race", "ball"])
def test_envelope_spectrum_peaks_at_the_fault_frequency(name: str) -> None:
    label = class_names(CFG).index(name)
    for index in (3, 17, 50):  # three machines, speeds and sensors
        x, info = generate_record(index, CFG, {"label": label, "severity": 1, "load": 0.75})
        healthy, _ = generate_record(index, CFG, {"label": 0, "load": 0.75})
        fc = fault_frequency(name, info)
        f, spec = envelope_spectrum(x)
        # The highest line within ±20 % (beyond the ±1X / ±FTF modulation sidebands' reach
        # of the carrier only by their own, smaller lines) sits on the computed frequency.
        near = (f > 0.8 * fc) & (f < 1.2 * fc)
        peak = f[near][np.argmax(spec[near])]
        assert abs(peak - fc) <= max(0.01 * fc, 1.0), (index, peak, fc)
        # And the same machine without the fault has no such line.
        k = int(np.argmin(abs(f - fc)))
        _, spec0 = envelope_spectrum(healthy)
        assert spec[k - 2:k + 3].max() > 5 * spec0[k - 2:k + 3].max()


def test_fault_lines_follow_the_shaft_speed() -> None:
    label = class_names(CFG).index("outer_race")
    peaks = []
    for rpm in (1300.0, 2600.0):
        x, info = generate_record(7, CFG, {"label": label, "severity": 2, "rpm": rpm})
        f, spec = envelope_spectrum(x)
        band = (f > 30) & (f < 400)
        peaks.append((f[band][np.argmax(spec[band])], info["bpfo_hz"]))
    for peak, bpfo in peaks:
        assert abs(peak - bpfo) <= 1.0
    assert peaks[1][1] == pytest.approx(2 * peaks[0][1])


def test_combined_fault_shows_both_lines() -> None:
    cfg = dataclasses.replace(CFG, rolling_element=RollingElementConfig(combined_faults=True))
    names = class_names(cfg)
    assert names[4:] == ("inner_outer", "inner_ball", "outer_ball")
    x, info = generate_record(5, cfg, {"label": names.index("inner_outer"), "severity": 2,
                                       "load": 1.0})
    healthy, _ = generate_record(5, cfg, {"label": 0, "load": 1.0})
    f, spec = envelope_spectrum(x)
    _, spec0 = envelope_spectrum(healthy)
    for fc in (info["bpfi_hz"], info["bpfo_hz"]):
        k = int(np.argmin(abs(f - fc)))
        assert spec[k - 2:k + 3].max() > 5 * spec0[k - 2:k + 3].max()


# ---------------------------------------------------------------- records and grid
def test_records_are_seeded_by_index_and_order_independent() -> None:
    cfg = dataclasses.replace(CFG, record_duration=0.25)
    full = generate_records(cfg, indices=range(6))
    part = generate_records(cfg, indices=[5, 2])
    np.testing.assert_array_equal(part["signals"][0], full["signals"][5])
    np.testing.assert_array_equal(part["signals"][1], full["signals"][2])
    again = generate_records(cfg, indices=range(6))
    for key in full:
        np.testing.assert_array_equal(full[key], again[key])
    other = generate_records(dataclasses.replace(cfg, seed=cfg.seed + 1), indices=range(6))
    assert not np.allclose(other["signals"], full["signals"])


def test_same_machine_without_its_fault_differs_only_by_the_fault() -> None:
    cfg = dataclasses.replace(CFG, record_duration=0.5)
    x, info = generate_record(2, cfg)  # outer race
    y, info0 = generate_record(2, cfg, {"label": 0})
    assert info["rpm"] == info0["rpm"] and info["load"] == info0["load"]
    assert info0["fault_size_mm"] == 0.0 and info0["severity"] == -1
    assert np.std(x - y) > 0.01  # the strikes
    quiet, _ = generate_record(2, dataclasses.replace(cfg, noise_level=0.0), {"label": 0})
    assert np.std(quiet) < np.std(y)


def test_grid_balances_classes_severities_loads_and_speed_bands() -> None:
    cfg = SyntheticConfig(kind="rolling_element", records_per_class=24, record_duration=0.1)
    data = generate_records(cfg)
    assert data["signals"].shape == (96, 1200)
    re_cfg = cfg.rolling_element
    for label in range(4):
        mine = data["labels"] == label
        assert mine.sum() == 24
        for load in re_cfg.load_levels:
            for band in range(re_cfg.speed_bands):
                cell = mine & (data["load"] == load) & (data["speed_band"] == band)
                assert cell.sum() == 3
    edges = np.linspace(1200, 3000, re_cfg.speed_bands + 1)
    band = data["speed_band"].astype(int)
    assert np.all((data["rpm"] >= edges[band]) & (data["rpm"] <= edges[band + 1]))
    np.testing.assert_allclose(data["speed_hz"], data["rpm"] / 60)
    assert set(data["severities"][data["labels"] == 0]) == {-1}
    assert set(data["severities"][data["labels"] > 0]) == {0, 1, 2}
    assert record_assignment(0, cfg) == {"label": 0, "severity": -1, "load_level": 0,
                                         "speed_band": 0}


# ---------------------------------------------------------------- config and cache
@pytest.mark.parametrize("override, message", [
    ("synthetic.rolling_element.ball_diameter_mm=40", "smaller than"),
    ("synthetic.rolling_element.speed_rpm=[3000, 1200]", "empty range"),
    ("synthetic.rolling_element.fault_sizes_mm=[0.2, -0.1]", "must be > 0 mm"),
    ("synthetic.rolling_element.num_balls=20", "do not fit"),
    ("synthetic.sampling_rate=6400", "too low for resonances"),
])
def test_impossible_settings_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(TrainingConfig(), ["synthetic.kind=rolling_element", override])


def test_impossible_setting_on_the_command_line(tmp_path) -> None:
    proc = run_cli("train", "--set", "synthetic.kind=rolling_element", "--set",
                   "synthetic.rolling_element.speed_rpm=[3000, 1200]", cwd=tmp_path, expect=2)
    assert proc.stderr.startswith("pfdtrain: error: synthetic.rolling_element.speed_rpm")
    assert "e.g. [1200, 3000]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_cache_key_names_the_kind_and_keeps_the_journal_file_name() -> None:
    # The journal file name is the one written before kinds existed (same key, same file).
    assert synthetic_dataset_path(TrainingConfig()).name == "synthetic-a4ae560ef0c4.h5"
    rolling = apply_overrides(TrainingConfig(), ["synthetic.kind=rolling_element"])
    path = synthetic_dataset_path(rolling)
    assert path.name.startswith("synthetic-rolling-")
    changed = apply_overrides(rolling, ["synthetic.rolling_element.load_levels=[0.5, 1.0]"])
    assert synthetic_dataset_path(changed) != path
    assert rolling.synthetic.effective_sampling_rate == 12000
    assert TrainingConfig().synthetic.effective_sampling_rate == 6400


def test_train_end_to_end_and_group_split_by_load(tmp_path) -> None:
    config = json.loads(json.dumps(TINY_CLI_CONFIG))
    config["synthetic"] = {"kind": "rolling_element", "record_duration": 0.5,
                           "records_per_class": 8}
    config["data"].update(window_length=2048, window_stride=2048, split="group",
                          group_key="load", test_groups=[1.0])
    (tmp_path / "re.yaml").write_text(json.dumps(config))
    run_cli("train", "--config", "re.yaml", "--set", "name=re", "--no-progress", cwd=tmp_path)
    run = tmp_path / "runs" / "re"
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["class_names"] == ["normal", "inner_race", "outer_race", "ball"]
    assert metrics["split"]["test_groups"] == [1.0]
    assert list(tmp_path.glob("data/synthetic-rolling-*.h5"))
    # Per condition: the held-out load only, both speed bands.
    run_cli("evaluate", str(run / "checkpoints" / "best_model.pth"), "--by", "load",
            "speed_band", "--snr", cwd=tmp_path)
    groups = json.loads((run / "metrics.json").read_text())["by_group"]
    assert [row["value"] for row in groups["load"]] == [1.0]
    assert [row["value"] for row in groups["speed_band"]] == [0.0, 1.0]
