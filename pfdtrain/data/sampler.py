"""A shuffling sampler whose order is a pure function of (seed, epoch), so it can resume."""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Shuffles indices with a permutation drawn from ``seed + epoch``.

    Unlike a sampler driven by a running generator, any epoch's order can be rebuilt from
    two integers, so a run resumed in a new process replays the same order and
    ``set_start_index`` skips the samples an interrupted epoch had already consumed.
    This mirrors ``DistributedSampler.set_epoch``.

    Args:
        num_samples: size of the dataset.
        seed: base seed of the permutations.
        shuffle: False keeps the natural order (evaluation loaders).

    Example:
        >>> sampler = EpochShuffleSampler(len(ds), seed=42)
        >>> sampler.set_epoch(3)
        >>> loader = DataLoader(ds, batch_size=32, sampler=sampler)
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.start_index = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and rewind to its start."""
        self.epoch = int(epoch)
        self.start_index = 0

    def set_start_index(self, index: int) -> None:
        """Skip the first ``index`` samples of the current epoch's order (mid-epoch resume)."""
        if not 0 <= index <= self.num_samples:
            raise ValueError(f"start index {index} outside 0..{self.num_samples}")
        self.start_index = int(index)

    def order(self) -> list[int]:
        """The full order of the current epoch."""
        if not self.shuffle:
            return list(range(self.num_samples))
        gen = torch.Generator()
        gen.manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start_index:])

    def __len__(self) -> int:
        return self.num_samples - self.start_index
