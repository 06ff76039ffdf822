"""Domain-alignment losses for unsupervised domain adaptation (``trainer: domain_adaptation``).

Each loss compares the features of a labeled *source* batch with those of an unlabeled
*target* batch (``model.forward_features``); none of them reads a label. They are built by
name from :data:`DOMAIN_LOSSES` (the config's ``domain.method`` takes its choices from it)
with :func:`create_domain_loss`, and share one call signature,
``loss(source_features [Ns, D], target_features [Nt, D], progress=p) -> scalar``, where
``p`` in [0, 1] is the training progress (only DANN's gradient-reversal schedule uses it).

Example:
    >>> import torch
    >>> loss = create_domain_loss("coral", num_features=8)
    >>> float(loss(torch.ones(4, 8), torch.ones(5, 8)))
    0.0
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from pfdtrain.errors import PfdtrainError
from pfdtrain.utils.naming import check_keywords, did_you_mean, keyword_parameters

__all__ = ["DomainLossError", "GradientReversal", "grad_reverse", "dann_lambda", "CORALLoss",
           "MKMMDLoss", "DANNLoss", "DOMAIN_LOSSES", "create_domain_loss"]


class DomainLossError(PfdtrainError, ValueError):
    """A domain-loss name, argument or input is invalid; the message names the fix."""


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature batches as float32 ``[N, D]`` (spectral-free math, but bf16 sums drift)."""
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise DomainLossError(f"domain losses need source and target features [N, D] of the same "
                              f"width D, got {tuple(source.shape)} and {tuple(target.shape)}")
    return source.float(), target.float()


# --------------------------------------------------------------------------------------------
# Gradient reversal (DANN)
# --------------------------------------------------------------------------------------------

class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``-coeff`` (Ganin &
    Lempitsky, ICML 2015). ``coeff`` receives no gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad_output, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """``x`` unchanged; gradients flowing back through it are multiplied by ``-coeff``.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> grad_reverse(x, 0.5).sum().backward()
        >>> x.grad.tolist()
        [-0.5, -0.5]
    """
    return GradientReversal.apply(x, coeff)


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule ``2 / (1 + exp(-gamma p)) - 1``: 0 at the start, → 1 at the end.

    Example:
        >>> dann_lambda(0.0), round(dann_lambda(1.0), 4)
        (0.0, 0.9999)
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


# --------------------------------------------------------------------------------------------
# The losses
# --------------------------------------------------------------------------------------------

class CORALLoss(nn.Module):
    """Deep CORAL: the distance between the source and target feature covariances,
    ``||C_s - C_t||_F^2 / (4 D^2)``.

    ``C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)`` (the unbiased covariance; a batch of
    one sample has no spread and counts as zero covariance).

    Reference: Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
    Adaptation", ECCV 2016 Workshops (arXiv:1607.01719).

    Args:
        num_features: width ``D`` of the features (checked on every call).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(16, 4, generator=g)
        >>> float(CORALLoss(4)(x, x))
        0.0
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    @staticmethod
    def covariance(x: torch.Tensor) -> torch.Tensor:
        """Unbiased covariance ``[D, D]`` of the rows of ``x`` ``[N, D]``."""
        n = x.shape[0]
        centred = x - x.mean(dim=0, keepdim=True)
        return centred.t() @ centred / max(n - 1, 1)

    def forward(self, source: torch.Tensor, target: torch.Tensor,
                progress: float = 1.0) -> torch.Tensor:
        source, target = _check_pair(source, target)
        d = source.shape[1]
        if d != self.num_features:
            raise DomainLossError(f"CORALLoss was built for {self.num_features} features, got {d}")
        diff = self.covariance(source) - self.covariance(target)
        return (diff * diff).sum() / (4.0 * d * d)


class MKMMDLoss(nn.Module):
    """Multi-kernel maximum mean discrepancy (MK-MMD) with Gaussian kernels.

    ``MMD^2 = mean k(s, s') + mean k(t, t') - 2 mean k(s, t)`` (the biased V-statistic over
    the batches, never negative for a positive-definite kernel), with
    ``k = (1/K) sum_i exp(-||a - b||^2 / h_i)``: ``K = num_kernels`` bandwidths
    ``h_i = h_0 * kernel_multiplier^(i - (K - 1)/2)`` spread geometrically around ``h_0``,
    the median of the pairwise squared distances of the pooled batch (median heuristic,
    detached: the bandwidth is not trained). Equal kernel weights (DAN's fixed-weight
    variant).

    Reference: Long, Cao, Wang, Jordan, "Learning Transferable Features with Deep
    Adaptation Networks", ICML 2015; Gretton et al., "A Kernel Two-Sample Test", JMLR 2012.

    Args:
        num_features: width ``D`` of the features (checked on every call).
        num_kernels: number of Gaussian bandwidths ``K`` (>= 1).
        kernel_multiplier: ratio between neighbouring bandwidths (> 1).

    Example:
        >>> x = torch.randn(8, 3)
        >>> abs(float(MKMMDLoss(3)(x, x))) < 1e-6
        True
    """

    def __init__(self, num_features: int, num_kernels: int = 5,
                 kernel_multiplier: float = 2.0) -> None:
        super().__init__()
        if int(num_kernels) < 1:
            raise DomainLossError(f"num_kernels must be >= 1, got {num_kernels}")
        if not float(kernel_multiplier) > 1.0:
            raise DomainLossError(f"kernel_multiplier must be > 1, got {kernel_multiplier}")
        self.num_features = int(num_features)
        self.num_kernels = int(num_kernels)
        self.kernel_multiplier = float(kernel_multiplier)

    def bandwidths(self, squared_distances: torch.Tensor) -> torch.Tensor:
        """``[K]`` bandwidths around the median off-diagonal squared distance."""
        n = squared_distances.shape[0]
        off = squared_distances[~torch.eye(n, dtype=torch.bool, device=squared_distances.device)]
        base = off.detach().median() if off.numel() else squared_distances.new_tensor(1.0)
        base = torch.clamp(base, min=1e-12)
        powers = torch.arange(self.num_kernels, dtype=squared_distances.dtype,
                              device=squared_distances.device) - (self.num_kernels - 1) / 2
        return base * self.kernel_multiplier ** powers

    def forward(self, source: torch.Tensor, target: torch.Tensor,
                progress: float = 1.0) -> torch.Tensor:
        source, target = _check_pair(source, target)
        if source.shape[1] != self.num_features:
            raise DomainLossError(f"MKMMDLoss was built for {self.num_features} features, got "
                                  f"{source.shape[1]}")
        ns = source.shape[0]
        pooled = torch.cat([source, target])
        # Squared distances from the differences (not ||a||^2 + ||b||^2 - 2 a.b, whose
        # rounding leaves identical samples a small, even negative, distance).
        diff = pooled[:, None, :] - pooled[None, :, :]
        d2 = (diff * diff).sum(dim=2)
        h = self.bandwidths(d2)
        kernel = torch.exp(-d2[None, :, :] / h[:, None, None]).mean(dim=0)
        k_ss, k_tt, k_st = kernel[:ns, :ns], kernel[ns:, ns:], kernel[:ns, ns:]
        return k_ss.mean() + k_tt.mean() - 2.0 * k_st.mean()


class DANNLoss(nn.Module):
    """Domain-adversarial loss: a small domain classifier on gradient-reversed features.

    The classifier (``Linear(D, hidden) - ReLU - Linear(hidden, hidden) - ReLU -
    Linear(hidden, 1)``) learns to tell source (1) from target (0) by binary cross-entropy
    (mean over the pooled batch); the features reach it through a gradient-reversal layer
    whose coefficient follows ``dann_lambda(progress, gamma)``, so the feature extractor is
    pushed to make the domains indistinguishable. The returned loss is the classifier's
    cross-entropy (``ln 2 ≈ 0.693`` when it cannot tell the domains apart). Its parameters
    are trained beside the model's (the trainer gives them their own optimizer and saves
    them in checkpoints).

    Reference: Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016.

    Args:
        num_features: width ``D`` of the features.
        hidden: width of the classifier's hidden layers.
        gamma: steepness of the λ schedule (10 in the paper).

    Example:
        >>> loss = DANNLoss(num_features=4, hidden=8)
        >>> loss(torch.randn(3, 4), torch.randn(5, 4), progress=0.5).shape
        torch.Size([])
    """

    def __init__(self, num_features: int, hidden: int = 64, gamma: float = 10.0) -> None:
        super().__init__()
        if int(hidden) < 1:
            raise DomainLossError(f"hidden must be >= 1, got {hidden}")
        self.num_features = int(num_features)
        self.gamma = float(gamma)
        self.discriminator = nn.Sequential(
            nn.Linear(self.num_features, int(hidden)), nn.ReLU(),
            nn.Linear(int(hidden), int(hidden)), nn.ReLU(),
            nn.Linear(int(hidden), 1))

    def coefficient(self, progress: float) -> float:
        """The gradient-reversal coefficient λ at training progress ``progress``."""
        return dann_lambda(progress, self.gamma)

    def forward(self, source: torch.Tensor, target: torch.Tensor,
                progress: float = 1.0) -> torch.Tensor:
        if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
            _check_pair(source, target)
        pooled = grad_reverse(torch.cat([source, target]), self.coefficient(progress))
        logits = self.discriminator(pooled.to(self.discriminator[0].weight.dtype)).squeeze(1)
        domain = torch.cat([torch.ones(source.shape[0], device=logits.device),
                            torch.zeros(target.shape[0], device=logits.device)])
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), domain)


# name -> (builder taking num_features and the method's options, what it does)
DOMAIN_LOSSES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "coral": (CORALLoss, "Deep CORAL: align the feature covariances"),
    "mmd": (MKMMDLoss, "multi-kernel Gaussian MMD between the feature distributions"),
    "dann": (DANNLoss, "domain classifier behind a gradient-reversal layer"),
}


def create_domain_loss(name: str, num_features: int, **kwargs: Any) -> nn.Module:
    """Build a domain loss by its registry name (the config's ``domain.method``).

    Args:
        name: a key of :data:`DOMAIN_LOSSES`; case-insensitive.
        num_features: width of the model's features (``model.num_features``).
        **kwargs: options of that loss (``num_kernels``, ``kernel_multiplier`` for mmd;
            ``hidden``, ``gamma`` for dann).

    Raises:
        DomainLossError: an unknown name or option (naming the valid ones and the closest).

    Example:
        >>> create_domain_loss("mmd", 16, num_kernels=3).num_kernels
        3
    """
    key = str(name).strip().lower()
    if key not in DOMAIN_LOSSES:
        raise DomainLossError(f"unknown domain adaptation method {name!r}; valid methods: "
                              f"{', '.join(DOMAIN_LOSSES)}." + did_you_mean(key, DOMAIN_LOSSES))
    builder = DOMAIN_LOSSES[key][0]
    accepted = [k for k in keyword_parameters(builder) if k != "num_features"]
    check_keywords(kwargs, accepted, f"domain method {key!r} ({builder.__name__})", "option",
                   DomainLossError)
    return builder(num_features, **kwargs)
