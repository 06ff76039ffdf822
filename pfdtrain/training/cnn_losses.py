"""Classification losses (guide section 3): label smoothing, focal, supervised contrastive.

Build them by name with ``create_criterion`` (the config's ``loss.name``); derive class
weights for imbalanced splits with ``class_weights_from_labels``.

Class weights mean the same thing in every loss here, and the same as ``weight`` of
``torch.nn.functional.cross_entropy``: sample ``i`` counts ``w[y_i]`` times, and the mean is
normalised by the total weight of the batch's targets, ``sum_i w[y_i] * loss_i / sum_i w[y_i]``
(focal's per-class ``alpha`` is such a weight). Scaling all weights by a constant therefore
leaves the loss unchanged; only their ratios matter.

Example:
    >>> import torch
    >>> criterion = create_criterion("focal", gamma=2.0, alpha=[1.0, 3.0])
    >>> logits, targets = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    >>> criterion(logits, targets).shape
    torch.Size([])
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pfdtrain.errors import PfdtrainError
from pfdtrain.utils.naming import check_keywords, did_you_mean, keyword_parameters

__all__ = [
    "LossConfigError",
    "LabelSmoothingCrossEntropy",
    "FocalLoss",
    "SupConLoss",
    "MaskedClassificationLoss",
    "LOSS_NAMES",
    "create_criterion",
    "class_weights_from_labels",
]

WeightLike = Union[torch.Tensor, Sequence[float], np.ndarray]


class LossConfigError(PfdtrainError, ValueError):
    """A loss name, argument or value is invalid; the message names the fix."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _as_class_weights(value: Optional[WeightLike], name: str) -> Optional[torch.Tensor]:
    """``None`` or a 1-D, finite, non-negative float32 tensor (a copy, detached)."""
    if value is None:
        return None
    try:
        if isinstance(value, torch.Tensor):
            weights = value.detach().to(device="cpu", dtype=torch.float32).clone()
        else:
            weights = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise LossConfigError(f"{name} must be a list or 1-D tensor of per-class weights, "
                              f"got {value!r}") from exc
    if weights.dim() != 1 or weights.numel() == 0:
        raise LossConfigError(f"{name} must be a non-empty 1-D list/tensor with one weight per "
                              f"class, got shape {tuple(weights.shape)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise LossConfigError(f"{name} must hold finite weights >= 0, got {weights.tolist()}")
    return weights


def _check_real(name: str, value: Any, low: float, high: float = math.inf,
                low_inclusive: bool = True, high_inclusive: bool = False) -> float:
    """Validate a real hyper-parameter against an interval and return it as ``float``."""
    interval = (("[" if low_inclusive else "(") + f"{low:g}, "
                + (f"{high:g}" if math.isfinite(high) else "inf")
                + ("]" if high_inclusive else ")"))
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LossConfigError(f"{name} must be a number in {interval}, got {value!r}")
    value = float(value)
    ok_low = value >= low if low_inclusive else value > low
    ok_high = value <= high if high_inclusive else value < high
    if not (math.isfinite(value) and ok_low and ok_high):
        raise LossConfigError(f"{name} must be a number in {interval}, got {value}")
    return value


def _float32_if_half(x: torch.Tensor) -> torch.Tensor:
    """Compute losses in at least float32: bf16/fp16 logits (autocast) lose the small
    differences between log-probabilities that the loss and its gradient depend on."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_logits_targets(inputs: torch.Tensor, targets: torch.Tensor,
                          weights: Optional[torch.Tensor], weight_name: str) -> None:
    if inputs.dim() != 2:
        raise ValueError(f"expected logits of shape [B, num_classes], got {tuple(inputs.shape)}")
    if targets.shape != inputs.shape[:1]:
        raise ValueError(f"expected targets of shape [{inputs.shape[0]}] (class indices), got "
                         f"{tuple(targets.shape)}")
    if weights is not None and weights.numel() != inputs.shape[1]:
        raise LossConfigError(f"{weight_name} has {weights.numel()} entries but the logits have "
                              f"{inputs.shape[1]} classes; give one weight per class")


def _weighted_mean(per_sample: torch.Tensor, sample_weights: Optional[torch.Tensor]
                   ) -> torch.Tensor:
    """``sum_i w_i l_i / sum_i w_i`` (plain mean without weights).

    A batch whose targets all have weight 0 (a class absent from the training split, see
    ``class_weights_from_labels``) has a zero numerator; it returns 0 instead of 0/0 = NaN.
    """
    if sample_weights is None:
        return per_sample.mean()
    total = sample_weights.sum()
    return (per_sample * sample_weights).sum() / total.clamp_min(torch.finfo(total.dtype).tiny)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

class LabelSmoothingCrossEntropy(nn.Module):
    """
    Cross-entropy against smoothed targets: ``(1 - s) * NLL + s * mean_c(-log p_c)`` per sample.

    The one-hot target is mixed with the uniform distribution, ``q = (1 - s) * onehot + s / C``,
    which keeps the network from driving its logits towards infinity on noisy or ambiguous
    windows. Without weights this equals ``F.cross_entropy(..., label_smoothing=s)``; with
    ``s = 0`` it equals ``F.cross_entropy(..., weight=weight)``.

    Class weights scale each *sample* by the weight of its target class, and the mean is
    normalised by ``sum_i weight[y_i]``: ``sum_i w[y_i] * loss_i / sum_i w[y_i]``. This is
    torch's ``weight`` semantics for ``s = 0``, and the same rule as ``FocalLoss``'s ``alpha``.
    For ``s > 0`` it deliberately differs from torch's weighted label smoothing, which weights
    the smoothing term's classes by ``w[c]`` instead of the sample by ``w[y_i]`` (so there a
    weight no longer means "how much a sample of this class counts", and a batch whose targets
    all have weight 0 gives ``x / 0``). A batch whose targets all have weight 0 gives 0 here.

    Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
    CVPR 2016 (section 7, label-smoothing regularisation).

    Args:
        smoothing: probability mass ``s`` spread uniformly over all classes, ``0 <= s < 1``.
        weight: optional per-class weights ``[C]`` (list or tensor, >= 0), e.g. from
            ``class_weights_from_labels``; stored as a buffer, so ``.to(device)`` moves it.

    Example:
        >>> import torch
        >>> logits, targets = torch.randn(3, 4), torch.tensor([0, 2, 3])
        >>> loss = LabelSmoothingCrossEntropy(smoothing=0.0)(logits, targets)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, targets))
        True
    """

    weight: Optional[torch.Tensor]

    def __init__(self, smoothing: float = 0.1, weight: Optional[WeightLike] = None) -> None:
        super().__init__()
        self.smoothing = _check_real("smoothing", smoothing, 0.0, 1.0)
        self.register_buffer("weight", _as_class_weights(weight, "weight"))

    def forward(
        self,
        inputs: torch.Tensor,  # [B, num_classes] logits
        targets: torch.Tensor  # [B] class indices
    ) -> torch.Tensor:
        """
        Compute the label-smoothed cross-entropy, averaged over the batch.

        Args:
            inputs: Predicted logits [B, num_classes]
            targets: Ground truth labels [B]

        Returns:
            Scalar loss tensor
        """
        _check_logits_targets(inputs, targets, self.weight, "weight")
        log_probs = F.log_softmax(_float32_if_half(inputs), dim=1)
        nll = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
        per_sample = (1.0 - self.smoothing) * nll
        if self.smoothing > 0:
            per_sample = per_sample - self.smoothing * log_probs.mean(dim=1)
        sample_weights = None
        if self.weight is not None:
            sample_weights = self.weight.to(log_probs.dtype)[targets.long()]
        return _weighted_mean(per_sample, sample_weights)

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, weighted={self.weight is not None}"


class FocalLoss(nn.Module):
    """
    Focal loss: cross-entropy scaled by ``(1 - p_t)^gamma`` to focus on hard samples.

    Per sample ``FL_i = -alpha[y_i] * (1 - p_i)^gamma * log p_i``, where ``p_i`` is the
    softmax probability of the true class (computed from ``log_softmax``, so it is stable for
    large logits). Well-classified windows (``p_i`` near 1) are down-weighted, so the many
    easy samples of the majority classes stop dominating the gradient.

    ``alpha`` may be:

    * ``None``: no class weighting; ``reduction="mean"`` averages over the batch.
    * a per-class list/tensor ``[C]``: a class weight with the same meaning as ``weight`` of
      ``F.cross_entropy``; ``reduction="mean"`` is normalised by ``sum_i alpha[y_i]``, so
      ``gamma = 0`` equals ``F.cross_entropy(logits, targets, weight=alpha)`` exactly. A batch
      whose targets all have ``alpha`` 0 gives 0 (not NaN).
    * a float: a constant factor on the loss (``alpha * FocalLoss(gamma)``); the mean is over
      the batch. (Lin et al.'s scalar alpha balances the positive vs negative term of a
      *binary* sigmoid loss, which has no counterpart in a softmax loss.)

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Args:
        gamma: focusing exponent, ``>= 0``; 0 gives (weighted) cross-entropy.
        alpha: ``None``, per-class weights ``[C]`` (stored as a buffer, so ``.to(device)``
            moves it), or a non-negative float factor.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample ``[B]``, alpha included).

    Example:
        >>> import torch
        >>> logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
        >>> w = torch.tensor([1.0, 2.0, 0.5])
        >>> focal = FocalLoss(gamma=0.0, alpha=w)(logits, targets)
        >>> torch.allclose(focal, torch.nn.functional.cross_entropy(logits, targets, weight=w))
        True
    """

    alpha: Optional[torch.Tensor]

    def __init__(self, gamma: float = 2.0, alpha: Optional[Union[WeightLike, float]] = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.gamma = _check_real("gamma", gamma, 0.0)
        if reduction not in ("mean", "sum", "none"):
            raise LossConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        self.alpha_scale = 1.0
        per_class = None
        if isinstance(alpha, torch.Tensor) and alpha.dim() == 0:
            alpha = alpha.item()
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            self.alpha_scale = _check_real("alpha", alpha, 0.0)
        elif alpha is not None:
            per_class = _as_class_weights(alpha, "alpha")
        self.register_buffer("alpha", per_class)

    def forward(
        self,
        inputs: torch.Tensor,  # [B, num_classes] logits
        targets: torch.Tensor  # [B] class indices
    ) -> torch.Tensor:
        """
        Compute the focal loss.

        Args:
            inputs: Predicted logits [B, num_classes]
            targets: Ground truth labels [B]

        Returns:
            Scalar loss tensor (``[B]`` per-sample losses with ``reduction="none"``)
        """
        _check_logits_targets(inputs, targets, self.alpha, "alpha")
        targets = targets.long()
        log_probs = F.log_softmax(_float32_if_half(inputs), dim=1)
        log_pt = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
        per_sample = -log_pt
        if self.gamma != 0:
            # 1 - p_t via expm1 stays accurate when p_t is close to 1. The clamp keeps the
            # gradient of x^gamma (infinite at x = 0 for gamma < 1) finite once p_t rounds to 1.
            one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
            per_sample = one_minus_pt.pow(self.gamma) * per_sample
        if self.alpha_scale != 1.0:
            per_sample = self.alpha_scale * per_sample
        sample_weights = None
        if self.alpha is not None:
            sample_weights = self.alpha.to(log_probs.dtype)[targets]
        if self.reduction == "mean":
            return _weighted_mean(per_sample, sample_weights)
        if sample_weights is not None:
            per_sample = per_sample * sample_weights
        return per_sample.sum() if self.reduction == "sum" else per_sample

    def extra_repr(self) -> str:
        alpha = "per-class" if self.alpha is not None else self.alpha_scale
        return f"gamma={self.gamma}, alpha={alpha}, reduction={self.reduction!r}"


class SupConLoss(nn.Module):
    """
    Supervised contrastive loss on embeddings (not logits): pulls same-class embeddings
    together and pushes other classes apart on the unit sphere.

    For each anchor ``i`` (every view of every sample), with ``P(i)`` the other embeddings
    of the same label and ``A(i)`` all other embeddings::

        L_i = -(T / T_base) / |P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / T)
                                                           / sum_{a in A(i)} exp(z_i.z_a / T) )

    on L2-normalised features ``z`` (the "L_out" form of the paper). The loss is the mean of
    ``L_i`` over the anchors that have at least one positive; anchors whose class occurs
    only once in the batch (and have a single view) are excluded rather than counted as 0.
    A batch in which no anchor has a positive gives 0 (still connected to the graph, so
    ``backward()`` works and leaves zero gradients).

    Reference: Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.

    Args:
        temperature: softmax temperature ``T`` (> 0); smaller values weight hard negatives
            more.
        base_temperature: ``T_base`` (> 0); the loss is scaled by ``T / T_base``, which keeps
            its gradient magnitude comparable across temperatures.

    Example:
        >>> import torch
        >>> features, labels = torch.randn(6, 16), torch.tensor([0, 0, 1, 1, 2, 2])
        >>> SupConLoss(temperature=0.1)(features, labels).shape
        torch.Size([])
    """

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = _check_real("temperature", temperature, 0.0, low_inclusive=False)
        self.base_temperature = _check_real("base_temperature", base_temperature, 0.0,
                                            low_inclusive=False)

    def forward(
        self,
        features: torch.Tensor,  # [B, D] or [B, views, D] embeddings
        labels: Optional[torch.Tensor] = None  # [B] class indices
    ) -> torch.Tensor:
        """
        Compute the supervised contrastive loss.

        Args:
            features: Embeddings [B, D], or [B, views, D] for several augmented views of each
                sample (e.g. ``model.forward_features(x)``); normalised inside.
            labels: Ground truth labels [B]; None treats every sample as its own class
                (SimCLR-style: only the other views of the same sample are positives).

        Returns:
            Scalar loss tensor
        """
        if features.dim() == 2:
            features = features.unsqueeze(1)
        if features.dim() != 3:
            raise ValueError(f"expected features of shape [B, D] or [B, views, D], got "
                             f"{tuple(features.shape)}")
        batch, views, _ = features.shape
        if labels is None:
            labels = torch.arange(batch, device=features.device)
        if labels.shape != (batch,):
            raise ValueError(f"expected labels of shape [{batch}], got {tuple(labels.shape)}")

        z = F.normalize(_float32_if_half(features), dim=2)
        # View-major stacking: row v * B + b is view v of sample b.
        z = torch.cat(torch.unbind(z, dim=1), dim=0)  # [V*B, D]
        labels = labels.reshape(-1).repeat(views)  # [V*B]
        n = z.shape[0]
        not_self = ~torch.eye(n, dtype=torch.bool, device=z.device)
        positives = (labels[:, None] == labels[None, :]) & not_self
        has_positive = positives.any(dim=1)
        if not bool(has_positive.any()):
            return features.sum() * 0.0

        # Only anchors with a positive: each has at least one other embedding, so the
        # log-sum-exp over A(i) is finite.
        logits = z[has_positive] @ z.T / self.temperature  # [anchors, V*B]
        positives = positives[has_positive]
        log_denominator = torch.logsumexp(
            logits.masked_fill(~not_self[has_positive], float("-inf")), dim=1, keepdim=True)
        log_prob = logits - log_denominator
        mean_log_prob_pos = ((log_prob * positives).sum(dim=1)
                             / positives.sum(dim=1).to(log_prob.dtype))
        return -(self.temperature / self.base_temperature) * mean_log_prob_pos.mean()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, base_temperature={self.base_temperature}"


class MaskedClassificationLoss(nn.Module):
    """
    A classification loss over the labeled rows of a batch only (``data.label_fraction``).

    Rows whose target is negative (``UNLABELED`` = -1) are left out: the loss is
    ``criterion(logits[m], targets[m])`` with ``m = targets >= 0``, i.e. the wrapped
    criterion's own reduction (the mean, or the class-weighted mean) over the labeled rows.
    A batch without any labeled row gives ``logits.sum() * 0``: exactly 0, no NaN, and
    still attached to the graph (so ``backward`` works and the other loss terms of a
    trainer still train on that batch).

    Selecting the rows costs one host sync per batch (their number decides the shapes);
    trainers wrap their criterion only when labels can be missing.

    Args:
        criterion: ``(logits [B, C], targets [B]) -> scalar``, e.g. ``nn.CrossEntropyLoss()``.

    Example:
        >>> loss_fn = MaskedClassificationLoss(nn.CrossEntropyLoss())
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
        >>> loss_fn(logits, torch.tensor([-1, -1])).item()
        0.0
        >>> loss_fn(logits, torch.tensor([0, -1])) == nn.functional.cross_entropy(
        ...     logits[:1], torch.tensor([0]))
        tensor(True)
    """

    def __init__(self, criterion: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.criterion = criterion

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """
        Compute the loss over the labeled rows.

        Args:
            inputs: predicted logits ``[B, num_classes]``.
            targets: class indices ``[B]``; negative = unlabeled.

        Returns:
            Scalar loss tensor.
        """
        labeled = targets >= 0
        count = int(labeled.sum())  # the one host sync
        if count == 0:
            return inputs.sum() * 0.0
        if count == targets.numel():
            return self.criterion(inputs, targets)
        return self.criterion(inputs[labeled], targets[labeled])


# --------------------------------------------------------------------------------------------
# Factory and class weights
# --------------------------------------------------------------------------------------------

def _cross_entropy(weight: Optional[WeightLike] = None) -> nn.Module:
    return nn.CrossEntropyLoss(weight=_as_class_weights(weight, "weight"))


# name -> (builder, the class named in messages)
_LOSSES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "ce": (_cross_entropy, "nn.CrossEntropyLoss"),
    "label_smoothing": (LabelSmoothingCrossEntropy, "LabelSmoothingCrossEntropy"),
    "focal": (FocalLoss, "FocalLoss"),
    "supcon": (SupConLoss, "SupConLoss"),
}

LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)


def create_criterion(name: str, **kwargs: Any) -> nn.Module:
    """Build a classification loss by name (the config's ``loss.name``).

    Args:
        name: ``"ce"`` (``nn.CrossEntropyLoss``; kwargs: ``weight``), ``"label_smoothing"``
            (``LabelSmoothingCrossEntropy``: ``smoothing``, ``weight``), ``"focal"``
            (``FocalLoss``: ``gamma``, ``alpha``, ``reduction``) or ``"supcon"``
            (``SupConLoss``: ``temperature``, ``base_temperature``; it takes embeddings
            ``[B, D]``, not logits). Case-insensitive; ``-`` is read as ``_``.
        **kwargs: constructor arguments of that loss. Class weights (``weight``, ``alpha``)
            may be lists or tensors, e.g. from ``class_weights_from_labels``; ``None`` means
            unweighted.

    Raises:
        LossConfigError (a ``ValueError``): unknown name or argument (the message lists the
            valid ones and the closest match), or an invalid value.

    Example:
        >>> create_criterion("label_smoothing", smoothing=0.1)
        LabelSmoothingCrossEntropy(smoothing=0.1, weighted=False)
        >>> create_criterion("ce", weight=[1.0, 2.0]).weight
        tensor([1., 2.])
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in _LOSSES:
        raise LossConfigError(f"unknown loss name {name!r}; valid names: "
                              f"{', '.join(LOSS_NAMES)}." + did_you_mean(key, LOSS_NAMES))
    builder, cls_name = _LOSSES[key]
    check_keywords(kwargs, keyword_parameters(builder), f"loss {key!r} ({cls_name})",
                   "argument", LossConfigError)
    return builder(**kwargs)


def class_weights_from_labels(labels: Union[np.ndarray, torch.Tensor, Sequence[int]],
                              num_classes: int) -> torch.Tensor:
    """"Balanced" class weights ``N / (C * n_c)`` from the labels of the training split.

    ``N`` is the number of labels, ``C = num_classes`` and ``n_c`` the count of class ``c``,
    so a class with the average count gets weight 1, a class 10x rarer gets 10x more, and
    every present class contributes the same total weight ``N / C`` to the loss (the
    ``class_weight="balanced"`` rule of scikit-learn). Use the result as ``weight`` of
    ``ce`` / ``label_smoothing`` or as focal ``alpha``; compute it on the training split only.

    Classes absent from the labels get weight **0**, not ``N / 0 = inf``: an absent class has
    no training sample for the weight to scale, and an infinite weight would turn any loss
    it touches into ``inf`` or ``inf / inf = NaN`` (e.g. a validation window of that class).
    With weight 0 such a window simply does not count towards the weighted loss (the
    ``LabelSmoothingCrossEntropy`` / ``FocalLoss`` mean of a batch made only of such windows
    is 0; plain ``nn.CrossEntropyLoss`` returns NaN for it).

    Args:
        labels: integer class indices ``[N]`` in ``[0, num_classes)`` (numpy, tensor or list).
        num_classes: number of classes ``C`` (>= 1).

    Returns:
        float32 tensor ``[C]``.

    Raises:
        LossConfigError: empty labels, non-integer labels or labels outside ``[0, C)``.

    Example:
        >>> class_weights_from_labels([0, 0, 0, 1], num_classes=3)
        tensor([0.4444, 1.3333, 0.0000])
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise LossConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels).reshape(-1)
    if arr.size == 0:
        raise LossConfigError("cannot compute class weights from an empty label vector")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.number) and np.all(arr == np.round(arr))):
            raise LossConfigError(f"labels must be integer class indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= num_classes:
        raise LossConfigError(f"labels must lie in [0, {num_classes}), found "
                              f"{int(arr.min())}..{int(arr.max())}")
    counts = np.bincount(arr.astype(np.int64), minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = arr.size / (num_classes * counts[present])
    return torch.tensor(weights, dtype=torch.float32)
