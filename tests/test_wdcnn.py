"""WDCNN (Zhang et al., Sensors 2017): the paper's layer sizes, any input length, learning."""

import doctest

import pytest
import torch
from torch import nn

import pfdtrain.models.wdcnn as wdcnn
from pfdtrain.models import WDCNN, build_model, get_model_class
from pfdtrain.models.wdcnn import adaptive_max_pool
from tests.helpers import memorises_tiny_set


def test_layer_sizes_follow_the_paper_at_2048_samples():
    model = WDCNN(num_classes=10).eval()
    x = torch.randn(2, 1, 2048)
    first = model.features[0]
    conv = first[0]
    assert (conv.out_channels, conv.kernel_size, conv.stride) == (16, (64,), (16,))
    assert first[:3](x).shape == (2, 16, 128)  # the paper's first-layer output
    assert [b[0].out_channels for b in model.features] == [16, 32, 64, 64, 64]
    assert all(b[0].kernel_size == (3,) for b in model.features[1:])
    assert model.features(x).shape == (2, 64, 4)
    assert model.fc.in_features == 192 and model.fc.out_features == 100  # 64 x 3 -> 100
    assert model.forward_features(x).shape == (2, 100) and model(x).shape == (2, 10)
    assert get_model_class("WDCNN") is WDCNN and type(build_model("wdcnn", 4)) is WDCNN


@pytest.mark.parametrize("length", [16, 255, 256, 1000, 4096])
def test_any_length_from_the_minimum_and_batch_of_one(length):
    model = WDCNN(num_classes=3)
    for train in (True, False):
        model.train(train)
        assert model(torch.randn(1, 1, length)).shape == (1, 3)


def test_adaptive_max_pool_equals_torch_adaptive_pool():
    for length in (1, 2, 3, 4, 7, 8, 13):
        x = torch.randn(2, 3, length)
        assert torch.equal(adaptive_max_pool(x, 3), nn.AdaptiveMaxPool1d(3)(x)), length


def test_wdcnn_learns_a_tiny_set():
    torch.manual_seed(0)
    model = WDCNN(num_classes=2, dropout=0.0)
    x = torch.randn(8, 1, 512)
    y = torch.tensor([0, 1] * 4)
    if not memorises_tiny_set(model, x, y, steps=60):
        pytest.fail("WDCNN did not reach 100% train accuracy on 8 windows in 60 steps")


def test_docstring_examples():
    result = doctest.testmod(wdcnn, verbose=False)
    assert result.attempted > 0 and result.failed == 0
