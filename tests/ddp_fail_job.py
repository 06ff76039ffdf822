"""Run under torchrun by tests/test_distributed.py: rank 1 raises in its first batch."""

import torch
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.models import build_model
from pfdtrain.training.cnn_callbacks import Callback
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.training.distributed import init_distributed, wrap_model


class FailOnRankOne(Callback):
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_batch_begin(self, batch, logs=None):
        if self.rank == 1:
            raise RuntimeError("simulated failure on rank 1")


def main() -> None:
    ctx = init_distributed("cpu", timeout_minutes=5)
    x, y = torch.randn(64, 1, 256), torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8,
                        sampler=EpochShuffleSampler(64, 0, num_replicas=ctx.world_size,
                                                    rank=ctx.rank))
    model = build_model("cnn1d", num_classes=3, base_channels=4)
    trainer = CNNTrainer(wrap_model(model, ctx, torch.device("cpu")), loader,
                         callbacks=[FailOnRankOne(ctx.rank)], progress_bar=False)
    trainer.fit(3)


if __name__ == "__main__":
    main()
