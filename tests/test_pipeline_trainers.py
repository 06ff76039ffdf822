"""Every loss and trainer selectable from the config runs through the one pipeline, with
callbacks and checkpoints, and `load_model_for_evaluation` loads what it saves."""


import pytest

from pfdtrain.config.training_config import ConfigError
from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.pipeline import run_training
from pfdtrain.training.cnn_losses import FocalLoss, LabelSmoothingCrossEntropy, SupConLoss
from tests.helpers import tiny_config

TINY = {
    "num_epochs": 2,
    "data": {"window_length": 1024, "window_stride": 1024, "batch_size": 16,
             "val_fraction": 0.34, "test_fraction": 0.34},
    "synthetic": {"record_duration": 0.5, "records_per_class": 12},
    "model": {"name": "cnn1d", "params": {"base_channels": 4}},
    "scheduler": {"name": "none"},
}


def _config(tmp_path, **sections):
    return tiny_config(TINY, tmp_path, **sections)


@pytest.mark.parametrize("loss, expected", [
    ({"name": "focal", "gamma": 2.0, "class_weights": "balanced"}, FocalLoss),
    ({"name": "label_smoothing", "smoothing": 0.2}, LabelSmoothingCrossEntropy),
    ({"name": "supcon", "supcon_weight": 0.3}, SupConLoss),
])
def test_losses_from_the_config_train_and_checkpoint(tmp_path, loss, expected):
    result = run_training(_config(tmp_path, loss=loss), progress_bar=False)
    trainer = result.trainer
    used = trainer.embedding_criterion if loss["name"] == "supcon" else trainer.criterion
    assert isinstance(used, expected)
    if loss["name"] == "supcon":
        assert "train_embedding_loss" in result.history
    assert len(result.history["train_loss"]) == 2
    model, meta = load_model_for_evaluation(result.run_dir / "checkpoints/final_model.pth",
                                            device="cpu")
    assert meta["config"]["loss"]["name"] == loss["name"]


def test_distillation_from_the_config(tmp_path):
    teacher_run = run_training(_config(tmp_path, name="teacher"), progress_bar=False)
    teacher_ckpt = teacher_run.run_dir / "checkpoints/best_model.pth"
    student = run_training(_config(tmp_path, name="student", trainer="distillation",
                                   distillation={"teacher": str(teacher_ckpt), "alpha": 0.8},
                                   model={"name": "cnn1d", "params": {"base_channels": 2}}),
                           progress_bar=False)
    assert "train_kd_loss" in student.history and "val_kd_loss" in student.history
    model, meta = load_model_for_evaluation(student.run_dir / "checkpoints/best_model.pth",
                                            device="cpu")
    assert model.init_kwargs["base_channels"] == 2
    assert meta["config"]["trainer"] == "distillation"
    with pytest.raises(ConfigError, match="needs distillation.teacher"):
        run_training(_config(tmp_path, name="no-teacher", trainer="distillation"),
                     progress_bar=False)


@pytest.mark.parametrize("model", ["cnn1d", "hybrid_pinn"])
def test_physics_informed_training_from_the_config(tmp_path, model):
    config = _config(tmp_path, trainer="pinn", model={"name": model},
                     physics={"weight": 0.2, "warmup_epochs": 1},
                     callbacks={"early_stopping": {"monitor": "val_classification_loss"}})
    result = run_training(config, progress_bar=False)
    history = result.history
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_physics_loss",
                "val_physics_loss", "train_classification_loss", "val_auxiliary_loss"):
        assert key in history, key
    # warm-up: lambda is 0 in epoch 1, so the total is the classification loss alone
    assert history["train_loss"][0] == pytest.approx(history["train_classification_loss"][0])
    assert history["train_loss"][1] > history["train_classification_loss"][1]
    loaded, meta = load_model_for_evaluation(result.run_dir / "checkpoints/best_model.pth",
                                             device="cpu")
    assert type(loaded).__name__ == meta["model_class"]
    x, _, _ = next(iter(result.data.test_loader))
    assert loaded(x).shape == (x.shape[0], 11)  # model.forward(x) -> logits, no metadata needed


@pytest.mark.parametrize("sections, fragment", [
    ({"trainer": "pinn", "loss": {"name": "supcon"}}, "does not add the supcon"),
    ({"trainer": "distillation", "loss": {"name": "focal"},
      "distillation": {"teacher": "x.pth"}}, "loss.name must stay ce"),
])
def test_loss_settings_a_trainer_would_ignore_are_refused(tmp_path, sections, fragment):
    with pytest.raises(ConfigError, match=fragment):
        run_training(_config(tmp_path, **sections), progress_bar=False)


def test_a_named_run_folder_is_never_reused(tmp_path):
    run_training(_config(tmp_path, name="once", num_epochs=1), progress_bar=False)
    with pytest.raises(ConfigError, match="already holds a run; continue it with"):
        run_training(_config(tmp_path, name="once", num_epochs=1), progress_bar=False)
