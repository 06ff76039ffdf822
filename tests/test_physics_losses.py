"""Physics losses and their spectral evidence (pfdtrain.data.spectral,
pfdtrain.training.physics_loss_functions): gradients reach the logits, no argmax on the
gradient path, the spectrum really decides (agreeing predictions cost less), bands follow
the per-sample speed, operating-condition constraints, MultiTaskLoss bookkeeping."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import pfdtrain.data.spectral as spectral
import pfdtrain.training.physics_loss_functions as plf
from pfdtrain.config.training_config import SyntheticConfig
from pfdtrain.data.spectral import (
    BAND_NAMES,
    band_energies,
    class_evidence,
    estimate_shaft_speed,
)
from pfdtrain.data.synthetic import CLASS_NAMES, generate_record
from pfdtrain.training.cnn_losses import LossConfigError
from pfdtrain.training.physics_loss_functions import (
    FrequencyConsistencyLoss,
    MultiTaskLoss,
    PhysicalConstraintLoss,
)

FS = 6400.0
C = len(CLASS_NAMES)
WHIRL = CLASS_NAMES.index("oil_whirl")


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def _windows(noise_level: float, severities: tuple[int, ...], per_cell: int, seed: int):
    """1-s records (= one default 6400-sample window each), z-scored like the data loaders."""
    cfg = SyntheticConfig(record_duration=1.0, noise_level=noise_level, seed=seed)
    xs, labels, speeds, sommerfeld = [], [], [], []
    for label in range(C):
        for severity in severities:
            for k in range(per_cell):
                index = 100 * label + 10 * severity + k  # distinct RNG streams
                x, info = generate_record(index, cfg, overrides={"label": label,
                                                                  "severity": severity})
                xs.append(_zscore(x))
                labels.append(label)
                speeds.append(info["speed_hz"])
                sommerfeld.append(info["sommerfeld"])
    return (torch.from_numpy(np.stack(xs))[:, None], torch.tensor(labels),
            {"speed_hz": torch.tensor(speeds, dtype=torch.float32),
             "sommerfeld": torch.tensor(sommerfeld, dtype=torch.float32)})


@pytest.fixture(scope="module")
def clean_severe():
    return _windows(0.0, (3,), per_cell=5, seed=777)


@pytest.fixture(scope="module")
def noisy_mod_severe():
    return _windows(1.0, (2, 3), per_cell=3, seed=4242)


def _grad_fn_names(tensor: torch.Tensor) -> set[str]:
    """Names of every autograd node reachable from ``tensor``."""
    seen, names, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    return names


# Autograd nodes of hard selections: a gradient through them reaches only the selected entry.
_SELECTION_NODES = ("Max", "Min", "Argmax", "Argmin", "Sort", "Topk", "Kthvalue", "Median",
                    "Nanmedian", "Mode", "Index", "Gather", "Take")


def _selection_nodes(tensor: torch.Tensor) -> list[str]:
    return sorted(n for n in _grad_fn_names(tensor) if n.startswith(_SELECTION_NODES))


def _mean_evidence_matrix(evidence: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([evidence[labels == c].mean(0) for c in range(C)])


# ---------------------------------------------------------------------------- spectral
def test_speed_estimate_pure_tones_and_weak_1x() -> None:
    t = torch.arange(6400) / FS
    speeds = torch.tensor([50.5, 54.0, 59.3, 66.0, 71.2])
    x = torch.cos(2 * torch.pi * speeds[:, None] * t)
    assert torch.allclose(estimate_shaft_speed(x, FS), speeds, atol=0.05)
    # 1X tiny, 2X/3X strong (misalignment) plus a 50-Hz mains line: the harmonic sum wins.
    y = (0.02 * torch.cos(2 * torch.pi * 61.0 * t) + torch.cos(2 * torch.pi * 122.0 * t)
         + 0.4 * torch.cos(2 * torch.pi * 183.0 * t) + 0.05 * torch.cos(2 * torch.pi * 50.0 * t))
    assert abs(float(estimate_shaft_speed(y[None, None], FS)[0]) - 61.0) < 0.1


def test_speed_estimate_on_generated_records(noisy_mod_severe) -> None:
    x, _, meta = noisy_mod_severe
    err = (estimate_shaft_speed(x, FS) - meta["speed_hz"]).abs()
    assert float(err.median()) < 0.2
    assert float((err < 1.0).float().mean()) >= 0.95


def test_band_energies_shape_scale_free_and_finite() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 1, 6400)
    f = band_energies(x, FS, torch.tensor([55.0, 60.0, 65.0]))
    assert f.shape == (3, len(BAND_NAMES)) and f.dtype == torch.float32
    assert torch.isfinite(f).all()
    assert torch.allclose(band_energies(7.0 * x + 3.0, FS, torch.tensor([55.0, 60.0, 65.0])), f,
                          atol=1e-3)
    # [B, L] input, a short window, a flat window, half precision: all finite.
    for sig in (x[:, 0], torch.randn(2, 1, 256), torch.zeros(1, 1, 1024), x.bfloat16()):
        assert torch.isfinite(band_energies(sig, FS)).all()


def test_speed_shift_moves_the_bands() -> None:
    """Records generated at 54 and 66 Hz get their 1X/2X energy at their own speed."""
    cfg = SyntheticConfig(record_duration=1.0, noise_level=1.0, seed=31)
    i1x, i2x = BAND_NAMES.index("1x"), BAND_NAMES.index("2x")
    for label, col in ((CLASS_NAMES.index("imbalance"), i1x),
                       (CLASS_NAMES.index("misalignment"), i2x)):
        recs = {s: _zscore(generate_record(5, cfg, {"label": label, "severity": 3,
                                                    "speed_hz": s})[0]) for s in (54.0, 66.0)}
        x = torch.from_numpy(np.stack([recs[54.0], recs[66.0]]))[:, None]
        assert torch.allclose(estimate_shaft_speed(x, FS), torch.tensor([54.0, 66.0]), atol=0.5)
        right = band_energies(x, FS, torch.tensor([54.0, 66.0]))[:, col]
        swapped = band_energies(x, FS, torch.tensor([66.0, 54.0]))[:, col]
        assert (right > np.log(0.5)).all(), right       # most of the energy at its own kX
        assert (swapped < np.log(0.01)).all(), swapped  # almost none at the other speed's kX
        # Same signal, only the metadata speed changed: different evidence and loss.
        loss_fn = FrequencyConsistencyLoss(FS, CLASS_NAMES)
        logits = torch.zeros(2, C)
        logits[:, label] = 4.0
        ev_right = loss_fn.evidence(x, {"speed_hz": torch.tensor([54.0, 66.0])})
        ev_swapped = loss_fn.evidence(x, {"speed_hz": torch.tensor([66.0, 54.0])})
        assert (ev_right[:, label] > 0.9).all() and (ev_swapped[:, label] < 0.1).all()
        assert (loss_fn(x, logits, {"speed_hz": torch.tensor([54.0, 66.0])})
                < loss_fn(x, logits, {"speed_hz": torch.tensor([66.0, 54.0])}) - 1.0)


def test_evidence_ranks_true_class_clean_severe(clean_severe) -> None:
    x, labels, meta = clean_severe
    evidence = class_evidence(band_energies(x, FS, meta["speed_hz"]), CLASS_NAMES)
    assert evidence.shape == (len(labels), C)
    assert ((evidence >= 0) & (evidence <= 1)).all()
    matrix = _mean_evidence_matrix(evidence, labels)
    for c in range(C):
        assert int(matrix[c].argmax()) == c, (CLASS_NAMES[c], matrix[c])
        assert float(matrix[c, c]) > 0.55, (CLASS_NAMES[c], matrix[c])
    assert float((evidence.argmax(1) == labels).float().mean()) >= 0.85


def test_evidence_with_estimated_speed_matches_metadata(noisy_mod_severe) -> None:
    x, labels, meta = noisy_mod_severe
    with_meta = class_evidence(band_energies(x, FS, meta["speed_hz"]), CLASS_NAMES)
    estimated = class_evidence(band_energies(x, FS), CLASS_NAMES)
    for ev in (with_meta, estimated):
        assert float((ev.argmax(1) == labels).float().mean()) >= 0.75
        assert float(ev[torch.arange(len(labels)), labels].mean()) > 0.6


def test_unknown_classes_get_no_opinion() -> None:
    feats = band_energies(torch.randn(4, 1, 6400), FS)
    ev = class_evidence(feats, ["rotor_rub", "imbalance", "bearing_outer_race"])
    assert torch.equal(ev[:, 0], torch.full((4,), 0.5))
    assert torch.equal(ev[:, 2], torch.full((4,), 0.5))
    # Evidence constant across classes → the loss has no opinion: zero gradient.
    loss_fn = FrequencyConsistencyLoss(FS, ["rotor_rub", "seal_leak", "gear_tooth"])
    logits = torch.randn(4, 3, requires_grad=True)
    loss_fn(torch.randn(4, 1, 6400), logits).backward()
    assert torch.allclose(logits.grad, torch.zeros(4, 3), atol=1e-7)


# ---------------------------------------------------------------------------- frequency loss
def test_frequency_loss_gradient_is_dense_and_argmax_free(noisy_mod_severe) -> None:
    x, labels, meta = noisy_mod_severe
    signal = x[:8].clone().requires_grad_(True)
    logits = torch.randn(8, C, generator=torch.Generator().manual_seed(1), requires_grad=True)
    loss = FrequencyConsistencyLoss(FS, CLASS_NAMES)(
        signal, logits, {k: v[:8] for k, v in meta.items()})
    assert loss.dim() == 0 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert "LogSoftmaxBackward0" in _grad_fn_names(loss)  # the walk does see the graph
    assert _selection_nodes(loss) == [], _grad_fn_names(loss)
    loss.backward()
    assert signal.grad is None  # the evidence is a target: computed without gradient
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad != 0).all(), logits.grad  # every class of every sample gets a gradient


def test_frequency_loss_lower_when_agreeing_with_spectrum(clean_severe, noisy_mod_severe) -> None:
    loss_fn = FrequencyConsistencyLoss(FS, CLASS_NAMES)
    for x, labels, meta in (clean_severe, noisy_mod_severe):
        n = len(labels)
        agree_logits = torch.full((n, C), -2.0)
        agree_logits[torch.arange(n), labels] = 4.0
        agree = torch.stack([loss_fn(x[i:i + 1], agree_logits[i:i + 1],
                                     {"speed_hz": meta["speed_hz"][i:i + 1]}) for i in range(n)])
        contradict = []
        for shift in range(1, C):  # every wrong class in turn
            logits = torch.full((n, C), -2.0)
            logits[torch.arange(n), (labels + shift) % C] = 4.0
            contradict.append(torch.stack([
                loss_fn(x[i:i + 1], logits[i:i + 1], {"speed_hz": meta["speed_hz"][i:i + 1]})
                for i in range(n)]))
        contradict = torch.stack(contradict).mean(0)
        assert float(agree.mean()) < float(contradict.mean()) - 1.0
        assert float((agree < contradict).float().mean()) >= 0.9
        # The batched call is the mean of the per-sample ones.
        batched = loss_fn(x, agree_logits, meta)
        assert torch.allclose(batched, agree.mean(), atol=1e-5)


def test_frequency_loss_training_step_moves_prediction_towards_spectrum(clean_severe) -> None:
    """A few gradient steps on the physics loss alone make the spectrally right class likelier."""
    x, labels, meta = clean_severe
    loss_fn = FrequencyConsistencyLoss(FS, CLASS_NAMES)
    logits = torch.zeros(len(labels), C, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=20.0)
    for _ in range(20):
        opt.zero_grad()
        loss_fn(x, logits, meta).backward()
        opt.step()
    acc = float((logits.argmax(1) == labels).float().mean())
    assert acc >= 0.85, acc


def test_frequency_loss_bf16_and_validation() -> None:
    loss_fn = FrequencyConsistencyLoss(FS, CLASS_NAMES, temperature=2.0)
    x = torch.randn(2, 1, 6400)
    logits = torch.randn(2, C).bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(x.bfloat16(), logits)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()
    assert float(loss_fn(x, torch.randn(2, C))) <= -np.log(0.05) + 1e-5
    with pytest.raises(ValueError, match=r"\[B, 11\]"):
        loss_fn(x, torch.randn(2, 5))
    with pytest.raises(LossConfigError, match="temperature"):
        FrequencyConsistencyLoss(FS, CLASS_NAMES, temperature=0.0)
    with pytest.raises(LossConfigError, match="sampling_rate"):
        FrequencyConsistencyLoss(-1.0, CLASS_NAMES)
    # NaN speeds (unknown) fall back to the estimated speed instead of failing.
    nan_meta = {"speed_hz": torch.tensor([float("nan"), 60.0])}
    assert torch.isfinite(loss_fn(x, torch.randn(2, C), nan_meta))


# ---------------------------------------------------------------------------- constraints
def _whirl_logits(n: int, requires_grad: bool = False) -> torch.Tensor:
    logits = torch.zeros(n, C)
    logits[:, WHIRL] = 3.0
    return logits.requires_grad_(requires_grad)


def test_constraint_penalises_whirl_in_heavily_loaded_bearing() -> None:
    loss_fn = PhysicalConstraintLoss(CLASS_NAMES)
    heavy = {"sommerfeld": torch.full((4,), 0.01)}    # high eccentricity: whirl-free
    light = {"sommerfeld": torch.full((4,), 0.3)}     # low eccentricity: whirl possible
    assert float(loss_fn(_whirl_logits(4), heavy)) > 1.0
    assert float(loss_fn(_whirl_logits(4), light)) < 1e-3
    # Monotone in S and soft around the limit.
    s = torch.tensor([0.01, 0.03, 0.04, 0.05, 0.1, 0.5])
    w = loss_fn.whirl_weight(s)
    assert (w[:-1] > w[1:]).all() and abs(float(w[2]) - 0.5) < 1e-6
    # No correct synthetic whirl record (S in 0.05-0.5) is penalised noticeably.
    assert float(loss_fn.whirl_weight(torch.tensor(0.05))) < 0.1
    # Predicting something else at a low S costs (almost) nothing.
    other = torch.zeros(4, C)
    other[:, 0] = 3.0
    assert float(loss_fn(other, heavy)) < 0.05


def test_constraint_gradient_is_nonzero_and_argmax_free() -> None:
    logits = _whirl_logits(3, requires_grad=True)
    loss = PhysicalConstraintLoss(CLASS_NAMES)(logits, {"sommerfeld": torch.tensor([0.02, 0.03,
                                                                                     0.2])})
    assert _selection_nodes(loss) == [], _grad_fn_names(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, WHIRL] > 0 and (logits.grad[0, :WHIRL] < 0).all()  # away from whirl
    # Confidently wrong still gets a strong gradient (no softmax saturation).
    confident = torch.zeros(1, C)
    confident[0, WHIRL] = 30.0
    confident.requires_grad_(True)
    PhysicalConstraintLoss(CLASS_NAMES)(confident, {"sommerfeld": torch.tensor([0.01])}).backward()
    assert float(confident.grad[0, WHIRL]) > 0.5


@pytest.mark.parametrize("metadata", [None, {}, {"speed_hz": torch.tensor([60.0, 61.0])},
                                      {"sommerfeld": torch.tensor([float("nan")] * 2)}])
def test_constraint_skipped_without_metadata(metadata) -> None:
    logits = _whirl_logits(2, requires_grad=True)
    loss = PhysicalConstraintLoss(CLASS_NAMES)(logits, metadata)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still attached to the graph: a zero gradient, not an error
    assert torch.equal(logits.grad, torch.zeros(2, C))


def test_constraint_skips_unknown_classes_and_nan_samples() -> None:
    loss_fn = PhysicalConstraintLoss(["ok", "rub", "seal"])
    assert float(loss_fn(torch.randn(2, 3), {"sommerfeld": torch.tensor([0.01, 0.01])})) == 0.0
    # NaN samples are left out of the mean.
    full = PhysicalConstraintLoss(CLASS_NAMES)
    s = torch.tensor([0.01, float("nan")])
    assert torch.allclose(full(_whirl_logits(2), {"sommerfeld": s}),
                          full(_whirl_logits(1), {"sommerfeld": s[:1]}))
    with pytest.raises(LossConfigError):
        PhysicalConstraintLoss(CLASS_NAMES, whirl_sommerfeld_limit=0.0)


# ---------------------------------------------------------------------------- multi-task
def _multitask(**kwargs) -> MultiTaskLoss:
    return MultiTaskLoss(physics_loss=FrequencyConsistencyLoss(FS, CLASS_NAMES),
                         auxiliary_loss=PhysicalConstraintLoss(CLASS_NAMES), **kwargs)


def test_multitask_weights_in_state_dict() -> None:
    mtl = _multitask(classification_weight=0.7, physics_weight=0.2, auxiliary_weight=0.3)
    state = mtl.state_dict()
    for key, value in (("w_cls", 0.7), ("w_phys", 0.2), ("w_aux", 0.3)):
        assert key in state and abs(float(state[key]) - value) < 1e-7
    fresh = _multitask()
    fresh.load_state_dict(state)
    assert abs(float(fresh.w_phys) - 0.2) < 1e-7
    assert set(dict(mtl.named_buffers())) >= {"w_cls", "w_phys", "w_aux"}
    with pytest.raises(LossConfigError):
        MultiTaskLoss(physics_weight=-1.0)


def test_multitask_total_is_exact_weighted_sum_and_differentiable(noisy_mod_severe) -> None:
    x, labels, meta = noisy_mod_severe
    x, labels = x[:6], labels[:6]
    meta = {"speed_hz": meta["speed_hz"][:6],
            "sommerfeld": torch.tensor([0.01, 0.02, 0.2, 0.3, 0.03, 0.4])}
    mtl = _multitask(classification_weight=0.9, physics_weight=0.25, auxiliary_weight=0.5)
    logits = torch.randn(6, C, generator=torch.Generator().manual_seed(3))
    logits[:, WHIRL] += 2.0  # make the constraint term non-trivial
    logits.requires_grad_(True)
    total, parts = mtl(logits, labels, x, meta)
    assert set(parts) == {"classification_loss", "physics_loss", "auxiliary_loss", "total_loss"}
    assert all(type(v) is float for v in parts.values())
    cls = torch.nn.functional.cross_entropy(logits, labels)
    phys = mtl.physics_loss(x, logits, meta)
    aux = mtl.auxiliary_loss(logits, meta)
    assert parts["physics_loss"] > 0 and parts["auxiliary_loss"] > 0
    expected = mtl.w_cls * cls + mtl.w_phys * phys + mtl.w_aux * aux
    assert torch.equal(total, expected)
    assert parts["total_loss"] == float(total.detach())
    assert parts["classification_loss"] == float(cls.detach())
    total.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).all()


def test_multitask_skips_missing_terms() -> None:
    logits = torch.randn(3, C, requires_grad=True)
    targets = torch.tensor([0, 1, 2])
    total, parts = MultiTaskLoss()(logits, targets, torch.randn(3, 1, 6400))
    assert parts["physics_loss"] == 0.0 and parts["auxiliary_loss"] == 0.0
    assert torch.allclose(total, torch.nn.functional.cross_entropy(logits, targets))
    total, parts = _multitask()(logits, targets, torch.randn(3, 1, 6400), None)
    assert parts["auxiliary_loss"] == 0.0 and parts["physics_loss"] > 0.0
    total.backward()
    assert (logits.grad != 0).any()


@pytest.mark.parametrize("module", [spectral, plf])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
