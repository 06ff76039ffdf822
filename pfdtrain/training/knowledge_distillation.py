"""Knowledge distillation (guide §3.1): a student trained on a frozen teacher's soft targets.

Example:
    >>> import torch
    >>> criterion = DistillationLoss(temperature=4.0, alpha=0.5)
    >>> student, teacher = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    >>> criterion(student, teacher, torch.tensor([0, 1, 2, 0])).shape
    torch.Size([])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from pfdtrain.config.training_config import ConfigError
from pfdtrain.errors import TrainingError
from pfdtrain.evaluation.loading import load_model_for_evaluation
from pfdtrain.training.checkpoint import CheckpointError
from pfdtrain.training.cnn_losses import LossConfigError, _check_real, _float32_if_half
from pfdtrain.training.cnn_trainer import CNNTrainer

if TYPE_CHECKING:
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle

__all__ = ["DistillationLoss", "DistillationTrainer", "load_teacher"]


class DistillationLoss(nn.Module):
    """
    Hinton distillation loss: ``alpha * T^2 * KL(p_teacher^T || p_student^T)
    + (1 - alpha) * CE(student, targets)``.

    ``p^T = softmax(logits / T)``. The temperature softens both distributions so the student
    also learns the teacher's ranking of the wrong classes ("dark knowledge"); the ``T^2``
    factor keeps the soft term's gradients on the same scale as the hard term's when ``T``
    changes. The KL term is averaged over the batch (``reduction="batchmean"``, the true
    KL divergence per sample), the cross-entropy is the plain batch mean. The teacher logits
    are detached, so no gradient ever reaches the teacher.

    Reference: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    NIPS 2014 Deep Learning Workshop (arXiv:1503.02531, 2015).

    Args:
        temperature: softmax temperature ``T`` of the soft targets (> 0).
        alpha: weight of the ``T^2``-scaled KL term, ``0 <= alpha <= 1``; ``1 - alpha`` weighs
            the cross-entropy with the true labels (``alpha = 0`` is plain cross-entropy).

    Example:
        >>> import torch
        >>> s, t, y = torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 2])
        >>> sorted(DistillationLoss().components(s, t, y))
        ['ce', 'kd']
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.5) -> None:
        super().__init__()
        self.temperature = _check_real("temperature", temperature, 0.0, low_inclusive=False)
        self.alpha = _check_real("alpha", alpha, 0.0, 1.0, high_inclusive=True)

    def _kd(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """``T^2 * KL(p_teacher^T || p_student^T)``, batch mean."""
        if student_logits.shape != teacher_logits.shape:
            raise LossConfigError(f"student logits {tuple(student_logits.shape)} and teacher "
                                  f"logits {tuple(teacher_logits.shape)} differ in shape; the "
                                  f"teacher must predict the same classes as the student")
        t = self.temperature
        student_log_p = F.log_softmax(_float32_if_half(student_logits) / t, dim=1)
        teacher_log_p = F.log_softmax(_float32_if_half(teacher_logits.detach()) / t, dim=1)
        kl = F.kl_div(student_log_p, teacher_log_p.to(student_log_p.dtype), log_target=True,
                      reduction="batchmean")
        return (t * t) * kl

    @staticmethod
    def _ce(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_float32_if_half(student_logits), targets)

    def forward(
        self,
        student_logits: torch.Tensor,  # [B, num_classes]
        teacher_logits: torch.Tensor,  # [B, num_classes]
        targets: torch.Tensor  # [B] class indices
    ) -> torch.Tensor:
        """
        Compute the distillation loss.

        Args:
            student_logits: Student's logits [B, num_classes]
            teacher_logits: Teacher's logits [B, num_classes] (detached here)
            targets: Ground truth labels [B]

        Returns:
            Scalar loss tensor
        """
        # A term with weight 0 is skipped, so alpha = 0 is exactly cross-entropy (and
        # alpha = 1 exactly the KL term) even if the other term were not finite.
        if self.alpha == 0.0:
            return self._ce(student_logits, targets)
        kd = self._kd(student_logits, teacher_logits)
        if self.alpha == 1.0:
            return kd
        return self.alpha * kd + (1.0 - self.alpha) * self._ce(student_logits, targets)

    @torch.no_grad()
    def components(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two unweighted terms, detached, for logging.

        Args:
            student_logits: Student's logits [B, num_classes]
            teacher_logits: Teacher's logits [B, num_classes]
            targets: Ground truth labels [B]

        Returns:
            ``{"kd": T^2 * KL (scalar), "ce": cross-entropy (scalar)}``; the loss is
            ``alpha * kd + (1 - alpha) * ce``.
        """
        return {"kd": self._kd(student_logits, teacher_logits).detach(),
                "ce": self._ce(student_logits, targets).detach()}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}"


class DistillationTrainer(CNNTrainer):
    """``CNNTrainer`` that trains a student on a frozen teacher's soft targets.

    The teacher is moved to the trainer's device, frozen (no gradients) and kept in eval
    mode; it sees exactly the student's inputs, in training and in validation. The
    ``criterion`` must be a ``DistillationLoss``; history gains ``train_kd_loss``,
    ``train_ce_loss`` and their ``val_`` twins.

    Args:
        *args: as ``CNNTrainer``.
        teacher: the trained teacher model.
        **kwargs: as ``CNNTrainer``; ``criterion`` defaults to ``DistillationLoss()``.

    Example:
        >>> teacher = load_teacher("runs/big/checkpoints/best_model.pth", class_names,
        ...                        "cpu")  # doctest: +SKIP
        >>> trainer = DistillationTrainer(student, train_loader, val_loader, optimizer=opt,
        ...                               teacher=teacher, criterion=DistillationLoss(
        ...                                   temperature=4, alpha=0.7))  # doctest: +SKIP
    """

    @classmethod
    def check_config(cls, config: "TrainingConfig") -> None:
        if config.loss.name != "ce" or config.loss.class_weights != "none":
            raise ConfigError("trainer: distillation trains on DistillationLoss (soft teacher "
                              "targets + cross-entropy); loss.name must stay ce and "
                              "loss.class_weights none (set distillation.alpha and "
                              "distillation.temperature instead)")
        if config.data.label_fraction < 1.0:
            # DistillationLoss mixes its CE and KL terms per batch with alpha; masking only
            # the CE part would silently change that balance from batch to batch.
            raise ConfigError(f"trainer: distillation does not support few labels "
                              f"(data.label_fraction = {config.data.label_fraction}): its "
                              f"DistillationLoss weighs cross-entropy against the teacher's "
                              f"soft targets on every window. Set data.label_fraction: 1.0 "
                              f"(distillation.alpha: 1.0 learns from the teacher alone), or "
                              f"use trainer: pinn / cnn with few labels")
        if config.distillation.teacher is None:
            raise ConfigError("trainer: distillation needs distillation.teacher, the path of a "
                              "trained checkpoint, e.g. "
                              "runs/<teacher run>/checkpoints/best_model.pth")

    @classmethod
    def from_config(cls, config: "TrainingConfig", data: "DataBundle",
                    common: dict[str, Any]) -> "DistillationTrainer":
        dc = config.distillation
        teacher = load_teacher(dc.teacher, data.class_names, common["device"], data.transform)
        criterion = DistillationLoss(temperature=dc.temperature, alpha=dc.alpha)
        return cls(**{**common, "criterion": criterion}, teacher=teacher)

    def __init__(self, *args: Any, teacher: nn.Module, **kwargs: Any) -> None:
        kwargs.setdefault("criterion", DistillationLoss())
        super().__init__(*args, **kwargs)
        if not isinstance(self.criterion, DistillationLoss):
            raise TrainingError("DistillationTrainer needs a DistillationLoss criterion, got "
                                f"{type(self.criterion).__name__}")
        self.teacher = teacher.to(self.device).eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, torch.Tensor]]:
        inputs, targets = batch[0], batch[1]
        logits = self.model(inputs)
        self.teacher.eval()  # whatever happened to it, the teacher never trains
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        loss = self.criterion(logits, teacher_logits, targets)
        parts = self.criterion.components(logits, teacher_logits, targets)
        return loss, logits, targets, {"kd_loss": parts["kd"], "ce_loss": parts["ce"]}


def load_teacher(checkpoint_path: Union[str, Path], class_names: Sequence[str],
                 device: Union[str, torch.device],
                 transform: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """The teacher for a distillation run, from a pfdtrain checkpoint, checked against the data.

    Args:
        checkpoint_path: the teacher's checkpoint.
        class_names: the student's classes.
        device: where the teacher runs.
        transform: the student's input transform (``DataBundle.transform``); the teacher
            sees the student's inputs, so it must have been trained on the same one (a
            checkpoint that records none was trained on ``raw`` windows).

    Raises:
        CheckpointError: unreadable checkpoint, or one trained on other classes or another
            input transform.
    """
    teacher, metadata = load_model_for_evaluation(checkpoint_path, device=device)
    trained_on = metadata.get("class_names")
    if trained_on is not None and list(trained_on) != list(class_names):
        raise CheckpointError(f"teacher {checkpoint_path} was trained on classes {trained_on}, but "
                              f"this dataset has {list(class_names)}; distil on the same classes")
    if transform is not None:
        stored = metadata.get("transform") or {}
        theirs = (stored.get("name", "raw"), stored.get("params") or {})
        ours = (transform.get("name", "raw"), transform.get("params") or {})
        if theirs != ours:
            raise CheckpointError(f"teacher {checkpoint_path} was trained on data.transform "
                                  f"{theirs[0]} {theirs[1]}, but the student's inputs are "
                                  f"{ours[0]} {ours[1]}; set data.transform and "
                                  f"data.transform_params to the teacher's")
    return teacher
