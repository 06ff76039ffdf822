"""HybridPINN: shapes with and without operating metadata, gradients, rebuild from
init_kwargs, bf16 autocast, argument checks."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

import pfdtrain.models.hybrid_pinn as hybrid_pinn
from pfdtrain.models.hybrid_pinn import CONDITION_KEYS, HybridPINN
from pfdtrain.models.layers import ModelError

NUM_CLASSES = 5
LENGTHS = (256, 6400)  # the documented minimum and the default 1-s window


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny(**kwargs) -> HybridPINN:
    kwargs.setdefault("base_channels", 4)
    return HybridPINN(NUM_CLASSES, **kwargs)


def meta(batch: int, **override) -> dict[str, torch.Tensor]:
    values = {"speed_hz": torch.linspace(55.0, 65.0, batch),
              "load": torch.linspace(0.3, 1.0, batch),
              "temperature": torch.linspace(40.0, 80.0, batch),
              "viscosity": torch.full((batch,), 0.015), "sommerfeld": torch.full((batch,), 0.2)}
    values.update(override)
    return values


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("in_channels", [1, 2])
def test_output_shape_with_and_without_metadata(length: int, batch: int, in_channels: int) -> None:
    model = tiny(in_channels=in_channels)
    x = torch.randn(batch, in_channels, length)
    for train in (True, False):
        model.train(train)
        for metadata in (None, meta(batch), {"speed_hz": torch.full((batch,), 60.0)}):
            out = model(x, metadata)
            assert out.shape == (batch, NUM_CLASSES) and out.dtype == torch.float32
            assert torch.isfinite(out).all()
    assert model(x).shape == (batch, NUM_CLASSES)  # the project contract: model(x) -> logits


def test_metadata_is_used_and_missing_is_distinct() -> None:
    model = tiny().eval()
    x = torch.randn(2, 1, 1024)
    with torch.no_grad():
        base = model(x)
        given = model(x, meta(2))
        other = model(x, meta(2, load=torch.tensor([0.9, 0.3])))
        nan = model(x, meta(2, speed_hz=torch.tensor([float("nan")] * 2),
                            load=torch.tensor([float("nan")] * 2),
                            temperature=torch.tensor([float("nan")] * 2)))
    assert not torch.allclose(base, given) and not torch.allclose(given, other)
    assert torch.allclose(base, nan)  # NaN = unknown = no metadata
    with torch.no_grad():
        cond = model.condition_inputs({"load": torch.tensor([0.65, float("nan")])}, 2, x.device)
    assert cond.shape == (2, 2 * len(model.condition_keys))
    assert cond[:, 3:].tolist() == [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]  # missing flags
    assert float(cond[0, 1]) == 0.0  # load 0.65 is the centre of its scaling


@pytest.mark.parametrize("with_meta", [False, True])
def test_backward_gives_finite_grads(with_meta: bool) -> None:
    model = tiny().train()
    x = torch.randn(3, 1, 1024)
    nn.functional.cross_entropy(model(x, meta(3) if with_meta else None),
                                torch.tensor([0, 1, 2])).backward()
    for name, p in model.named_parameters():
        if with_meta and name == "missing_value":
            continue  # all conditions given: the learned "missing" value is unused
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_spectral_features_are_fixed_and_finite() -> None:
    model = tiny()
    x = torch.randn(2, 1, 256, requires_grad=True)
    feats = model.spectral_features(x)
    assert feats.shape == (2, 23) and not feats.requires_grad
    assert torch.isfinite(feats).all() and feats.abs().max() <= 5.0


def test_rebuild_from_init_kwargs() -> None:
    model = tiny(in_channels=2, dropout=0.1, sampling_rate=12800, num_conditions=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 2, 600)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()  # weights and BatchNorm stats differ from a fresh init

    kwargs = model.init_kwargs
    assert kwargs == {"num_classes": NUM_CLASSES, "in_channels": 2, "dropout": 0.1,
                      "base_channels": 4, "sampling_rate": 12800.0, "num_conditions": 5}
    assert all(type(v) in (int, float) for v in kwargs.values()), kwargs
    assert type(kwargs["sampling_rate"]) is float and type(kwargs["num_conditions"]) is int

    clone = HybridPINN(**kwargs)
    clone.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
        assert torch.equal(model(x, meta(4)), clone(x, meta(4)))


def test_init_kwargs_defaults_and_no_conditions() -> None:
    assert HybridPINN(11).init_kwargs == {"num_classes": 11, "in_channels": 1, "dropout": 0.3,
                                          "base_channels": 16, "sampling_rate": 6400.0,
                                          "num_conditions": 3}
    model = tiny(num_conditions=0)
    assert model.condition_mlp is None and model.missing_value is None
    assert model(torch.randn(2, 1, 512), meta(2)).shape == (2, NUM_CLASSES)
    assert tiny(num_conditions=len(CONDITION_KEYS)).condition_keys == CONDITION_KEYS


def test_bf16_autocast_cpu() -> None:
    model = tiny()
    x = torch.randn(2, 1, 1024)
    for train in (True, False):
        model.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, meta(2))
        assert out.shape == (2, NUM_CLASSES)
        assert torch.isfinite(out.float()).all()
    with torch.no_grad():
        ref = model(x, meta(2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, meta(2)).float()
    assert torch.allclose(low, ref, atol=0.1 + 0.05 * ref.abs().max().item())


@pytest.mark.parametrize("kwargs, arg", [
    ({"sampling_rate": 0.0}, "sampling_rate"),
    ({"sampling_rate": float("nan")}, "sampling_rate"),
    ({"sampling_rate": True}, "sampling_rate"),
    ({"num_conditions": 6}, "num_conditions"),
    ({"num_conditions": -1}, "num_conditions"),
    ({"num_conditions": 1.5}, "num_conditions"),
    ({"num_classes": 1}, "num_classes"),
    ({"dropout": 1.0}, "dropout"),
    ({"base_channels": 0}, "base_channels"),
])
def test_invalid_arguments(kwargs: dict, arg: str) -> None:
    params = {"num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ModelError, match=arg):
        HybridPINN(**params)


def test_docstring_examples() -> None:
    result = doctest.testmod(hybrid_pinn, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
