"""The synthetic journal-bearing generator: reproducibility and physical signatures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pfdtrain.config.training_config import SyntheticConfig
from pfdtrain.data.synthetic import (
    CLASS_NAMES,
    METADATA_FIELDS,
    SEVERITY_NAMES,
    generate_record,
    generate_records,
    viscosity,
)

FS = 6400
TINY = SyntheticConfig(records_per_class=4, record_duration=1.0, seed=11)
# Spectral checks: clean (noise_level 0) 2-second records, 0.5 Hz resolution.
CLEAN = SyntheticConfig(records_per_class=4, record_duration=2.0, noise_level=0.0, seed=5)
NOISY = dataclasses.replace(CLEAN, noise_level=1.0)
SEVERE = 3


def label_of(name: str) -> int:
    return CLASS_NAMES.index(name)


def severe_index(label: int) -> int:
    """An index whose grid assignment is (label, severe)."""
    return label + len(CLASS_NAMES) * SEVERE


def band_energy(x: np.ndarray, lo: float, hi: float, fs: float = FS) -> float:
    """Energy of ``x`` between ``lo`` and ``hi`` Hz (Hann window against leakage)."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / fs)
    return float(spec[(f >= lo) & (f <= hi)].sum())


def bands(name: str, speed: float) -> list[tuple[float, float]]:
    """Frequency bands (Hz) where the named signature must show, for shaft speed ``speed``."""
    def order(k: float, rel: float = 0.03) -> tuple[float, float]:
        return (k * speed * (1 - rel), k * speed * (1 + rel))

    sub = (0.40 * speed, 0.50 * speed)  # 0.42-0.48X plus the whirl's frequency wander
    table = {
        "imbalance": [order(1)],
        "misalignment": [order(2), order(3)],
        "clearance": [sub, order(1), order(2)],
        "oil_whirl": [sub],
        "lubrication": [(1.75, 5.25)],
        "cavitation": [(1500.0, 2500.0)],
        "wear": [(400.0, 3000.0), order(1), order(2)],  # broadband above all harmonics
    }
    mixed = {"mixed_misalign_imbalance": ("misalignment", "imbalance"),
             "mixed_wear_lube": ("wear", "lubrication"),
             "mixed_cavit_clearance": ("cavitation", "clearance")}
    if name in mixed:
        return [b for part in mixed[name] for b in table[part]]
    return table[name]


# ---------------------------------------------------------------- reproducibility
def test_same_seed_identical_different_seed_differs() -> None:
    a = generate_records(TINY, indices=range(12))
    b = generate_records(TINY, indices=range(12))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = generate_records(dataclasses.replace(TINY, seed=12), indices=range(12))
    assert not np.allclose(a["signals"], c["signals"])


def test_order_independent() -> None:
    full = generate_records(TINY, indices=range(8))
    part = generate_records(TINY, indices=[6, 5])
    np.testing.assert_array_equal(part["signals"], full["signals"][[6, 5]])
    np.testing.assert_array_equal(part["speed_hz"], full["speed_hz"][[6, 5]])
    alone, _ = generate_record(5, TINY)
    np.testing.assert_array_equal(alone, full["signals"][5])


def test_process_pool_gives_the_same_records() -> None:
    serial = generate_records(TINY, indices=range(6))
    pooled = generate_records(TINY, indices=range(6), workers=2)
    for key in serial:
        np.testing.assert_array_equal(serial[key], pooled[key])


def test_shapes_labels_and_metadata() -> None:
    data = generate_records(TINY)
    n = TINY.records_per_class * len(CLASS_NAMES)
    assert data["signals"].shape == (n, round(TINY.record_duration * TINY.effective_sampling_rate))
    assert data["signals"].dtype == np.float32
    idx = np.arange(n)
    np.testing.assert_array_equal(data["labels"], idx % len(CLASS_NAMES))
    np.testing.assert_array_equal(data["severities"], (idx // len(CLASS_NAMES)) % 4)
    assert np.bincount(data["labels"]).tolist() == [TINY.records_per_class] * len(CLASS_NAMES)
    assert data["record_ids"][123 % n] == f"syn-{123 % n:06d}"
    for name in METADATA_FIELDS:
        assert data[name].shape == (n,) and data[name].dtype == np.float64
    assert np.all((data["speed_hz"] >= 54) & (data["speed_hz"] <= 66))
    assert np.all((data["load"] >= 0.3) & (data["load"] <= 1.0))
    assert np.all((data["temperature"] >= 40) & (data["temperature"] <= 80))
    np.testing.assert_allclose(data["viscosity"], [viscosity(t) for t in data["temperature"]])
    assert np.all((data["sommerfeld"] >= 0.05) & (data["sommerfeld"] <= 0.5))
    assert len(SEVERITY_NAMES) == 4 and np.isfinite(data["signals"]).all()


# ---------------------------------------------------------------- physical signatures
@pytest.mark.parametrize("name", [c for c in CLASS_NAMES if c != "healthy"])
def test_signature_at_expected_frequency(name: str) -> None:
    """A severe fault adds energy in its own bands compared with the same machine healthy."""
    index = severe_index(label_of(name))
    x, info = generate_record(index, CLEAN)
    healthy, h_info = generate_record(index, CLEAN, overrides={"label": 0})
    assert info["label"] == label_of(name) and info["severity"] == SEVERE
    assert h_info["speed_hz"] == info["speed_hz"]
    for lo, hi in bands(name, info["speed_hz"]):
        fault_e, healthy_e = band_energy(x, lo, hi), band_energy(healthy, lo, hi)
        assert fault_e > 4 * healthy_e + 1e-9, (name, lo, hi, fault_e, healthy_e)


@pytest.mark.parametrize("name", ["imbalance", "oil_whirl", "cavitation"])
def test_signature_survives_realistic_noise(name: str) -> None:
    index = severe_index(label_of(name))
    x, info = generate_record(index, NOISY)
    healthy, _ = generate_record(index, NOISY, overrides={"label": 0})
    lo, hi = bands(name, info["speed_hz"])[0]
    assert band_energy(x, lo, hi) > 4 * band_energy(healthy, lo, hi)


def test_imbalance_amplitude_grows_with_speed_squared() -> None:
    index = severe_index(label_of("imbalance"))
    amps = []
    for speed in (54.0, 66.0):
        x, _ = generate_record(index, CLEAN, overrides={"speed_hz": speed})
        amps.append(np.sqrt(band_energy(x, 0.97 * speed, 1.03 * speed)))
    assert amps[1] / amps[0] == pytest.approx((66.0 / 54.0) ** 2, rel=0.03)


def test_oil_whirl_amplitude_larger_at_low_sommerfeld() -> None:
    index = severe_index(label_of("oil_whirl"))
    amps, s = [], []
    for temperature, load in ((80.0, 1.0), (40.0, 0.3)):  # low S (hot, heavy) / high S
        x, info = generate_record(index, CLEAN, overrides={"speed_hz": 60.0, "load": load,
                                                           "temperature": temperature})
        amps.append(np.sqrt(band_energy(x, 24.0, 30.0)))
        s.append(info["sommerfeld"])
    assert s[0] < 0.1 < 0.4 < s[1]
    assert amps[0] > amps[1]
    assert amps[0] / amps[1] == pytest.approx(np.sqrt(s[1] / s[0]), rel=0.05)


@pytest.mark.parametrize("name", ["misalignment", "oil_whirl", "cavitation", "lubrication",
                                  "wear"])
def test_severity_increases_fault_energy(name: str) -> None:
    index = severe_index(label_of(name))
    energies = []
    for severity in range(4):
        x, info = generate_record(index, CLEAN, overrides={"severity": severity})
        lo, hi = bands(name, info["speed_hz"])[0]
        energies.append(band_energy(x, lo, hi))
    assert energies == sorted(energies) and energies[-1] > 20 * energies[0], energies


def test_incipient_fault_is_at_or_below_the_noise() -> None:
    """Incipient faults must be hard: the fault's RMS does not exceed the noise's on average."""
    clean0 = dataclasses.replace(CLEAN, record_duration=1.0)
    noisy = dataclasses.replace(clean0, noise_level=1.0)
    ratios = []
    for label in range(1, len(CLASS_NAMES)):
        index = label  # severity 0 (incipient) on the grid
        x0, info = generate_record(index, clean0)
        assert info["severity"] == 0
        h0, _ = generate_record(index, clean0, overrides={"label": 0})
        x1, _ = generate_record(index, noisy)
        fault = x0.astype(np.float64) - h0  # same machine, same draws: just the fault
        noise = x1.astype(np.float64) - x0  # noise is drawn after, and scaled by noise_level
        ratios.append(np.sqrt(np.mean(fault ** 2) / np.mean(noise ** 2)))
    assert np.mean(ratios) < 1.0 and max(ratios) < 1.5, ratios


def test_unknown_override_rejected() -> None:
    with pytest.raises(ValueError, match="unknown override"):
        generate_record(0, TINY, overrides={"speed": 50.0})
