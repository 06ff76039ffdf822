"""Loss functions (guide section 3) checked against straightforward reference implementations."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pfdtrain.errors import PfdtrainError
from pfdtrain.models import CNN1D
from pfdtrain.training import cnn_losses, knowledge_distillation
from pfdtrain.training.cnn_losses import (
    LOSS_NAMES,
    FocalLoss,
    LabelSmoothingCrossEntropy,
    LossConfigError,
    SupConLoss,
    class_weights_from_labels,
    create_criterion,
)
from pfdtrain.training.knowledge_distillation import DistillationLoss

C = 4
WEIGHTS = [0.5, 2.0, 1.0, 3.0]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _batch(n: int = 7, classes: int = C, dtype: torch.dtype = torch.float64):
    logits = (3 * torch.randn(n, classes)).to(dtype)
    targets = torch.randint(0, classes, (n,))
    targets[:classes] = torch.arange(classes)  # every class present
    return logits, targets


# ------------------------------------------------------------------------------ label smoothing

def _ls_reference(logits, targets, s, weight=None):
    """Per sample (1 - s) * NLL + s * mean_c(-log p_c); weighted mean with w[y_i]."""
    num = 0.0
    den = 0.0
    for x, y in zip(logits, targets):
        log_p = [x[c].item() - math.log(sum(math.exp(v) for v in x.tolist()))
                 for c in range(len(x))]
        loss = (1 - s) * -log_p[y] + s * sum(-lp for lp in log_p) / len(x)
        w = 1.0 if weight is None else weight[y]
        num += w * loss
        den += w
    return num / den


@pytest.mark.parametrize("weight", [None, WEIGHTS, torch.tensor(WEIGHTS)])
def test_label_smoothing_zero_is_cross_entropy(weight):
    logits, targets = _batch()
    loss = LabelSmoothingCrossEntropy(smoothing=0.0, weight=weight)(logits, targets)
    w = None if weight is None else torch.as_tensor(weight, dtype=torch.float64)
    ref = F.cross_entropy(logits, targets, weight=w)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("s", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("weight", [None, WEIGHTS])
def test_label_smoothing_matches_formula(s, weight):
    logits, targets = _batch()
    loss = LabelSmoothingCrossEntropy(smoothing=s, weight=weight)(logits, targets)
    assert loss.item() == pytest.approx(_ls_reference(logits, targets, s, weight), rel=1e-10)


def test_label_smoothing_unweighted_equals_torch_label_smoothing():
    logits, targets = _batch(dtype=torch.float32)
    loss = LabelSmoothingCrossEntropy(smoothing=0.2)(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets, label_smoothing=0.2))


def test_label_smoothing_weights_scale_invariant_and_zero_weight_batch_is_zero():
    logits, targets = _batch()
    a = LabelSmoothingCrossEntropy(0.1, weight=WEIGHTS)(logits, targets)
    b = LabelSmoothingCrossEntropy(0.1, weight=[10 * w for w in WEIGHTS])(logits, targets)
    torch.testing.assert_close(a, b)
    logits.requires_grad_(True)
    loss = LabelSmoothingCrossEntropy(0.1, weight=[0.0, 1.0, 1.0, 1.0])(
        logits, torch.zeros(len(logits), dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5, "0.1", True])
def test_label_smoothing_rejects_invalid_smoothing(s):
    with pytest.raises(LossConfigError, match="smoothing"):
        LabelSmoothingCrossEntropy(smoothing=s)


@pytest.mark.parametrize("weight, match", [([1.0, -1.0], ">= 0"), ([1.0, float("nan")], ">= 0"),
                                           ([[1.0, 2.0]], "1-D"), ([], "1-D")])
def test_invalid_class_weights(weight, match):
    with pytest.raises(LossConfigError, match=match):
        LabelSmoothingCrossEntropy(weight=weight)
    with pytest.raises(LossConfigError, match=match):
        FocalLoss(alpha=weight)


def test_weight_length_must_match_classes():
    logits, targets = _batch()
    with pytest.raises(LossConfigError, match="3 entries but the logits have 4 classes"):
        LabelSmoothingCrossEntropy(weight=[1.0, 1.0, 1.0])(logits, targets)
    with pytest.raises(LossConfigError, match="alpha has 3 entries"):
        FocalLoss(alpha=[1.0, 1.0, 1.0])(logits, targets)


# ----------------------------------------------------------------------------------- focal

def _focal_reference(logits, targets, gamma, alpha=None, reduction="mean"):
    """Loop over samples: -a[y] (1 - p_y)^gamma log p_y; mean normalised by sum a[y]."""
    losses, ws = [], []
    for x, y in zip(logits, targets):
        p = torch.softmax(x, dim=0)[y].item()
        w = 1.0 if alpha is None else float(alpha[y])
        losses.append(w * (1 - p) ** gamma * -math.log(p))
        ws.append(w)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return sum(losses)
    return sum(losses) / sum(ws)


@pytest.mark.parametrize("alpha", [None, WEIGHTS, torch.tensor(WEIGHTS)])
def test_focal_gamma_zero_is_weighted_cross_entropy(alpha):
    logits, targets = _batch()
    loss = FocalLoss(gamma=0.0, alpha=alpha)(logits, targets)
    w = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float64)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets, weight=w),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, WEIGHTS, torch.tensor(WEIGHTS)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_matches_loop(gamma, alpha, reduction):
    logits, targets = _batch()
    loss = FocalLoss(gamma=gamma, alpha=alpha, reduction=reduction)(logits, targets)
    ref = _focal_reference(logits, targets, gamma, alpha, reduction)
    if reduction == "none":
        assert loss.shape == (len(targets),)
        assert loss.tolist() == pytest.approx(ref, rel=1e-10)
    else:
        assert loss.shape == ()
        assert loss.item() == pytest.approx(ref, rel=1e-10)


def test_focal_float_alpha_is_a_constant_factor():
    logits, targets = _batch()
    plain = FocalLoss(gamma=2.0)(logits, targets)
    for alpha in (0.25, torch.tensor(0.25)):
        scaled = FocalLoss(gamma=2.0, alpha=alpha)(logits, targets)
        torch.testing.assert_close(scaled, 0.25 * plain)
        assert FocalLoss(alpha=alpha).alpha is None
    assert scaled.item() == pytest.approx(0.25 * _focal_reference(logits, targets, 2.0), rel=1e-10)


def test_focal_is_stable_for_extreme_logits():
    logits = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0], [0.0, 0.0, 0.0]],
                          requires_grad=True)
    targets = torch.tensor([0, 0, 2])  # confident right, confident wrong, uncertain
    for gamma in (0.5, 2.0):
        logits.grad = None
        loss = FocalLoss(gamma=gamma)(logits, targets)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
        # the confidently wrong sample dominates: its loss is about 200 / 3
        assert loss.item() == pytest.approx(200 / 3, rel=1e-2)


def test_focal_downweights_easy_samples():
    logits = torch.tensor([[4.0, 0.0], [0.5, 0.0]])
    targets = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, targets, reduction="none")
    fl = FocalLoss(gamma=2.0, reduction="none")(logits, targets)
    assert (fl < ce).all()
    assert (fl / ce)[0] < (fl / ce)[1]  # the easy sample is cut far more


def test_focal_alpha_buffer_moves_with_module():
    focal = FocalLoss(alpha=WEIGHTS)
    assert "alpha" in dict(focal.named_buffers())
    focal = focal.to(torch.float64)
    assert focal.alpha.dtype == torch.float64
    ls = LabelSmoothingCrossEntropy(weight=WEIGHTS)
    assert "weight" in dict(ls.named_buffers())
    assert "weight" not in dict(LabelSmoothingCrossEntropy().named_buffers())


@pytest.mark.parametrize("kwargs, match", [({"gamma": -1.0}, "gamma"), ({"alpha": -0.5}, "alpha"),
                                           ({"reduction": "avg"}, "reduction")])
def test_focal_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(LossConfigError, match=match):
        FocalLoss(**kwargs)


def test_losses_compute_in_float32_under_bf16_logits():
    logits, targets = _batch(dtype=torch.float32)
    for criterion in (LabelSmoothingCrossEntropy(0.1, weight=WEIGHTS),
                      FocalLoss(2.0, alpha=WEIGHTS)):
        low = criterion(logits.bfloat16(), targets)
        assert low.dtype == torch.float32
        torch.testing.assert_close(low, criterion(logits, targets), rtol=0.05, atol=0.05)


# ---------------------------------------------------------------------------------- supcon

def _supcon_reference(features, labels, temperature, base_temperature):
    """Double loop over anchors and candidates, following the paper's L_out."""
    if features.dim() == 2:
        features = features[:, None, :]
    b, v, _ = features.shape
    z = [F.normalize(features[i, j], dim=0) for j in range(v) for i in range(b)]
    lab = [int(labels[i]) for j in range(v) for i in range(b)]
    n = len(z)
    anchor_losses = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and lab[p] == lab[i]]
        if not positives:
            continue
        denom = sum(math.exp(torch.dot(z[i], z[a]).item() / temperature)
                    for a in range(n) if a != i)
        total = sum(math.log(math.exp(torch.dot(z[i], z[p]).item() / temperature) / denom)
                    for p in positives)
        anchor_losses.append(-(temperature / base_temperature) * total / len(positives))
    return sum(anchor_losses) / len(anchor_losses)


@pytest.mark.parametrize("shape", [(8, 5), (8, 2, 5)])
@pytest.mark.parametrize("temperature, base", [(0.5, 0.5), (0.3, 0.07)])
def test_supcon_matches_double_loop(shape, temperature, base):
    features = torch.randn(*shape, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 3, 0])  # class 3 has no positive in [B, D]
    loss = SupConLoss(temperature, base)(features, labels)
    ref = _supcon_reference(features, labels, temperature, base)
    assert loss.item() == pytest.approx(ref, rel=1e-10)


def test_supcon_is_scale_invariant_and_labels_none_is_simclr():
    features = torch.randn(6, 2, 5, dtype=torch.float64)
    crit = SupConLoss(0.2)
    torch.testing.assert_close(crit(features, torch.arange(6)), crit(3 * features, None))


def test_supcon_without_positives_is_zero_with_finite_grad():
    features = torch.randn(4, 5, requires_grad=True)
    loss = SupConLoss()(features, torch.arange(4))
    assert loss.item() == 0.0
    loss.backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    single = torch.randn(1, 5, requires_grad=True)  # one sample, one view
    out = SupConLoss()(single, torch.tensor([0]))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(single.grad).all()


def test_supcon_gradients_are_finite_and_pull_positives_together():
    features = torch.randn(6, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    crit = SupConLoss(temperature=0.1)
    opt = torch.optim.SGD([features], lr=0.5)
    first = crit(features, labels).item()
    for _ in range(20):
        opt.zero_grad()
        loss = crit(features, labels)
        loss.backward()
        assert torch.isfinite(features.grad).all()
        opt.step()
    assert loss.item() < first


def test_supcon_rejects_bad_shapes_and_temperatures():
    with pytest.raises(ValueError, match=r"\[B, D\] or \[B, views, D\]"):
        SupConLoss()(torch.randn(4), torch.arange(4))
    with pytest.raises(ValueError, match="labels of shape"):
        SupConLoss()(torch.randn(4, 3), torch.arange(3))
    for kwargs in ({"temperature": 0.0}, {"base_temperature": -1.0}):
        with pytest.raises(LossConfigError, match="temperature"):
            SupConLoss(**kwargs)


# ------------------------------------------------------------------------ factory, weights

def test_create_criterion_builds_each_loss():
    ce = create_criterion("ce")
    assert type(ce) is nn.CrossEntropyLoss and ce.weight is None
    ce = create_criterion("CE", weight=np.array(WEIGHTS))
    assert ce.weight.dtype == torch.float32 and ce.weight.tolist() == WEIGHTS
    ls = create_criterion("label_smoothing", smoothing=0.2, weight=WEIGHTS)
    assert isinstance(ls, LabelSmoothingCrossEntropy) and ls.smoothing == 0.2
    assert ls.weight.tolist() == WEIGHTS
    assert isinstance(create_criterion("label-smoothing"), LabelSmoothingCrossEntropy)
    focal = create_criterion("focal", gamma=1.5, alpha=torch.tensor(WEIGHTS), reduction="sum")
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5 and focal.reduction == "sum"
    supcon = create_criterion("supcon", temperature=0.1, base_temperature=0.07)
    assert isinstance(supcon, SupConLoss) and supcon.temperature == 0.1
    assert set(LOSS_NAMES) == {"ce", "label_smoothing", "focal", "supcon"}
    # None means unweighted (how the pipeline passes "class_weights: none")
    assert create_criterion("label_smoothing", weight=None).weight is None
    assert create_criterion("focal", alpha=None).alpha is None


def test_create_criterion_unknown_name_lists_valid_names():
    with pytest.raises(LossConfigError) as err:
        create_criterion("focall")
    assert isinstance(err.value, ValueError) and isinstance(err.value, PfdtrainError)
    msg = str(err.value)
    assert "'focall'" in msg
    for name in LOSS_NAMES:
        assert name in msg
    assert "Did you mean 'focal'?" in msg


def test_create_criterion_unknown_kwarg_lists_valid_kwargs():
    with pytest.raises(LossConfigError) as err:
        create_criterion("label_smoothing", smooth=0.1)
    msg = str(err.value)
    assert "'smooth'" in msg and "label_smoothing" in msg
    assert "smoothing, weight" in msg and "Did you mean 'smoothing'?" in msg
    with pytest.raises(LossConfigError, match="valid arguments: weight"):
        create_criterion("ce", label_smoothing=0.1)
    with pytest.raises(LossConfigError, match="gamma, alpha, reduction"):
        create_criterion("focal", weight=WEIGHTS)
    with pytest.raises(LossConfigError, match="temperature, base_temperature"):
        create_criterion("supcon", tau=0.1)
    with pytest.raises(LossConfigError, match="smoothing"):  # invalid value, valid name
        create_criterion("label_smoothing", smoothing=2.0)


def test_class_weights_from_labels_balanced_and_absent_class_zero():
    labels = np.array([0] * 6 + [1] * 3 + [3] * 1)  # class 2 absent, N = 10, C = 4
    w = class_weights_from_labels(labels, num_classes=4)
    assert w.dtype == torch.float32
    expected = [10 / (4 * 6), 10 / (4 * 3), 0.0, 10 / (4 * 1)]
    assert w.tolist() == pytest.approx(expected)
    # every present class carries the same total weight N / C
    counts = np.bincount(labels, minlength=4)
    assert (counts * w.numpy())[[0, 1, 3]] == pytest.approx([2.5, 2.5, 2.5])
    torch.testing.assert_close(class_weights_from_labels(torch.from_numpy(labels), 4), w)
    torch.testing.assert_close(class_weights_from_labels(labels.tolist(), 4), w)
    # balanced data gives weight 1 everywhere
    assert class_weights_from_labels([0, 1, 2, 0, 1, 2], 3).tolist() == [1.0, 1.0, 1.0]


def test_class_weights_usable_as_weight_and_alpha():
    labels = np.array([0] * 6 + [1] * 3 + [3] * 1)
    w = class_weights_from_labels(labels, 4)
    logits, targets = _batch(dtype=torch.float32)
    for criterion in (create_criterion("ce", weight=w),
                      create_criterion("label_smoothing", weight=w),
                      create_criterion("focal", alpha=w)):
        assert torch.isfinite(criterion(logits, targets))


@pytest.mark.parametrize("labels, num_classes, match", [
    ([0, 1, 3], 3, r"\[0, 3\)"), ([-1, 0], 2, r"\[0, 2\)"), ([], 2, "empty"),
    ([0.5, 1.0], 2, "integer"), ([0, 1], 0, "num_classes"),
])
def test_class_weights_invalid(labels, num_classes, match):
    with pytest.raises(LossConfigError, match=match):
        class_weights_from_labels(np.array(labels), num_classes)


# ---------------------------------------------------------------------------- distillation

def test_distillation_matches_manual_computation():
    s, _ = _batch()
    t, y = _batch()
    temperature, alpha = 3.0, 0.7
    crit = DistillationLoss(temperature=temperature, alpha=alpha)
    p_t = torch.softmax(t / temperature, dim=1)
    p_s = torch.softmax(s / temperature, dim=1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(dim=1).mean()
    ce = F.cross_entropy(s, y)
    expected = alpha * temperature ** 2 * kl + (1 - alpha) * ce
    torch.testing.assert_close(crit(s, t, y), expected, rtol=1e-10, atol=1e-12)
    parts = crit.components(s, t, y)
    torch.testing.assert_close(parts["kd"], temperature ** 2 * kl, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(parts["ce"], ce)
    assert set(parts) == {"kd", "ce"}


def test_distillation_alpha_extremes():
    s, y = _batch()
    t, _ = _batch()
    assert torch.equal(DistillationLoss(alpha=0.0)(s, t, y), F.cross_entropy(s, y))
    kd = DistillationLoss(temperature=2.0, alpha=1.0)
    torch.testing.assert_close(kd(s, t, y), kd.components(s, t, y)["kd"])
    # a student equal to its teacher has zero KL
    assert DistillationLoss(alpha=1.0)(s, s.clone(), y).abs().item() < 1e-12


def test_distillation_gradient_reaches_student_only():
    student = torch.randn(5, C, requires_grad=True)
    teacher = torch.randn(5, C, requires_grad=True)
    y = torch.randint(0, C, (5,))
    crit = DistillationLoss(temperature=4.0, alpha=0.5)
    crit(student, teacher, y).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    parts = crit.components(student, teacher, y)
    assert not parts["kd"].requires_grad and not parts["ce"].requires_grad


@pytest.mark.parametrize("kwargs, match", [({"temperature": 0.0}, "temperature"),
                                           ({"temperature": -1.0}, "temperature"),
                                           ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha")])
def test_distillation_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(LossConfigError, match=match):
        DistillationLoss(**kwargs)


def test_distillation_rejects_mismatched_classes():
    with pytest.raises(ValueError, match="same classes"):
        DistillationLoss()(torch.randn(2, 3), torch.randn(2, 4), torch.tensor([0, 1]))


# ------------------------------------------------------------------------- real training

def _toy_problem(n=24, length=256, classes=3):
    """Windows whose class sets the frequency of a noisy tone (learnable in a few steps)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    t = torch.linspace(0, 1, length)
    x = torch.sin(2 * torch.pi * (y[:, None] + 1) * 4 * t)[:, None, :]
    return x + 0.3 * torch.randn(n, 1, length, generator=gen), y


@pytest.mark.parametrize("criterion", [
    FocalLoss(gamma=2.0, alpha=[1.0, 2.0, 1.0]),
    LabelSmoothingCrossEntropy(smoothing=0.1, weight=[1.0, 2.0, 1.0]),
], ids=["focal", "label_smoothing"])
def test_cnn1d_training_lowers_loss(criterion):
    x, y = _toy_problem()
    model = CNN1D(num_classes=3, base_channels=4, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    with torch.no_grad():
        before = criterion(model(x), y).item()
    model.train()
    for _ in range(30):
        loss = criterion(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(x)
        after = criterion(logits, y).item()
    assert after < 0.5 * before, (before, after)
    assert (logits.argmax(dim=1) == y).float().mean() > 0.9


@pytest.mark.parametrize("module", [cnn_losses, knowledge_distillation])
def test_docstring_examples(module):
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
