"""Model zoo tests: shapes, gradients, rebuild from init_kwargs, registry, bf16, learning."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

import pfdtrain.models as models
from pfdtrain.models import (
    CNN1D,
    CNNLSTM,
    MODEL_REGISTRY,
    ResNet18_1D,
    build_model,
    get_model_class,
)
from pfdtrain.models import cnn1d, cnn_lstm, resnet1d
from tests.helpers import memorises_tiny_set

NUM_CLASSES = 5
LENGTHS = (256, 600)  # the documented minimum and a length that is not a power of two

# Tiny widths keep the whole file fast; the layer layout is the same as at full width.
TINY_PARAMS = {
    "cnn1d": {"base_channels": 4},
    "resnet18_1d": {"base_channels": 4},
    "cnn_lstm": {"base_channels": 4, "hidden_size": 8},
    "hybrid_pinn": {"base_channels": 4},
    "wdcnn": {},  # the paper's widths: already tiny (54k parameters)
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny(name: str, in_channels: int = 1, dropout: float = 0.3) -> nn.Module:
    return build_model(name, NUM_CLASSES, in_channels=in_channels, dropout=dropout,
                       **TINY_PARAMS[name])


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(name: str, length: int, batch: int) -> None:
    model = tiny(name, in_channels=2)
    for train in (True, False):
        model.train(train)
        out = model(torch.randn(batch, 2, length))
        assert out.shape == (batch, NUM_CLASSES)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_backward_gives_finite_nonzero_grads(name: str) -> None:
    model = tiny(name).train()
    x = torch.randn(3, 1, 512)
    y = torch.tensor([0, 1, 2])
    nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_rebuild_from_init_kwargs(name: str) -> None:
    model = tiny(name, in_channels=2, dropout=0.1)
    # One training step so weights and BatchNorm running stats differ from a fresh init.
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 2, 300)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()

    kwargs = model.init_kwargs
    assert all(type(v) in (int, float) for v in kwargs.values()), kwargs
    assert kwargs["num_classes"] == NUM_CLASSES and kwargs["in_channels"] == 2
    assert kwargs["dropout"] == 0.1

    clone = type(model)(**kwargs)
    clone.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_init_kwargs_defaults() -> None:
    assert CNN1D(11).init_kwargs == {"num_classes": 11, "in_channels": 1, "dropout": 0.3,
                                     "base_channels": 16}
    assert ResNet18_1D(11, base_channels=4).init_kwargs == {
        "num_classes": 11, "in_channels": 1, "dropout": 0.3, "base_channels": 4}
    assert CNNLSTM(11).init_kwargs == {"num_classes": 11, "in_channels": 1, "dropout": 0.3,
                                       "base_channels": 32, "hidden_size": 64, "num_layers": 1}


@pytest.mark.parametrize("cls", [CNN1D, ResNet18_1D, CNNLSTM])
@pytest.mark.parametrize("kwargs, arg", [
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 2.5}, "num_classes"),
    ({"num_classes": True}, "num_classes"),
    ({"in_channels": 0}, "in_channels"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"base_channels": 0}, "base_channels"),
])
def test_invalid_arguments(cls: type, kwargs: dict, arg: str) -> None:
    full = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=arg):
        cls(**full)


def test_invalid_lstm_arguments() -> None:
    with pytest.raises(ValueError, match=r"hidden_size must be an integer >= 1"):
        CNNLSTM(3, hidden_size=0)
    with pytest.raises(ValueError, match=r"num_layers must be an integer >= 1"):
        CNNLSTM(3, num_layers=0)


def test_dropout_range_in_message() -> None:
    with pytest.raises(ValueError, match=r"dropout must be a float in \[0, 1\)"):
        CNN1D(3, dropout=1.5)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2"):
        CNN1D(1)


def test_stacked_lstm_builds_and_runs() -> None:
    model = CNNLSTM(3, base_channels=4, hidden_size=8, num_layers=2)
    assert model.lstm.num_layers == 2
    assert model(torch.randn(2, 1, 256)).shape == (2, 3)


def test_build_model_registry_and_kwargs() -> None:
    assert set(MODEL_REGISTRY) == {"cnn1d", "resnet18_1d", "cnn_lstm", "hybrid_pinn", "wdcnn"}
    for name, cls in MODEL_REGISTRY.items():
        model = tiny(name)
        assert type(model) is cls
    model = build_model("CNN_LSTM", 4, in_channels=3, dropout=0.0, base_channels=4,
                        hidden_size=8, num_layers=2)
    assert isinstance(model, CNNLSTM)
    assert model.init_kwargs == {"num_classes": 4, "in_channels": 3, "dropout": 0.0,
                                 "base_channels": 4, "hidden_size": 8, "num_layers": 2}


def test_build_model_unknown_name() -> None:
    with pytest.raises(ValueError) as err:
        build_model("resnet18", 3)
    msg = str(err.value)
    assert "'resnet18'" in msg
    for valid in MODEL_REGISTRY:
        assert valid in msg
    assert "Did you mean 'resnet18_1d'?" in msg


def test_build_model_unknown_param() -> None:
    with pytest.raises(ValueError) as err:
        build_model("cnn1d", 3, base_channel=8)
    msg = str(err.value)
    assert "'base_channel'" in msg and "cnn1d" in msg
    assert "base_channels" in msg and "num_classes" in msg
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("cnn_lstm", 3, hidden=8)


def test_build_model_invalid_value_propagates() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet18_1d", 1)


@pytest.mark.parametrize("name, cls", [("cnn1d", CNN1D), ("resnet18_1d", ResNet18_1D),
                                       ("cnn_lstm", CNNLSTM)])
def test_get_model_class_both_names(name: str, cls: type) -> None:
    assert get_model_class(name) is cls
    assert get_model_class(cls.__name__) is cls
    model = tiny(name)
    assert get_model_class(model.__class__.__name__) is type(model)


def test_get_model_class_unknown() -> None:
    with pytest.raises(ValueError) as err:
        get_model_class("ResNet34_1D")
    msg = str(err.value)
    for valid in ("cnn1d", "resnet18_1d", "cnn_lstm", "CNN1D", "ResNet18_1D", "CNNLSTM"):
        assert valid in msg


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_bf16_autocast_cpu(name: str) -> None:
    model = tiny(name)
    x = torch.randn(2, 1, 512)
    for train in (True, False):
        model.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.shape == (2, NUM_CLASSES)
        assert torch.isfinite(out.float()).all()
    # bf16 logits should stay close to the fp32 ones (eval mode: no dropout randomness).
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x).float()
    assert torch.allclose(low, ref, atol=0.1 + 0.05 * ref.abs().max().item())


def test_cnn1d_overfits_tiny_set() -> None:
    model = CNN1D(num_classes=2, dropout=0.0, base_channels=8)
    x = torch.randn(8, 1, 256)
    y = torch.tensor([0, 1] * 4)
    if not memorises_tiny_set(model, x, y, steps=60, max_loss=0.05):
        pytest.fail("CNN1D did not reach 100% train accuracy on 8 windows in 60 steps")


@pytest.mark.parametrize("module", [models, cnn1d, resnet1d, cnn_lstm])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
