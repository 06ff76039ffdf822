"""Test-time adaptation of batch-norm statistics (AdaBN; Li et al., 2016).

A network trained on one machine, load or sensor normalises every batch-norm layer with the
running mean and variance of its *training* activations. On a shifted target (another load,
more noise, another sensor gain) those statistics no longer centre and scale the
activations. AdaBN re-estimates them on the target windows — inputs only, labels are never
read — and keeps every learned weight: ``pfdtrain evaluate --adapt-bn`` and
``pfdtrain predict --adapt-bn``.

How: every batch-norm layer's running statistics are reset and switched to a cumulative
average (``momentum=None``); the target windows are forwarded once without gradients with
only the batch-norm layers in train mode (dropout stays off), in a seeded shuffled order so
that every batch mixes recordings (batches of one recording would under-estimate the
variance); then the model goes back to eval mode and the layers to their momentum.

Example:
    >>> adapted = copy.deepcopy(model)
    >>> info = adapt_batchnorm(adapted, target_dataset, batch_size=64)
    >>> info["windows"], info["layers"]
    (880, 5)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from pfdtrain.errors import EvaluationError
from pfdtrain.evaluation.batches import forward_batch, model_takes_metadata

#: Seed of the order in which the target windows are forwarded (fixed: reproducible).
ADAPTATION_SEED = 0
#: What the reports say about the adapted figures.
ADAPTATION_NOTE = ("AdaBN: batch-norm statistics re-estimated on the evaluated (target) windows "
                   "before predicting; uses unlabeled target data (inputs only, labels never "
                   "read), so these figures are not source-only and are reported apart")


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics (BatchNorm1d/2d/3d,
    SyncBatchNorm, GlobalBatchNorm1d)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def require_batchnorm(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """:func:`batchnorm_layers`, or an :class:`EvaluationError` naming the fix when none.

    Example:
        >>> require_batchnorm(nn.Sequential(nn.Conv1d(1, 4, 3)))
        Traceback (most recent call last):
        EvaluationError: --adapt-bn re-estimates batch-norm statistics, but Sequential has ...
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise EvaluationError(
            f"--adapt-bn re-estimates batch-norm statistics, but {type(model).__name__} has "
            f"no batch-norm layers with running statistics, so there is nothing to adapt. "
            f"Evaluate it without --adapt-bn, or train a model with batch norm (e.g. "
            f"model.name: cnn1d or resnet18_1d) to use test-time adaptation.")
    return layers


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, dataset: Any, batch_size: int, num_workers: int = 0,
                    seed: int = ADAPTATION_SEED) -> dict[str, Any]:
    """Re-estimate ``model``'s batch-norm statistics on ``dataset`` in place (AdaBN).

    Args:
        model: a classifier; it is left in eval mode with the adapted statistics.
        dataset: the target windows; items ``(x,)``, ``(x, y)`` or ``(x, y, metadata)``.
            Only ``x`` (and the metadata of a model that takes it) are used, never ``y``.
        batch_size: windows per forward pass.
        num_workers: DataLoader workers.
        seed: seed of the shuffled order (the estimate is order-dependent only through
            which windows share a batch).

    Returns:
        ``{"method", "windows", "layers", "batch_size", "seed"}``.

    Raises:
        EvaluationError: the model has no batch-norm layer, or ``dataset`` is empty.

    Example:
        >>> info = adapt_batchnorm(model, test_loader.dataset, batch_size=64)
    """
    layers = require_batchnorm(model)
    if len(dataset) == 0:
        raise EvaluationError("--adapt-bn needs target windows to adapt on; the data has none")
    device = next(model.parameters()).device
    takes_metadata = model_takes_metadata(model)
    generator = torch.Generator().manual_seed(seed)
    # A trailing batch of one window would make a [B, C] batch norm (after pooling) fail in
    # train mode; leaving that one window out changes the estimate negligibly.
    drop_last = len(dataset) > batch_size and len(dataset) % batch_size == 1
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                        num_workers=num_workers, drop_last=drop_last)
    momenta = [layer.momentum for layer in layers]
    model.eval()  # dropout and everything else stay in inference mode
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
        layer.train()
    windows = 0
    try:
        for batch in loader:
            forward_batch(model, batch, device, takes_metadata)
            windows += int(batch[0].shape[0])
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()
    return {"method": "AdaBN", "windows": windows, "layers": len(layers),
            "batch_size": int(batch_size), "seed": int(seed)}
