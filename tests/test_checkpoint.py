"""Checkpoint format, atomic writes, safe loads and the evaluation contract (guide §4, §6.1)."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.models import CNN1D, CNNLSTM
from pfdtrain.training.checkpoint import (OPTIONAL_KEYS, RECOMMENDED_KEYS, REQUIRED_KEYS,
                                          CheckpointError, get_checkpoint_filename,
                                          load_checkpoint_file, save_checkpoint,
                                          validate_checkpoint_keys)
from pfdtrain.training.cnn_callbacks import ModelCheckpointCallback
from tests.helpers import tiny_loaders, tiny_trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    trainer = tiny_trainer([ModelCheckpointCallback(folder)],
                           metadata={"class_names": ["a", "b", "c"], "dataset_hash": "abc123"})
    trainer.fit(2)
    return trainer, folder


def test_checkpoint_holds_every_guide_field_and_resume_extras(trained):
    trainer, folder = trained
    ckpt = load_checkpoint_file(folder / "latest_model.pth")
    for key in REQUIRED_KEYS + OPTIONAL_KEYS + RECOMMENDED_KEYS + (
            "global_step", "data_state", "callback_states", "model_kwargs", "metadata",
            "pfdtrain_version", "torch_version", "epochs_completed"):
        assert key in ckpt, key
    assert validate_checkpoint_keys(ckpt) == []
    assert set(ckpt["random_state"]) == {"torch", "torch_cuda", "numpy", "python"}
    assert ckpt["model_class"] == "CNN1D" and ckpt["model_kwargs"]["base_channels"] == 4
    assert ckpt["metadata"]["class_names"] == ["a", "b", "c"]
    assert ckpt["history"] == trainer.history
    assert ckpt["callback_states"]["ModelCheckpointCallback"]["best_value"] == trainer.best_val_acc


def test_filename_pattern():
    assert get_checkpoint_filename("checkpoint", 25, 92.5, "val_acc") == \
        "checkpoint_epoch025_val_acc92.5000.pth"


def test_atomic_write_keeps_the_old_file_when_a_save_fails(tmp_path):
    path = tmp_path / "best_model.pth"
    save_checkpoint({"epoch": 1, "model_state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    class ExplodesWhilePickled:
        def __reduce__(self):
            raise RuntimeError("boom in the middle of the save")

    # a large tensor first, so the failure comes after bytes were already written
    bad = {"epoch": 2, "big": torch.zeros(200_000), "x": [ExplodesWhilePickled()]}
    from pfdtrain.training import checkpoint as ckpt_module
    with pytest.raises(RuntimeError, match="boom"):
        with ckpt_module.atomic_open(path, "wb") as handle:
            torch.save(bad, handle)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["best_model.pth"]  # no temp file left behind
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(bad, path)  # refused before writing anything
    assert path.read_bytes() == before


def test_malicious_checkpoint_is_refused_without_running_its_payload(tmp_path):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "latest_model.pth"
    # Built in a subprocess so this test process never defines the payload class.
    code = ("import os, torch\n"
            "class Evil:\n"
            "    def __reduce__(self):\n"
            f"        return (os.system, ('touch {marker}',))\n"
            f"torch.save({{'model_state_dict': {{}}, 'x': Evil()}}, r'{evil}')\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    save_checkpoint({"epoch": 0, "model_state_dict": {}}, tmp_path / "best_model.pth")
    os.utime(tmp_path / "best_model.pth", (1, 1))  # older than the evil file
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(evil)
    assert "arbitrary pickled Python objects" in str(err.value)
    assert "best_model.pth" in str(err.value)
    assert not marker.exists()


def test_missing_and_truncated_files_name_the_newest_good_checkpoint(trained, tmp_path):
    _, folder = trained
    good = tmp_path / "best_model.pth"
    good.write_bytes((folder / "latest_model.pth").read_bytes())
    truncated = tmp_path / "latest_model.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"latest_model.pth is truncated or corrupt.*"
                                              r"newest good checkpoint beside it is .*best_model"):
        load_checkpoint_file(truncated)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*final_model.pth"):
        load_checkpoint_file(tmp_path / "final_model.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(pickle.dumps([1, 2, 3]) * 3)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_checkpoint_file(garbage)


def test_evaluation_loading_with_and_without_model_class(trained):
    trainer, folder = trained
    x, _ = next(iter(tiny_loaders()[1]))
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(x)
    model, meta = load_model_for_evaluation(folder / "final_model.pth", device="cpu")
    assert isinstance(model, CNN1D) and not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
    assert meta["epoch"] == 1 and meta["history"] == trainer.history
    assert meta["class_names"] == ["a", "b", "c"] and meta["dataset_hash"] == "abc123"
    model2, _ = load_model_for_evaluation(folder / "best_model.pth", CNN1D, device="cpu")
    assert isinstance(model2, CNN1D)
    with pytest.raises(CheckpointError, match="holds a CNN1D model, not a CNNLSTM"):
        load_model_for_evaluation(folder / "best_model.pth", CNNLSTM, device="cpu")


def test_trainer_load_checkpoint_restores_state_and_continues(trained):
    trainer, folder = trained
    fresh = tiny_trainer()
    fresh.load_checkpoint(folder / "latest_model.pth")
    assert fresh.epochs_completed == 2 and fresh.history == trainer.history
    assert fresh.best_val_acc == trainer.best_val_acc and fresh.global_step == trainer.global_step
    history = fresh.fit(3)
    assert len(history["train_loss"]) == 3  # continued from epoch 2, did not restart
    with pytest.raises(CheckpointError, match="holds a CNN1D, but this trainer's model is a"):
        other = tiny_trainer()
        other.model = CNNLSTM(num_classes=3)
        other.load_checkpoint(folder / "latest_model.pth")
