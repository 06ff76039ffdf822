"""Training-window augmentation (issue 11 §3, §7): seeded draws, physics, loaders, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from pfdtrain.config.training_config import ConfigError, TrainingConfig, apply_overrides
from pfdtrain.data.augment import (AUGMENTATIONS, AmplitudeScale, SpeedPerturbation,
                                   TimeShift, WhiteNoise, WindowAugmenter)
from pfdtrain.data.sampler import EpochShuffleSampler
from pfdtrain.data.signal_store import LazySignals
from pfdtrain.evaluation.evaluate import evaluate_checkpoint
from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.data.windows import (PerWindowDataset, WindowDataset, build_dataloaders,
                                   collate_windows)
from tests.helpers import TINY_CLI_CONFIG, run_cli


def all_transforms(p: float = 0.7) -> list:
    return [WhiteNoise((0.0, 20.0), p), AmplitudeScale((0.8, 1.2), p), TimeShift(0.5, p),
            SpeedPerturbation((0.9, 1.1), p)]


def make_dataset(augmenter=None, normalization: str = "zscore") -> WindowDataset:
    """Records of several lengths; the one-window record makes shift and speed hit its edges."""
    rng = np.random.default_rng(3)
    lengths = [2000, 512, 3000, 1200]
    signals = np.concatenate([rng.standard_normal(n).astype(np.float32) * (i + 1)
                              for i, n in enumerate(lengths)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return WindowDataset(signals, offsets, np.array([0, 1, 2, 1]), 512, 256, normalization,
                         augmenter=augmenter)


def test_draws_are_a_function_of_seed_epoch_and_index():
    ds = make_dataset(WindowAugmenter(all_transforms(), seed=7))
    other = make_dataset(WindowAugmenter(all_transforms(), seed=7))
    ds.set_epoch(3)
    other.set_epoch(3)
    for i in range(len(ds)):
        assert torch.equal(ds[i][0], other[i][0])  # another object, same draws
    # whatever was read before (no running RNG): reading backwards gives the same windows
    assert all(torch.equal(ds[i][0], other[i][0]) for i in reversed(range(len(ds))))
    first = torch.stack([ds[i][0] for i in range(len(ds))])
    ds.set_epoch(4)
    second = torch.stack([ds[i][0] for i in range(len(ds))])
    changed = [not torch.equal(a, b) for a, b in zip(first, second)]
    assert sum(changed) >= len(ds) - 1  # new draws every epoch
    reseeded = make_dataset(WindowAugmenter(all_transforms(), seed=8))
    reseeded.set_epoch(3)
    assert not torch.equal(first, torch.stack([reseeded[i][0] for i in range(len(ds))]))
    clean = make_dataset()
    assert not torch.equal(first, torch.stack([clean[i][0] for i in range(len(ds))]))


@pytest.mark.parametrize("normalization", ["none", "zscore"])
def test_batched_and_per_window_paths_agree_bitwise(normalization):
    ds = make_dataset(WindowAugmenter(all_transforms(), seed=1), normalization)
    ds.set_epoch(2)
    index = [5, 0, 11, 3, 3, len(ds) - 1]
    x, y = collate_windows(ds.__getitems__(index))
    for row, i in enumerate(index):
        assert torch.equal(x[row], ds[i][0]) and int(y[row]) == int(ds[i][1])
    sampler = EpochShuffleSampler(len(ds), seed=4)
    batched = DataLoader(ds, batch_size=4, sampler=sampler, collate_fn=collate_windows)
    reference = DataLoader(PerWindowDataset(ds), batch_size=4, sampler=sampler)
    for a, b in zip(batched, reference):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_mid_epoch_resume_replays_the_rest_of_the_epoch():
    ds = make_dataset(WindowAugmenter(all_transforms(), seed=5))
    sampler = EpochShuffleSampler(len(ds), seed=9)
    loader = DataLoader(ds, batch_size=3, sampler=sampler, collate_fn=collate_windows)
    sampler.set_epoch(1)
    ds.set_epoch(1)
    whole = [x for x, _ in loader]
    resumed = make_dataset(WindowAugmenter(all_transforms(), seed=5))  # a new process's
    sampler2 = EpochShuffleSampler(len(resumed), seed=9)
    sampler2.set_epoch(1)
    resumed.set_epoch(1)
    sampler2.set_start_index(2 * 3)
    tail = [x for x, _ in DataLoader(resumed, batch_size=3, sampler=sampler2,
                                     collate_fn=collate_windows)]
    assert len(tail) == len(whole) - 2
    assert all(torch.equal(a, b) for a, b in zip(whole[2:], tail))


def test_a_speed_augmented_window_carries_its_new_speed():
    """Bug fix: the physics losses and condition-aware models read rpm / speed_hz from the
    metadata; a window resampled to another speed must report that speed, not the record's."""
    rng = np.random.default_rng(3)
    signals = rng.standard_normal(4000).astype(np.float32)
    offsets = np.array([0, 2000, 4000], np.int64)
    meta = {"rpm": np.array([1800.0, 1200.0]), "speed_hz": np.array([30.0, 20.0]),
            "load": np.array([0.5, 1.0])}
    aug = WindowAugmenter([SpeedPerturbation((0.9, 1.1), 0.7)], seed=5)
    ds = WindowDataset(signals, offsets, np.array([0, 1]), 512, 256, "zscore", augmenter=aug,
                       metadata=meta)
    ds.set_epoch(2)
    factors = [aug.speed_factor(2, i) for i in range(len(ds))]
    assert any(f != 1.0 for f in factors) and any(f == 1.0 for f in factors)
    batch = collate_windows(ds.__getitems__(list(range(len(ds)))))
    for i, factor in enumerate(factors):
        record = int(ds.window_record[i])
        expected_rpm = np.float32(np.float32(meta["rpm"][record]) * factor)
        assert ds[i][2]["rpm"].item() == pytest.approx(expected_rpm, rel=1e-6)
        assert batch[2]["rpm"][i].item() == ds[i][2]["rpm"].item()  # both paths agree
        assert batch[2]["speed_hz"][i].item() == pytest.approx(
            meta["speed_hz"][record] * factor, rel=1e-6)
        assert batch[2]["load"][i].item() == meta["load"][record]  # not a speed: unchanged
    unaugmented = WindowDataset(signals, offsets, np.array([0, 1]), 512, 256, "zscore",
                                metadata=meta)
    assert unaugmented[0][2]["rpm"].item() == 1800.0


def test_white_noise_reaches_the_drawn_snr_exactly():
    t = np.arange(4096)
    signal = (2.0 * np.sin(2 * np.pi * t / 64) + 0.5).astype(np.float32)  # power (var) 2.0
    noise = WhiteNoise((-4.0, 20.0), probability=1.0)
    for k in range(5):
        rng = np.random.default_rng(k)
        snr = noise.draw(rng)
        assert snr is not None and -4.0 <= snr <= 20.0
        noisy = noise.apply(signal, snr, rng)
        added = noisy.astype(np.float64) - signal
        achieved = 10 * np.log10(np.var(signal, dtype=np.float64) / np.var(added))
        assert achieved == pytest.approx(snr, abs=1e-3)
    assert noise.apply(signal, None, rng) is signal
    never = WhiteNoise((0.0, 1.0), probability=0.0)
    assert never.draw(np.random.default_rng(0)) is None


@pytest.mark.parametrize("factor", [0.95, 1.04])
def test_speed_perturbation_moves_a_tone_by_the_factor(factor):
    fs, tone, n = 12000.0, 937.5, 4096  # the tone on an FFT bin: exact peak before
    record = np.sin(2 * np.pi * tone * np.arange(3 * n) / fs).astype(np.float32)
    span = SpeedPerturbation.span(n, factor)
    out = SpeedPerturbation.apply(record[:span], factor, n)
    assert out.shape == (n,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out * np.hanning(n)))
    # parabolic interpolation of the peak bin: sub-bin frequency
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    peak = (k + 0.5 * (a - c) / (a - 2 * b + c)) * fs / n
    assert peak == pytest.approx(tone * factor, rel=2e-3)
    assert abs(peak - tone) > 0.5 * abs(factor - 1) * tone  # it moved
    # through the augmenter, with a span longer than the window inside one record
    aug = WindowAugmenter([SpeedPerturbation((factor, factor), 1.0)], seed=0)
    assert np.array_equal(aug.window(record, 0, 0, record.size, n, epoch=0, index=0), out)


def test_time_shift_reads_the_record_or_rolls_at_its_edge():
    record = np.arange(1000, dtype=np.float32)
    shift = TimeShift(0.5, probability=1.0)
    aug = WindowAugmenter([shift], seed=2)
    for index in range(20):
        offset = shift.draw(aug._rng(0, index, "shift"), 100)
        assert -50 <= offset <= 50
        inside = aug.window(record, 300, 0, 1000, 100, epoch=0, index=index)
        assert np.array_equal(inside, record[300 + offset:400 + offset])  # real samples
        edge = aug.window(record, 0, 0, 100, 100, epoch=0, index=index)  # no room: rolled
        assert np.array_equal(edge, np.roll(record[:100], -offset))


def test_amplitude_scale_and_probability_zero():
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    scale = AmplitudeScale((0.5, 2.0), probability=1.0)
    gain = scale.draw(np.random.default_rng(0))
    assert 0.5 <= gain <= 2.0 and np.allclose(scale.apply(x, gain), x * gain)
    off = WindowAugmenter([cls(*args, 0.0) for cls, args in (
        (WhiteNoise, ((0.0, 1.0),)), (AmplitudeScale, ((0.5, 2.0),)), (TimeShift, (0.5,)),
        (SpeedPerturbation, ((0.9, 1.1),)))], seed=0)
    clean, augmented = make_dataset(), make_dataset(off, "none")
    assert all(torch.equal(make_dataset(normalization="none")[i][0], augmented[i][0])
               for i in range(len(clean)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("augment-data")  # one generated dataset for the module


def _tiny_config(cache, num_workers: int = 0, in_memory: str = "auto",
                 **augment) -> TrainingConfig:
    data = dict(TINY_CLI_CONFIG["data"], cache_dir=str(cache), num_workers=num_workers,
                in_memory=in_memory)
    return TrainingConfig.from_dict({**TINY_CLI_CONFIG, "data": data, "augment": augment})


def test_only_the_training_loader_is_augmented(cache):
    bundle = build_dataloaders(_tiny_config(cache, enabled=True, noise_probability=1.0))
    clean = build_dataloaders(_tiny_config(cache))
    assert bundle.train_loader.dataset.augmenter is not None
    assert clean.train_loader.dataset.augmenter is None
    for name in ("val_loader", "test_loader"):
        loader, reference = getattr(bundle, name), getattr(clean, name)
        assert loader.dataset.augmenter is None
        for (x, y), (u, v) in zip(loader, reference):
            assert torch.equal(x, u) and torch.equal(y, v)
    for ds in (bundle.train_loader.dataset, clean.train_loader.dataset):
        ds.set_epoch(0)
    assert not torch.equal(bundle.train_loader.dataset[0][0], clean.train_loader.dataset[0][0])


def test_loader_workers_see_each_epoch(cache):
    """Workers copy the dataset when they start: they must start with the epoch set."""
    def epochs(num_workers: int) -> list:
        loader = build_dataloaders(_tiny_config(cache, num_workers, enabled=True)).train_loader
        assert not loader.persistent_workers
        batches = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            loader.dataset.set_epoch(epoch)
            batches.append(torch.cat([x for x, _ in loader]))
        return batches

    in_process, workers = epochs(0), epochs(1)
    assert all(torch.equal(a, b) for a, b in zip(in_process, workers))


def test_streamed_windows_get_the_same_augmentation(cache):
    def epoch(in_memory: str) -> torch.Tensor:
        loader = build_dataloaders(_tiny_config(cache, in_memory=in_memory, enabled=True,
                                                shift_probability=1.0,
                                                speed_probability=1.0)).train_loader
        assert isinstance(loader.dataset.signals, LazySignals) == (in_memory == "false")
        loader.sampler.set_epoch(1)
        loader.dataset.set_epoch(1)
        return torch.cat([x for x, _ in loader])

    assert torch.equal(epoch("true"), epoch("false"))  # read from the file: same bits


@pytest.mark.parametrize("override, words", [
    ("augment.noise_snr_db=[20, 0]", ["augment.noise_snr_db", "empty range", "min <= max"]),
    ("augment.speed_factor=[1.05, 0.95]", ["augment.speed_factor", "empty range"]),
    ("augment.scale_factor=[]", ["augment.scale_factor", "list of 2 numbers"]),
    ("augment.speed_factor=[0, 1.05]", ["augment.speed_factor", "> 0", "0.95, 1.05"]),
    ("augment.speed_factor=[-1.0, -0.5]", ["augment.speed_factor", "> 0"]),
    ("augment.scale_factor=[0, 1]", ["augment.scale_factor", "> 0"]),
    ("augment.noise_probability=1.5", ["augment.noise_probability", "between 0.0 and 1.0"]),
    ("augment.speed_probability=-0.1", ["augment.speed_probability", "between 0.0 and 1.0"]),
    ("augment.transforms=[noise, sped]", ["augment.transforms", "'sped'", "Did you mean 'speed'"]),
    ("augment.transforms=[noise, noise]", ["augment.transforms", "twice"]),
])
def test_bad_augment_settings_name_the_key_and_the_fix(override, words):
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainingConfig(), [override])
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_default_is_off_and_choices_come_from_the_registry():
    cfg = TrainingConfig()
    assert cfg.augment.enabled is False and cfg.augment.transforms == list(AUGMENTATIONS)
    assert WindowAugmenter.from_config(cfg.augment) is None
    on = apply_overrides(cfg, ["augment.enabled=true", "augment.transforms=[speed]"])
    assert list(WindowAugmenter.from_config(on.augment).by_name) == ["speed"]


def test_cli_resume_with_augmentation_gives_the_uninterrupted_history(tmp_path):
    config = dict(TINY_CLI_CONFIG, augment={"enabled": True, "seed": 3})
    (tmp_path / "aug.yaml").write_text(yaml.safe_dump(config))
    run_cli("train", "--config", "aug.yaml", "--set", "name=full", cwd=tmp_path)
    run_cli("train", "--config", "aug.yaml", "--set", "name=part", "--set", "num_epochs=1",
            cwd=tmp_path)
    run_cli("resume", str(tmp_path / "runs" / "part"), "--epochs", "2", cwd=tmp_path)
    full = json.loads((tmp_path / "runs" / "full" / "history.json").read_text())
    part = json.loads((tmp_path / "runs" / "part" / "history.json").read_text())
    assert len(full["train_loss"]) == 2 and part == full
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(TINY_CLI_CONFIG))
    run_cli("train", "--config", "plain.yaml", "--set", "name=plain", cwd=tmp_path)
    plain = json.loads((tmp_path / "runs" / "plain" / "history.json").read_text())
    assert plain["train_loss"] != full["train_loss"]  # the augmentation did train on others


    # evaluate never augments, not even --split train: it scores the clean training windows
    checkpoint = tmp_path / "runs" / "full" / "checkpoints" / "best_model.pth"
    scores = evaluate_checkpoint(checkpoint, split="train", out_dir=tmp_path / "eval",
                                 snrs=None, device="cpu")
    model, meta = load_model_for_evaluation(checkpoint, device="cpu")
    clean_config = TrainingConfig.from_dict(meta["config"])
    clean_config.data.cache_dir = str(tmp_path / clean_config.data.cache_dir)
    clean_config.augment.enabled = False
    loader = build_dataloaders(clean_config).train_loader
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    assert scores["num_windows"] == total
    assert scores["accuracy"] == pytest.approx(100.0 * correct / total)
