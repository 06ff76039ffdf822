"""Distributed data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; ``init_distributed`` reads
them, picks the backend (nccl on CUDA, gloo on CPU) and returns a ``DistributedContext``.
Without those variables everything here is a no-op, so one code path serves both.

Example:
    >>> ctx = init_distributed("auto")
    >>> model = wrap_model(model, ctx, sync_batchnorm=True)
    >>> if ctx.is_main:
    ...     print("only rank 0 writes")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

from pfdtrain.errors import PfdtrainError


class DistributedError(PfdtrainError):
    """The distributed set-up is inconsistent; the message says what to change."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs at INFO level."""
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device: str = "auto", backend: str = "auto",
                     timeout_minutes: float = 30.0) -> DistributedContext:
    """Join the ``torchrun`` job described by the environment (single process otherwise).

    Args:
        device: the config's device (``auto``, ``cpu``, ``cuda``); ``cpu`` forces gloo.
        backend: ``auto`` (nccl with CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        timeout_minutes: how long a collective may wait for a silent rank before failing
            (instead of hanging forever).

    Returns:
        The ``DistributedContext`` of this process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    if backend == "nccl" and not use_cuda:
        raise DistributedError("distributed.backend = nccl needs CUDA; use gloo (or auto) on CPU")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank,
                              backend=backend)


def process_device(ctx: DistributedContext, device: torch.device) -> torch.device:
    """Each process on its own GPU (``cuda:LOCAL_RANK``); CPU stays CPU."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiably: the gradient of a sum is the sum of gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        summed = tensor.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        summed = grad.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics cover the global batch of all DDP ranks.

    ``nn.SyncBatchNorm`` runs only on CUDA; this is its equivalent for CPU (gloo) runs. The
    per-channel sums, sums of squares and counts are summed over the ranks with an
    autograd-aware all-reduce, so both the normalisation and its gradient equal a single
    process's ``BatchNorm1d`` on the whole batch. Same parameters, buffers and state-dict
    keys as ``BatchNorm1d``; outside a process group or in eval mode it is ``BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        local_count = x.new_full((1,), x.numel() / x.shape[1])
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), local_count])
        stats = _AllReduceSum.apply(stats)
        channels = x.shape[1]
        count = stats[-1]
        mean = stats[:channels] / count
        var = stats[channels:2 * channels] / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d`` by a ``GlobalBatchNorm1d`` sharing its parameters."""
    if type(module) is nn.BatchNorm1d:
        converted = GlobalBatchNorm1d(module.num_features, module.eps, module.momentum,
                                      module.affine, module.track_running_stats)
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias  # same Parameters
        if module.track_running_stats:
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_global_batchnorm(child))
    return module


def wrap_model(model: nn.Module, ctx: DistributedContext, device: torch.device,
               sync_batchnorm: bool = False) -> nn.Module:
    """``DistributedDataParallel`` around ``model``, optionally with batch-norm statistics
    synchronised over the ranks (``nn.SyncBatchNorm`` on CUDA, ``GlobalBatchNorm1d`` on CPU).

    The batch-norm modules are replaced in place and keep their parameter objects, so an
    optimizer built before still updates them. Checkpoints keep saving the unwrapped model
    (``trainer.unwrapped_model``): keys without a ``module.`` prefix, loadable with or
    without DDP.
    """
    if not ctx.enabled:
        return model
    if sync_batchnorm:
        model = (nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda"
                 else convert_global_batchnorm(model))
    model = model.to(device)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks in place (no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def agree_any(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any rank (e.g. a stop decision)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run folder's name)."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
