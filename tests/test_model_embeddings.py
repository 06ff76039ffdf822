"""forward_features / forward_head / num_features on every model (embeddings for SupConLoss)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pfdtrain.models import CNN1D, CNNLSTM, ResNet18_1D
from pfdtrain.training.cnn_losses import SupConLoss

NUM_CLASSES = 4

# (class, tiny constructor kwargs, expected num_features, top-level modules holding weights)
MODELS = [
    (CNN1D, {"base_channels": 4}, 16, {"features", "classifier"}),
    (ResNet18_1D, {"base_channels": 4}, 32,
     {"stem", "layer1", "layer2", "layer3", "layer4", "classifier"}),
    (CNNLSTM, {"base_channels": 4, "hidden_size": 8}, 16,
     {"features", "lstm", "attention", "classifier"}),
    (CNNLSTM, {"base_channels": 4, "hidden_size": 6, "num_layers": 2}, 12,
     {"features", "lstm", "attention", "classifier"}),
]
IDS = ["cnn1d", "resnet18_1d", "cnn_lstm", "cnn_lstm_2layers"]


def _old_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The body of each model's forward() before forward_features/forward_head existed."""
    if isinstance(model, CNN1D):
        return model.classifier(model.dropout(model.pool(model.features(x))))
    if isinstance(model, ResNet18_1D):
        h = model.stem(x)
        h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
        return model.classifier(model.dropout(model.pool(h)))
    seq = model.features(x).transpose(1, 2)
    h, _ = model.lstm(seq)
    return model.classifier(model.dropout(model.attention(h)))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("cls, kwargs, dim, _modules", MODELS, ids=IDS)
def test_num_features_and_embedding_shape(cls, kwargs, dim, _modules):
    model = cls(NUM_CLASSES, in_channels=2, **kwargs)
    assert model.num_features == dim == model.classifier.in_features
    assert isinstance(model.num_features, int)
    for length in (256, 600):
        features = model.forward_features(torch.randn(3, 2, length))
        assert features.shape == (3, dim)
        assert model.forward_head(features).shape == (3, NUM_CLASSES)


@pytest.mark.parametrize("cls, kwargs, dim, _modules", MODELS, ids=IDS)
def test_forward_is_head_of_features_bit_identical(cls, kwargs, dim, _modules):
    model = cls(NUM_CLASSES, dropout=0.5, **kwargs)
    x = torch.randn(3, 1, 512)
    for train in (False, True):
        model.train(train)
        outputs = []
        for fn in (model, lambda v: model.forward_head(model.forward_features(v)),
                   lambda v: _old_forward(model, v)):
            torch.manual_seed(123)  # the same dropout mask for each path in train mode
            outputs.append(fn(x))
        assert torch.equal(outputs[0], outputs[1])
        assert torch.equal(outputs[0], outputs[2])


@pytest.mark.parametrize("cls, kwargs, dim, modules", MODELS, ids=IDS)
def test_state_dict_layout_unchanged(cls, kwargs, dim, modules):
    model = cls(NUM_CLASSES, **kwargs)
    keys = list(model.state_dict())
    assert {k.split(".")[0] for k in keys} == modules
    assert "num_features" not in model.init_kwargs
    # A clone rebuilt from init_kwargs accepts the weights strictly and gives the same output.
    clone = cls(**model.init_kwargs)
    clone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 1, 300)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), clone.forward_features(x))


@pytest.mark.parametrize("cls, kwargs, dim, _modules", MODELS, ids=IDS)
def test_embedding_is_taken_before_dropout(cls, kwargs, dim, _modules):
    model = cls(NUM_CLASSES, dropout=0.9, **kwargs).train()
    if isinstance(model, CNNLSTM) and model.lstm.num_layers > 1:
        model.lstm.dropout = 0.0  # inter-layer LSTM dropout is part of the backbone
    x = torch.randn(3, 1, 256)
    torch.manual_seed(1)
    a = model.forward_features(x)
    torch.manual_seed(2)
    b = model.forward_features(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("cls, kwargs, dim, _modules", MODELS, ids=IDS)
def test_supcon_on_embeddings_trains_backbone_not_classifier(cls, kwargs, dim, _modules):
    model = cls(NUM_CLASSES, **kwargs).train()
    x = torch.randn(6, 1, 256)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = SupConLoss(temperature=0.1)(model.forward_features(x), labels)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.classifier.weight.grad is None
    grads = [p.grad for name, p in model.named_parameters() if not name.startswith("classifier")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("cls, kwargs, dim, _modules", MODELS, ids=IDS)
def test_bf16_autocast_embeddings(cls, kwargs, dim, _modules):
    model = cls(NUM_CLASSES, **kwargs).eval()
    x = torch.randn(2, 1, 256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.forward_features(x)
        logits = model.forward_head(features)
    assert features.shape == (2, dim) and logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(features.float()).all() and torch.isfinite(logits.float()).all()
