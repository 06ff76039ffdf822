"""Tiny real training set-ups shared by the tests (real torch, a few hundred samples)."""

import copy

import torch
from torch.utils.data import DataLoader, TensorDataset

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.models import build_model
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.utils.reproducibility import set_seed


def memorises_tiny_set(model, x, y, steps=60, max_loss=None, lr=1e-2):
    """Train ``model`` on the batch ``(x, y)`` with Adam; True as soon as it classifies every
    window right in eval mode (running BatchNorm statistics, so it must have memorised the
    windows, not just separated them with this batch's own statistics) and, when
    ``max_loss`` is given, its training loss is below it; False after ``steps`` steps."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            if (max_loss is None or loss.item() < max_loss) and (model(x).argmax(dim=1) == y).all():
                return True
    return False


def tiny_loaders(n=32, length=256, classes=3, seed=0, flip_val=False, batch_size=8):
    """Random windows whose class sets the sign of a low-frequency tone (learnable)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    t = torch.linspace(0, 1, length)
    x = torch.sin(2 * torch.pi * (y[:, None] + 1) * 4 * t)[:, None, :]
    x = x + 0.3 * torch.randn(n, 1, length, generator=gen)
    train_ds = TensorDataset(x, y)
    val_y = (y + 1) % classes if flip_val else y  # flipped labels: val loss rises as it learns
    loader_gen = torch.Generator().manual_seed(seed)
    train = DataLoader(train_ds, batch_size=batch_size,
                       sampler=EpochShuffleSampler(n, seed=seed), generator=loader_gen)
    val = DataLoader(TensorDataset(x, val_y), batch_size=batch_size)
    return train, val


def tiny_trainer(callbacks=(), lr=3e-3, flip_val=False, seed=0, **kwargs):
    set_seed(seed)
    train, val = tiny_loaders(seed=seed, flip_val=flip_val)
    model = build_model("cnn1d", num_classes=3, base_channels=4, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    return CNNTrainer(model, train, val, optimizer=optimizer, callbacks=list(callbacks),
                      progress_bar=False, **kwargs)


# A run of the whole CLI in a few seconds: 132 windows per split, a 4-channel CNN1D.
TINY_CLI_CONFIG = {
    "num_epochs": 2,
    "log_interval": 2,
    "data": {"window_length": 1024, "window_stride": 1024, "batch_size": 16,
             "val_fraction": 0.34, "test_fraction": 0.34},
    "synthetic": {"record_duration": 0.5, "records_per_class": 12},
    "model": {"name": "cnn1d", "params": {"base_channels": 4}},
    "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5},
    "callbacks": {"early_stopping": {"patience": 5}},
}


def tiny_cli_workdir(tmp_path_factory, name):
    """A fresh folder holding ``tiny.yaml`` (:data:`TINY_CLI_CONFIG`), for CLI runs in it."""
    import yaml

    folder = tmp_path_factory.mktemp(name)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY_CLI_CONFIG))
    return folder


def run_cli(*args, cwd, expect=0, **popen_kwargs):
    """``python -m pfdtrain ARGS`` in ``cwd``; asserts the exit code, returns the process."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pfdtrain", *args], cwd=cwd,
                          capture_output=True, text=True, **popen_kwargs)
    assert proc.returncode == expect, proc.stderr[-4000:]
    return proc


# A tiny evaluation run: 3 epochs of a 4-channel CNN1D on short synthetic records (enough for
# non-trivial predictions), shared by the evaluation and adaptation tests.
TINY_EVAL_CONFIG = {
    "num_epochs": 3,
    "log_interval": 2,
    "device": "cpu",
    "data": {"window_length": 1024, "window_stride": 512, "batch_size": 16,
             "val_fraction": 0.34, "test_fraction": 0.34},
    "synthetic": {"record_duration": 0.5, "records_per_class": 12},
    "model": {"name": "cnn1d", "params": {"base_channels": 4}},
    "optimizer": {"lr": 0.01},
    "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5},
    "callbacks": {"early_stopping": {"patience": 5}},
}


def train_tiny_run(root):
    """Train ``TINY_EVAL_CONFIG`` under ``root``: ``(run_dir, best checkpoint, data file)``."""
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.pipeline import run_training

    cfg = {**TINY_EVAL_CONFIG, "name": "tiny", "output_dir": str(root / "runs"),
           "data": {**TINY_EVAL_CONFIG["data"], "cache_dir": str(root / "data")}}
    result = run_training(TrainingConfig.from_dict(cfg), progress_bar=False)
    return result.run_dir, result.run_dir / "checkpoints" / "best_model.pth", result.data.path


LIFECYCLE_EVENTS = ("train_begin", "epoch_complete", "resumed", "train_end")


def lifecycle(events):
    """The names of ``events`` that mark the run's course (not ``checkpoint_saved``,
    ``epoch_progress`` or ``evaluation_complete``, whose number depends on timing and files)."""
    return [e["event"] for e in events if e["event"] in LIFECYCLE_EVENTS]


def tiny_config(base: dict, tmp_path, **sections) -> TrainingConfig:
    """``base`` (a config dict) with ``sections`` merged in (a dict updates its section, any
    other value replaces the key), runs under ``tmp_path/runs`` and the generated data shared
    by the tests of one session (``tmp_path.parent/shared-data``)."""
    data = copy.deepcopy(base)
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    data["output_dir"] = str(tmp_path / "runs")
    data["data"]["cache_dir"] = str(tmp_path.parent / "shared-data")
    return TrainingConfig.from_dict(data)
