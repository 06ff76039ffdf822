"""Domain losses against their formulas on small tensors (issue 12 §1): CORAL, MK-MMD,
DANN's gradient reversal and λ schedule, and the registry's errors."""

import math

import numpy as np
import pytest
import torch

from pfdtrain.training.domain_losses import (DOMAIN_LOSSES, CORALLoss, DANNLoss, DomainLossError,
                                             MKMMDLoss, create_domain_loss, dann_lambda,
                                             grad_reverse)


def _pair(ns=6, nt=5, d=3, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(ns, d, generator=g, dtype=torch.float64),
            torch.randn(nt, d, generator=g, dtype=torch.float64) * 1.5 + shift)


def test_coral_matches_its_formula_and_ignores_a_mean_shift():
    s, t = _pair()
    cs, ct = np.cov(s.numpy(), rowvar=False), np.cov(t.numpy(), rowvar=False)  # unbiased
    expected = ((cs - ct) ** 2).sum() / (4 * 3 ** 2)
    assert float(CORALLoss(3)(s, t)) == pytest.approx(expected, rel=1e-5)
    assert float(CORALLoss(3)(s, t + 10.0)) == pytest.approx(expected, rel=1e-4)  # 2nd order only
    assert float(CORALLoss(3)(s, s)) == 0.0
    with pytest.raises(DomainLossError, match="4 features"):
        CORALLoss(4)(s, t)


def test_mmd_matches_the_multi_kernel_formula():
    s, t = _pair(shift=1.0)
    loss = MKMMDLoss(3, num_kernels=3, kernel_multiplier=2.0)
    pooled = np.concatenate([s.numpy(), t.numpy()])
    d2 = ((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1)
    base = np.median(d2[~np.eye(len(pooled), dtype=bool)])
    k = sum(np.exp(-d2 / (base * 2.0 ** p)) for p in (-1, 0, 1)) / 3
    ns = len(s)
    expected = k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()
    assert float(loss(s, t)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(s, t)) > 0


def test_mmd_is_zero_for_identical_samples_and_grows_with_the_shift():
    s, _ = _pair()
    loss = MKMMDLoss(3)
    assert abs(float(loss(s, s.clone()))) < 1e-12
    values = [float(loss(s, s + shift)) for shift in (0.1, 0.5, 2.0)]
    assert values == sorted(values) and values[0] > 0


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    (grad_reverse(x, 0.25) * w).sum().backward()
    assert torch.equal(x.grad, -0.25 * w)
    y = grad_reverse(x, 0.25)
    assert torch.equal(y, x)  # the forward pass is the identity


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(2.0) == dann_lambda(1.0)  # progress is clipped to [0, 1]


def test_dann_reverses_the_features_gradient_and_trains_the_discriminator():
    torch.manual_seed(0)
    loss = DANNLoss(num_features=3, hidden=8)
    s, t = _pair(ns=4, nt=4)
    s, t = s.float().requires_grad_(), t.float().requires_grad_()
    p = 0.3
    value = loss(s, t, progress=p)
    value.backward()
    # The same loss without the reversal layer: the features' gradient is -λ times it.
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    logits = loss.discriminator(torch.cat([s2, t2])).squeeze(1)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.cat([torch.ones(4), torch.zeros(4)]))
    plain.backward()
    assert value.item() == pytest.approx(plain.item())
    lam = dann_lambda(p)
    assert torch.allclose(s.grad, -lam * s2.grad, atol=1e-7)
    assert torch.allclose(t.grad, -lam * t2.grad, atol=1e-7)
    assert all(q.grad is not None and q.grad.abs().sum() > 0
               for q in loss.discriminator.parameters())


def test_registry_builds_by_name_and_names_the_fix():
    assert list(DOMAIN_LOSSES) == ["coral", "mmd", "dann"]
    assert isinstance(create_domain_loss("MMD", 8, num_kernels=3), MKMMDLoss)
    assert create_domain_loss("dann", 8, hidden=4).discriminator[0].out_features == 4
    with pytest.raises(DomainLossError, match="Did you mean 'coral'") as err:
        create_domain_loss("corral", 8)
    assert "coral, mmd, dann" in str(err.value)
    with pytest.raises(DomainLossError, match="unknown option 'hiden'.*Did you mean 'hidden'"):
        create_domain_loss("dann", 8, hiden=4)
