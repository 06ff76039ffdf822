"""Knowledge distillation: the teacher comes from a checkpoint, stays frozen and in eval mode,
and sees exactly the student's inputs in training and validation."""

import pytest
import torch

from pfdtrain.models import build_model
from pfdtrain.training.checkpoint import CheckpointError
from pfdtrain.training.cnn_callbacks import ModelCheckpointCallback
from pfdtrain.training.knowledge_distillation import (DistillationLoss, DistillationTrainer,
                                                      load_teacher)
from tests.helpers import tiny_loaders, tiny_trainer


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    trainer = tiny_trainer([ModelCheckpointCallback(folder)],
                           metadata={"class_names": ["a", "b", "c"]})
    trainer.fit(3)
    return folder / "best_model.pth"


def test_teacher_is_frozen_in_eval_mode_and_sees_the_student_inputs(teacher_checkpoint):
    teacher = load_teacher(teacher_checkpoint, ["a", "b", "c"], "cpu")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    teacher.train()  # even if someone left it in train mode
    seen = []
    teacher.register_forward_hook(lambda m, inp, out: seen.append((m.training, inp[0].clone())))
    student_inputs = []
    student = build_model("cnn1d", num_classes=3, base_channels=4)
    student.register_forward_hook(lambda m, inp, out: student_inputs.append(inp[0].clone()))
    train, val = tiny_loaders()
    trainer = DistillationTrainer(student, train, val,
                                  optimizer=torch.optim.AdamW(student.parameters(), lr=3e-3),
                                  criterion=DistillationLoss(temperature=3.0, alpha=0.7),
                                  teacher=teacher, progress_bar=False)
    history = trainer.fit(2)
    assert all(not training for training, _ in seen)
    assert len(seen) == len(student_inputs) == 2 * (len(train) + len(val))
    assert all(torch.equal(t, s) for (_, t), s in zip(seen, student_inputs))
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert {"train_kd_loss", "train_ce_loss", "val_kd_loss", "val_ce_loss"} <= set(history)
    # the total is the documented mix of its parts
    total = 0.7 * history["train_kd_loss"][-1] + 0.3 * history["train_ce_loss"][-1]
    assert history["train_loss"][-1] == pytest.approx(total, rel=1e-5)


def test_teacher_trained_on_other_classes_is_refused(teacher_checkpoint):
    with pytest.raises(CheckpointError, match="trained on classes"):
        load_teacher(teacher_checkpoint, ["x", "y", "z"], "cpu")


def test_distillation_trainer_requires_a_distillation_loss(teacher_checkpoint):
    teacher = load_teacher(teacher_checkpoint, ["a", "b", "c"], "cpu")
    train, _ = tiny_loaders()
    with pytest.raises(Exception, match="needs a DistillationLoss"):
        DistillationTrainer(build_model("cnn1d", num_classes=3), train, teacher=teacher,
                            criterion=torch.nn.CrossEntropyLoss())
