"""Samplers whose order is a pure function of (seed, epoch, rank), so a run can resume."""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import DistributedSampler, Sampler


class EpochShuffleSampler(DistributedSampler):
    """``DistributedSampler`` that can also skip the start of an epoch (mid-epoch resume).

    The epoch's order is ``torch.randperm`` seeded with ``seed + epoch`` (exactly
    ``DistributedSampler``'s), shared out to the replicas; with one replica (the default, no
    process group needed) it is simply the shuffled dataset. Any epoch's order can be rebuilt
    from those integers, so a run resumed in a new process replays the same order and
    ``set_start_index`` skips the samples this replica had already consumed. Replica ``r``
    takes every ``num_replicas``-th index starting at ``r``, so the replicas' ``k``-th
    batches together hold exactly the single-process ``k``-th batch of ``num_replicas``
    times the size.

    Args:
        num_samples: size of the dataset.
        seed: base seed of the permutations.
        shuffle: False keeps the natural order.
        num_replicas: processes sharing the data (the DDP world size).
        rank: this process's rank.

    Example:
        >>> sampler = EpochShuffleSampler(len(ds), seed=42, num_replicas=world, rank=rank)
        >>> sampler.set_epoch(3)
        >>> loader = DataLoader(ds, batch_size=32, sampler=sampler)
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0) -> None:
        # With several replicas the last (fewer than num_replicas) samples of each epoch's
        # order are dropped instead of padded: padding would repeat samples, counting them
        # twice in the gradient and the metrics. The order changes every epoch, so no
        # sample is dropped for good.
        super().__init__(range(int(num_samples)), num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, seed=int(seed), drop_last=num_replicas > 1)
        self.start_index = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and rewind to its start."""
        super().set_epoch(int(epoch))
        self.start_index = 0

    def set_start_index(self, index: int) -> None:
        """Skip the first ``index`` samples of this replica's order (mid-epoch resume)."""
        if not 0 <= index <= self.num_samples:
            raise ValueError(f"start index {index} outside 0..{self.num_samples}")
        self.start_index = int(index)

    def order(self) -> list[int]:
        """This replica's full order for the current epoch."""
        return list(super().__iter__())

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start_index:])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


class ShardSampler(Sampler[int]):
    """Sequential shard of an evaluation set: indices ``rank, rank + W, …`` with no padding.

    Unlike ``DistributedSampler`` it never repeats a sample to even out the shards, so sums
    all-reduced over the replicas count every sample exactly once.

    Args:
        num_samples: size of the dataset.
        num_replicas: processes sharing the data.
        rank: this process's rank.

    Example:
        >>> DataLoader(val_ds, batch_size=64, sampler=ShardSampler(len(val_ds), world, rank))
    """

    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = range(int(rank), int(num_samples), int(num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
