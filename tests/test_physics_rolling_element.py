"""The rolling-element physics term (``physics.term: rolling_element``): envelope spectrum,
per-location evidence on simulator records, the partial-label loss, its errors, its config
and a real PINN run on the rolling-element simulator."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from pfdtrain.config.training_config import (BearingConfig, ConfigError, PhysicsConfig,
                                             SyntheticConfig, TrainingConfig)
from pfdtrain.data.records import RecordSplit
from pfdtrain.data.rolling_element import class_names, generate_record
from pfdtrain.data.storage import write_dataset
from pfdtrain.pipeline import run_training
from pfdtrain.training.cnn_losses import LossConfigError
from pfdtrain.training.physics_rolling_element import (LOCATIONS, EnvelopeSpectrumConsistencyLoss,
                                                       envelope_spectrum, fault_locations,
                                                       resolve_bearing_geometry)
from pfdtrain.training.registry import PHYSICS_TERMS, physics_term_builder
from tests.helpers import tiny_config

FS = 12000.0
WINDOW = 2048
SIM = SyntheticConfig(kind="rolling_element", record_duration=1.0, records_per_class=24)
NAMES = class_names(SIM)  # normal, inner_race, outer_race, ball


def _windows(label, severity, records=range(8), load=1.0):
    """Raw 2048-sample windows (5 per record) and their rpm, of simulator records of one
    class, fault size and load (the records' own speeds)."""
    xs, rpms = [], []
    for i in records:
        overrides = {"label": label, "load": load}
        if label:
            overrides["severity"] = severity
        x, info = generate_record(i, SIM, overrides=overrides)
        xs.append(torch.from_numpy(x[:5 * WINDOW].reshape(5, 1, WINDOW).copy()))
        rpms.extend([info["rpm"]] * 5)
    return torch.cat(xs), {"rpm": torch.tensor(rpms)}


@pytest.fixture(scope="module")
def loss_fn():
    return EnvelopeSpectrumConsistencyLoss(FS, NAMES, SIM.rolling_element)


@pytest.mark.parametrize("name, expected", [
    ("normal", ()), ("Normal", ()), ("inner_race", ("inner",)), ("IR007", ("inner",)),
    ("inner_race_0.007in", ("inner",)), ("outer_race", ("outer",)), ("OR014@6", ("outer",)),
    ("OR021", ("outer",)), ("ball", ("ball",)), ("B007", ("ball",)),
    ("inner_outer", ("outer", "inner")), ("outer_ball", ("outer", "ball")),
    ("inner_ball", ("inner", "ball")), ("oil_whirl", None), ("healthy", ()),
    ("bearing_x", None),
])
def test_class_names_map_to_fault_locations(name, expected):
    assert fault_locations(name) == expected


def test_envelope_spectrum_of_an_am_carrier_is_the_modulation_line():
    # x = (1 + m cos 2π fm t) cos 2π fc t: the envelope is 1 + m cos 2π fm t, whose
    # Hann-windowed spectrum at the fm bin is m/2 · Σ hann (fm and fc on exact bins).
    n, m = 2048, 0.5
    fm, fc = 20 * FS / n, 400 * FS / n
    t = torch.arange(n, dtype=torch.float64) / FS
    x = ((1 + m * torch.cos(2 * math.pi * fm * t)) * torch.cos(2 * math.pi * fc * t)).float()
    spectrum = envelope_spectrum(x[None], FS, [1000.0, FS / 2])[0]
    assert int(spectrum.argmax()) == 20
    hann = torch.hann_window(n, periodic=False, dtype=torch.float64)
    expected = m / 2 * float(hann.sum())
    # the mean-removed envelope's Hann leakage puts a little of bin 20 elsewhere: 1e-3
    assert float(spectrum[20]) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("label", [1, 2, 3])  # inner_race, outer_race, ball
def test_the_true_location_wins_on_clearly_faulty_simulator_records(loss_fn, label):
    x, meta = _windows(label, severity=2)  # the largest spall (0.53 mm) at the rated load
    speed = meta["rpm"] / 60.0
    scores = loss_fn.location_scores(x, speed)
    true = LOCATIONS.index(fault_locations(NAMES[label])[0])
    others = [i for i in range(3) if i != true]
    # on average the true location's log peak-to-background ratio beats the others by a margin
    margin = scores[:, true].mean() - scores[:, others].mean(dim=0).max()
    assert float(margin) > 0.3, scores.mean(dim=0)
    assert float((scores.argmax(dim=1) == true).float().mean()) >= 0.9
    evidence = loss_fn.evidence(x, meta)
    assert float((evidence.argmax(dim=1) == label).float().mean()) >= 0.7
    assert float(evidence[:, label].mean()) > float(evidence[:, 0].mean())  # not "normal"


def test_normal_records_support_the_normal_class(loss_fn):
    x, meta = _windows(0, severity=-1)
    location = loss_fn.location_evidence(x, meta)
    assert float(location.mean()) < 0.2
    evidence = loss_fn.evidence(x, meta)
    assert float((evidence.argmax(dim=1) == 0).float().mean()) >= 0.8
    assert evidence.min() >= 0 and evidence.max() <= 1


def test_the_loss_is_the_partial_label_formula_and_prefers_the_true_class(loss_fn):
    x, meta = _windows(2, severity=2, records=range(2))  # outer race
    logits = torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(0))
    evidence = loss_fn.evidence(x, meta)
    floor = loss_fn.evidence_floor
    expected = -torch.log((torch.softmax(logits, dim=1)
                           * (floor + (1 - floor) * evidence)).sum(dim=1)).mean()
    assert float(loss_fn(x, logits, meta)) == pytest.approx(float(expected), rel=1e-5)
    right = torch.full((x.shape[0], 4), -4.0)
    right[:, 2] = 4.0
    wrong = torch.full((x.shape[0], 4), -4.0)
    wrong[:, 0] = 4.0  # "normal" for an outer-race fault
    assert float(loss_fn(x, right, meta)) < float(loss_fn(x, wrong, meta)) - 1.0


def test_gradients_reach_the_logits_but_not_the_signal(loss_fn):
    x, meta = _windows(1, severity=2, records=range(1))
    x.requires_grad_(True)
    logits = torch.zeros(x.shape[0], 4, requires_grad=True)
    loss_fn(x, logits, meta).backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0
    assert x.grad is None  # the evidence is a target computed under no_grad
    # the gradient pushes towards the supported class: d loss / d logit_inner < 0
    assert float(logits.grad[:, 1].mean()) < 0


def test_speed_comes_from_speed_hz_or_rpm_and_is_required(loss_fn):
    x, meta = _windows(2, severity=2, records=range(1))
    by_rpm = loss_fn.evidence(x, meta)
    by_hz = loss_fn.evidence(x, {"speed_hz": meta["rpm"] / 60.0})
    torch.testing.assert_close(by_rpm, by_hz)
    for metadata in (None, {}, {"load": torch.ones(x.shape[0])}):
        with pytest.raises(ValueError, match="speed_hz' or 'rpm'.*with_metadata=True"):
            loss_fn(x, torch.zeros(x.shape[0], 4), metadata)
    unknown = loss_fn.evidence(x, {"speed_hz": torch.full((x.shape[0],), float("nan"))})
    assert bool((unknown == 0.5).all())  # no speed for a window: no opinion


def test_unknown_class_names_get_neutral_evidence():
    loss_fn = EnvelopeSpectrumConsistencyLoss(FS, ["normal", "outer_race", "rotor_rub"],
                                              BearingConfig())
    x, meta = _windows(2, severity=2, records=range(1))
    evidence = loss_fn.evidence(x, meta)
    assert bool((evidence[:, 2] == 0.5).all())


@pytest.mark.parametrize("kwargs, fragment", [
    ({"band_hz": [7000.0, 8000.0]}, "Nyquist"),
    ({"band_hz": [3000.0, 2000.0]}, "low < high"),
    ({"harmonics": 0}, "harmonics"),
    ({"slip_tolerance": -0.1}, "slip_tolerance"),
    ({"evidence_scale": 0.0}, "evidence_scale"),
    ({"class_names": ["healthy", "imbalance"]}, "none of the classes"),
    ({"class_names": ["oil_whirl", "imbalance"]}, "none of the classes"),
])
def test_bad_loss_settings_are_refused(kwargs, fragment):
    args = {"sampling_rate": FS, "class_names": NAMES, "geometry": BearingConfig(), **kwargs}
    with pytest.raises(LossConfigError, match=fragment):
        EnvelopeSpectrumConsistencyLoss(**args)


# ---------------------------------------------------------------- config and registry
def test_physics_term_choices_come_from_the_registry():
    field = next(f for f in dataclasses.fields(PhysicsConfig) if f.name == "term")
    assert field.metadata["choices"] == list(PHYSICS_TERMS)
    assert PhysicsConfig().term == "journal"  # the default keeps today's behaviour
    assert physics_term_builder("rolling_element").__name__ == "rolling_element_terms"
    with pytest.raises(KeyError, match="registered: journal, rolling_element"):
        physics_term_builder("magnetic")
    with pytest.raises(ConfigError, match="physics.term = 'rolling' is not allowed.*"
                                          "rolling_element"):
        TrainingConfig.from_dict({"physics": {"term": "rolling"}})


def test_bearing_geometry_defaults_to_cwru_6205_and_follows_the_simulator():
    assert dataclasses.astuple(BearingConfig()) == (9, 7.94, 39.04, 0.0)
    cfg = TrainingConfig.from_dict({"synthetic": {"kind": "rolling_element",
                                                  "rolling_element": {"num_balls": 8}}})
    assert resolve_bearing_geometry(cfg).num_balls == 8  # the simulator's bearing wins
    same = TrainingConfig.from_dict({"synthetic": {"kind": "rolling_element",
                                                   "rolling_element": {"num_balls": 8}},
                                     "physics": {"bearing": {"num_balls": 8}}})
    assert resolve_bearing_geometry(same).num_balls == 8
    mismatch = TrainingConfig.from_dict({"synthetic": {"kind": "rolling_element"},
                                         "physics": {"bearing": {"num_balls": 12}}})
    with pytest.raises(ConfigError, match="differs from the simulated bearing"):
        resolve_bearing_geometry(mismatch)
    on_file = TrainingConfig.from_dict({"data": {"source": "x.h5"},
                                        "physics": {"bearing": {"num_balls": 12}}})
    assert resolve_bearing_geometry(on_file).num_balls == 12


@pytest.mark.parametrize("physics, fragment", [
    ({"bearing": {"ball_diameter_mm": 40.0}}, "smaller than physics.bearing.pitch"),
    ({"bearing": {"num_balls": 30}}, "do not fit"),
    ({"envelope_band_hz": [2000.0, 1000.0]}, "empty range"),
    ({"envelope_band_hz": [1000.0]}, "list of 2 numbers"),
    ({"harmonics": 0}, "physics.harmonics"),
])
def test_bad_physics_settings_are_refused(physics, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainingConfig.from_dict({"physics": physics})


TINY = {
    "num_epochs": 2,
    "trainer": "pinn",
    "data": {"window_length": WINDOW, "window_stride": WINDOW, "batch_size": 8,
             "val_fraction": 0.25, "test_fraction": 0.25},
    "synthetic": {"kind": "rolling_element", "record_duration": 0.5, "records_per_class": 8},
    "model": {"name": "cnn1d", "params": {"base_channels": 4}},
    "scheduler": {"name": "none"},
    "physics": {"term": "rolling_element", "weight": 0.5},
}


def _config(tmp_path, **sections):
    return tiny_config(TINY, tmp_path, **sections)


def test_pinn_trains_with_the_rolling_element_term(tmp_path):
    result = run_training(_config(tmp_path), progress_bar=False)
    trainer, history = result.trainer, result.history
    assert isinstance(trainer.multitask.physics_loss, EnvelopeSpectrumConsistencyLoss)
    assert trainer.multitask.auxiliary_loss is None  # no oil-whirl constraint
    assert len(history["train_loss"]) == 2
    for key in ("train_physics_loss", "val_physics_loss"):
        assert all(0.0 < v < -math.log(0.05) for v in history[key]), history[key]
    assert all(v == 0.0 for v in history["train_auxiliary_loss"])
    assert history["train_loss"][0] == pytest.approx(
        history["train_classification_loss"][0] + 0.5 * history["train_physics_loss"][0])
    assert np.isfinite(history["val_loss"]).all()


@pytest.mark.parametrize("sections, fragment", [
    ({"physics": {"term": "rolling_element", "constraint_weight": 0.2}},
     "oil-whirl constraint"),
    ({"synthetic": {"kind": "journal"}}, "synthetic.kind = 'journal'"),
    ({"physics": {"term": "rolling_element", "bearing": {"num_balls": 12}}},
     "differs from the simulated"),
    ({"data": {"transform": "fft"}}, "data.transform: raw"),
])
def test_rolling_term_settings_that_cannot_work_are_refused(tmp_path, sections, fragment):
    with pytest.raises(ConfigError, match=fragment):
        run_training(_config(tmp_path, **sections), progress_bar=False)


def _recordings(path, class_names, metadata_key):
    """Four recordings per class at 12 kHz (noise), with ``metadata_key`` as their only
    metadata column."""
    rng = np.random.default_rng(0)
    records, labels, ids = [], [], []
    for label in range(len(class_names)):
        for k in range(4):
            records.append(rng.standard_normal(4096).astype(np.float32))
            labels.append(label)
            ids.append(f"r-{label}-{k}")
    split = RecordSplit.from_records(records, labels, ids,
                                     metadata={metadata_key: [1797.0] * len(records)})
    write_dataset(path, {"records": split}, class_names=class_names, sampling_rate=FS,
                  source="test recordings")
    return path


@pytest.mark.parametrize("class_names, key, fragment", [
    (["normal", "outer_race"], "load", "has no 'rpm' or 'speed_hz' metadata"),
    (["normal", "rotor_rub"], "rpm", "none of the classes"),
])
def test_data_the_rolling_term_cannot_read_is_refused(tmp_path, class_names, key, fragment):
    source = _recordings(tmp_path / "recordings.h5", class_names, key)
    config = _config(tmp_path, data={"source": str(source), "split": "record",
                                     "val_fraction": 0.25, "test_fraction": 0.25},
                     synthetic={"kind": "journal"})
    with pytest.raises(ConfigError, match=fragment):
        run_training(config, progress_bar=False)
