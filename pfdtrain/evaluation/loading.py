"""The evaluation team's entry point (guide §6.1): a checkpoint in, a model in eval mode out.

Example:
    >>> model, metadata = load_model_for_evaluation("runs/x/checkpoints/best_model.pth")
    >>> metadata["class_names"], metadata["best_val_acc"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from pfdtrain.models import get_model_class
from pfdtrain.training.checkpoint import CheckpointError, load_checkpoint_file
from pfdtrain.utils.device import resolve_device


def load_model_for_evaluation(checkpoint_path: Union[str, Path],
                              model_class: Optional[type[nn.Module]] = None,
                              device: Union[str, torch.device] = "auto"
                              ) -> tuple[nn.Module, dict[str, Any]]:
    """Load a trained model for evaluation.

    The checkpoint is read with ``weights_only=True`` and mapped to ``device``, so a model
    trained on CUDA loads on a machine without it.

    Args:
        checkpoint_path: path to a pfdtrain checkpoint (``best_model.pth``, …).
        model_class: the expected class (e.g. ``CNN1D``); the checkpoint's ``model_class``
            must match it. None: rebuilt from the class name stored in the checkpoint.
        device: target device; ``auto`` picks CUDA when available.

    Returns:
        ``(model in eval mode, metadata)``; metadata holds ``epoch``, ``best_val_acc``,
        ``best_val_loss``, ``history`` (the §6.1 keys) and ``model_class``, ``model_kwargs``,
        ``class_names``, ``dataset_hash``, ``sampling_rate``, ``input_length`` (the model
        input, the transform's output), ``window_length``, ``transform`` (``{"name",
        "params", "output_length"}``; absent in checkpoints from before input transforms:
        ``raw``), ``config``,
        ``pfdtrain_version``, ``torch_version``, ``timestamp`` where the checkpoint has them.

    Raises:
        CheckpointError: unreadable or unsafe file, class mismatch, or weights that do not fit.

    Example:
        >>> model, meta = load_model_for_evaluation(path, CNN1D, device="cpu")
    """
    device = resolve_device(device)
    checkpoint = load_checkpoint_file(checkpoint_path, map_location=device)
    saved_class = checkpoint.get("model_class")
    if model_class is not None:
        if saved_class is not None and saved_class != model_class.__name__:
            raise CheckpointError(f"{checkpoint_path} holds a {saved_class} model, not a "
                                  f"{model_class.__name__}; pass model_class={saved_class} or "
                                  f"model_class=None to rebuild what it holds")
        cls = model_class
    else:
        if saved_class is None:
            raise CheckpointError(f"{checkpoint_path} does not record its model_class; pass "
                                  f"model_class explicitly")
        try:
            cls = get_model_class(saved_class)
        except ValueError as exc:
            raise CheckpointError(f"{checkpoint_path}: {exc}") from None
    kwargs = dict(checkpoint.get("model_kwargs") or {})
    if not kwargs:
        num_classes = _infer_num_classes(checkpoint)
        if num_classes is None:
            raise CheckpointError(f"{checkpoint_path} records no model_kwargs and its class count "
                                  f"cannot be inferred; rebuild the model yourself")
        kwargs = {"num_classes": num_classes}
    model = cls(**kwargs)
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"the weights in {checkpoint_path} do not fit {cls.__name__}"
                              f"({kwargs}): {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    stored = checkpoint.get("metadata") or {}
    metadata = {
        "epoch": checkpoint.get("epoch"),
        "best_val_acc": checkpoint.get("best_val_acc"),
        "best_val_loss": checkpoint.get("best_val_loss"),
        "history": checkpoint.get("history", {}),
        "model_class": saved_class or cls.__name__,
        "model_kwargs": kwargs,
        **stored,
    }
    for key in ("epochs_completed", "config", "pfdtrain_version", "torch_version", "timestamp"):
        if key in checkpoint:
            metadata[key] = checkpoint[key]
    return model, metadata


def _infer_num_classes(checkpoint: dict) -> Optional[int]:
    """The output size of the last 2-D weight (the classifier), for foreign checkpoints."""
    weights = [v for k, v in checkpoint.get("model_state_dict", {}).items()
               if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(weights[-1].shape[0]) if weights else None
