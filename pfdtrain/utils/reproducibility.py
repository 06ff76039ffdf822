"""Seeds and determinism (guide §5.1, §5.2, §5.4)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int = 42, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels.

    Args:
        seed: the seed for every generator.
        deterministic: cuDNN deterministic, no benchmark autotuning, and
            ``torch.use_deterministic_algorithms(True)`` (a non-deterministic op then raises
            instead of silently differing run to run).

    Example:
        >>> set_seed(42, deterministic=True)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it must be set before the first
        # cuBLAS call, so setting it here (at training start) is the earliest safe place.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and torch.cuda.is_available()
    torch.use_deterministic_algorithms(deterministic)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive numpy/python seeds from the worker's torch seed.

    Example:
        >>> DataLoader(ds, num_workers=2, worker_init_fn=seed_worker, generator=g)
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
