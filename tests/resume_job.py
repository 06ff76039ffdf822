"""A small training job run in its own process by tests/test_resume.py.

    python tests/resume_job.py --dir D --epochs N [--resume] [--every-n-steps K]
                               [--crash-at-step S] --out PREFIX

Writes PREFIX.pt (final weights) and PREFIX.json (history). Dropout, a per-step OneCycle
schedule, gradient accumulation with an uneven last window and a gradient monitor make
any missed piece of state show up as a different result.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.config.training_config import OptimizerConfig, SchedulerConfig
from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.models import build_model
from pfdtrain.training.cnn_callbacks import (Callback, EarlyStoppingCallback, GradientMonitor,
                                             ModelCheckpointCallback)
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.training.optimization import create_optimizer, create_scheduler
from pfdtrain.utils.reproducibility import seed_worker, set_seed

EPOCHS_PLANNED = 4
STEPS_PER_EPOCH = 6  # 45 samples, batch 4 -> 12 batches, 2 per step


class Crash(Callback):
    """Simulates a crash right after the optimizer step ``at_step``."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_batch_end(self, batch, logs=None):
        if self.trainer.global_step == self.at_step:
            raise SystemExit(3)


def build(run_dir: Path, every_n_steps, crash_at_step) -> CNNTrainer:
    set_seed(0, deterministic=True)
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(45, 1, 256, generator=gen)
    y = torch.randint(0, 3, (45,), generator=gen)
    dataset = TensorDataset(x, y)
    loader_gen = torch.Generator()
    loader_gen.manual_seed(0)
    train = DataLoader(dataset, batch_size=4, sampler=EpochShuffleSampler(len(dataset), seed=0),
                       generator=loader_gen, worker_init_fn=seed_worker)
    val = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8)
    model = build_model("cnn1d", num_classes=3, base_channels=4, dropout=0.5)
    optimizer = create_optimizer(model, OptimizerConfig(lr=3e-3))
    scheduler = create_scheduler(optimizer, SchedulerConfig(name="onecycle"), EPOCHS_PLANNED,
                                 STEPS_PER_EPOCH)
    callbacks = [GradientMonitor(model, log_interval=2),
                 EarlyStoppingCallback(monitor="val_loss", patience=50),
                 ModelCheckpointCallback(run_dir, model, optimizer, every_n_steps=every_n_steps)]
    if crash_at_step:
        callbacks.append(Crash(crash_at_step))
    return CNNTrainer(model, train, val, optimizer=optimizer, lr_scheduler=scheduler,
                      scheduler_interval="step", gradient_accumulation_steps=2,
                      max_grad_norm=1.0, callbacks=callbacks, progress_bar=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--every-n-steps", type=int, default=None)
    parser.add_argument("--crash-at-step", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trainer = build(args.dir, args.every_n_steps, args.crash_at_step)
    if args.resume:
        trainer.load_checkpoint(args.dir / "latest_model.pth")
    history = trainer.fit(args.epochs)
    torch.save(trainer.model.state_dict(), args.out.with_suffix(".pt"))
    args.out.with_suffix(".json").write_text(json.dumps(history))


if __name__ == "__main__":
    sys.exit(main())
