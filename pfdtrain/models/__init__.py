"""Model zoo: 1-D networks mapping vibration windows ``[B, C, L]`` to logits ``[B, classes]``.

Models are built by registry name from the config (``model.name``, ``model.params``) and
rebuilt from checkpoints with ``get_model_class(ckpt["model_class"])(**ckpt["init_kwargs"])``.

Example:
    >>> import torch
    >>> model = build_model("cnn1d", num_classes=11, base_channels=8)
    >>> model(torch.randn(2, 1, 1024)).shape
    torch.Size([2, 11])
    >>> get_model_class(type(model).__name__) is CNN1D
    True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pfdtrain.models.cnn1d import CNN1D
from pfdtrain.models.cnn_lstm import CNNLSTM
from pfdtrain.models.hybrid_pinn import HybridPINN
from pfdtrain.models.layers import ModelError
from pfdtrain.models.resnet1d import ResNet18_1D
from pfdtrain.models.wdcnn import WDCNN
from pfdtrain.utils.naming import check_keywords, did_you_mean, keyword_parameters

__all__ = ["CNN1D", "ResNet18_1D", "CNNLSTM", "HybridPINN", "WDCNN", "MODEL_REGISTRY", "ModelError",
           "build_model", "get_model_class"]

MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "cnn1d": CNN1D,
    "resnet18_1d": ResNet18_1D,
    "cnn_lstm": CNNLSTM,
    "hybrid_pinn": HybridPINN,
    "wdcnn": WDCNN,
}


def build_model(name: str, num_classes: int, in_channels: int = 1, dropout: float = 0.3,
                **params: Any) -> nn.Module:
    """Build a model by its registry name.

    Args:
        name: a key of ``MODEL_REGISTRY`` ('cnn1d', 'resnet18_1d', 'cnn_lstm', 'wdcnn', ...);
            case-insensitive.
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1).
        dropout: dropout probability before the classifier, in [0, 1).
        **params: extra constructor arguments of that model, e.g. ``base_channels=32``.

    Raises:
        ValueError: unknown model name, unknown extra parameter, or an invalid value.

    Example:
        >>> model = build_model("cnn_lstm", num_classes=5, hidden_size=32)
        >>> model.init_kwargs["hidden_size"]
        32
    """
    key = str(name).strip().lower()
    if key not in MODEL_REGISTRY:
        valid = sorted(MODEL_REGISTRY)
        raise ModelError(f"unknown model name {name!r}; valid names: {', '.join(valid)}."
                         + did_you_mean(key, valid))
    cls = MODEL_REGISTRY[key]
    check_keywords(params, keyword_parameters(cls), f"model {key!r} ({cls.__name__})",
                   "parameter", ModelError)
    return cls(num_classes=num_classes, in_channels=in_channels, dropout=dropout, **params)


def get_model_class(name: str) -> type[nn.Module]:
    """Resolve a registry name ('cnn1d') or a class name ('CNN1D') to the model class.

    Args:
        name: registry name or ``model.__class__.__name__`` (as stored in checkpoints).

    Raises:
        ValueError: the name matches neither form.

    Example:
        >>> get_model_class("resnet18_1d") is get_model_class("ResNet18_1D")
        True
    """
    if name in MODEL_REGISTRY:
        return MODEL_REGISTRY[name]
    by_class_name = {cls.__name__: cls for cls in MODEL_REGISTRY.values()}
    if name in by_class_name:
        return by_class_name[name]
    candidates = sorted(MODEL_REGISTRY) + sorted(by_class_name)
    raise ModelError(f"unknown model {name!r}; valid registry names: "
                     f"{', '.join(sorted(MODEL_REGISTRY))}; "
                     f"valid class names: {', '.join(sorted(by_class_name))}."
                     + did_you_mean(str(name), candidates))
