"""Physics losses for physics-informed training (guide section 3.1, 3.4).

* :class:`FrequencyConsistencyLoss`: the predicted class distribution must agree with what
  the window's spectrum supports (``pfdtrain.data.spectral.class_evidence``).
* :class:`PhysicalConstraintLoss`: predictions must not contradict the operating conditions
  (oil whirl in a heavily loaded, highly eccentric bearing).
* :class:`MultiTaskLoss`: classification + weighted physics + weighted constraint terms.

Both physics terms are differentiable with respect to the logits and use no ``argmax`` or
hard decision on the gradient path (a previous project's frequency loss compared the
``argmax`` class with the spectrum, so no gradient reached the model and its "physics" did
nothing). The spectral evidence itself is computed from the signal under ``torch.no_grad()``:
it is a target, not something the model can change.

Example:
    >>> import torch
    >>> from pfdtrain.data.synthetic import CLASS_NAMES
    >>> loss_fn = FrequencyConsistencyLoss(6400.0, CLASS_NAMES)
    >>> signal, logits = torch.randn(4, 1, 6400), torch.randn(4, 11, requires_grad=True)
    >>> loss = loss_fn(signal, logits, {"speed_hz": torch.full((4,), 60.0)})
    >>> loss.backward(); bool(logits.grad.abs().sum() > 0)
    True
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pfdtrain.data.spectral import KNOWN_CLASSES, band_energies, class_evidence
from pfdtrain.training.cnn_losses import LossConfigError, _check_real

if TYPE_CHECKING:  # annotations only
    from pfdtrain.config.training_config import TrainingConfig
    from pfdtrain.data.windows import DataBundle

__all__ = ["FrequencyConsistencyLoss", "PhysicalConstraintLoss", "MultiTaskLoss",
           "journal_terms"]


def _check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(class_names, str):
        raise LossConfigError("class_names must be a sequence of class names, not one string")
    names = tuple(str(name) for name in class_names)
    if len(names) < 2:
        raise LossConfigError(f"class_names needs at least 2 classes, got {list(names)}")
    if len(set(names)) != len(names):
        raise LossConfigError(f"class_names has duplicates: {list(names)}")
    return names


def _check_logits(logits: Tensor, num_classes: int) -> None:
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"expected logits of shape [B, {num_classes}], got "
                         f"{tuple(logits.shape)}")


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast for the spectra (FFTs want float32), where autocast exists."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return contextlib.nullcontext()


def _metadata_values(metadata: Optional[Mapping[str, Any]], key: str, batch: int,
                     device: torch.device) -> Optional[Tensor]:
    """``metadata[key]`` as float32 ``[batch]`` on ``device`` (NaN = unknown), or None."""
    if not metadata or key not in metadata or metadata[key] is None:
        return None
    values = torch.as_tensor(metadata[key]).detach().to(device=device, dtype=torch.float32)
    values = values.reshape(-1)
    if values.numel() == 1 and batch != 1:
        values = values.expand(batch)
    if values.numel() != batch:
        raise ValueError(f"metadata[{key!r}] has {values.numel()} values for a batch of {batch}")
    return values


class FrequencyConsistencyLoss(nn.Module):
    """
    Penalise class probabilities that the window's spectrum does not support.

    The spectrum of every input window is turned into a per-class evidence ``e`` in [0, 1]
    (``pfdtrain.data.spectral``: log band energies at 1X/2X/3X, 0.4-0.5X, 2-5 Hz, 0.7-1.3 kHz,
    1.5-2.5 kHz bursts, broadband level and AM, placed per sample from ``metadata
    ["speed_hz"]`` or from the estimated shaft speed), computed under ``torch.no_grad()``.
    The loss is the negative log of the probability mass the model puts on spectrally
    supported classes::

        e' = floor + (1 - floor) · e,    p = softmax(logits / temperature)
        loss = mean_b [ -log Σ_c p_bc · e'_bc ]          (a log-sum-exp of log p + log e')

    It is 0 only when all the probability sits on classes with evidence 1, and at most
    ``-log(evidence_floor)``. Unlike a cross-entropy to a soft target it does not pull a
    confident, spectrally consistent prediction towards a spread-out distribution (any ``p``
    supported on the best-evidenced classes is optimal), yet its gradient stays large for a
    confident prediction of an unsupported class: d loss / d logit_c = p_c (1 - e'_c / Σ p e')
    / temperature, dense over all classes, with no ``argmax`` anywhere. Classes that
    ``class_evidence`` does not know get evidence 0.5; a batch whose classes are all unknown
    has a constant evidence and the loss has zero gradient (no opinion).

    Reference: physics-guided loss terms as in Karpatne et al., "Physics-guided neural
        networks (PGNN)", arXiv:1710.11431 (2017); characteristic journal-bearing fault
        frequencies after Muszynska, "Rotordynamics" (2005). The partial-label form
        -log Σ p·e follows Jin & Ghahramani, "Learning with multiple labels", NeurIPS 2002.

    Args:
        sampling_rate: samples per second of the input windows.
        class_names: the dataset's class names, index = class label.
        temperature: divides the logits before the softmax (> 0); > 1 keeps a gradient on
            very confident predictions, < 1 sharpens. Default 1.
        evidence_floor: lower bound mixed into the evidence, in (0, 1): caps the loss of a
            window whose spectrum supports no class at ``-log(evidence_floor)`` and keeps the
            spectrum from vetoing a class outright (the evidence is a calibrated heuristic,
            not ground truth: incipient faults look healthy). Default 0.05.

    Example:
        >>> loss_fn = FrequencyConsistencyLoss(6400.0, ["healthy", "imbalance"])
        >>> t = torch.arange(6400) / 6400.0
        >>> x = (torch.sin(2 * torch.pi * 60.0 * t) + 0.01 * torch.randn(6400)).reshape(1, 1, -1)
        >>> agree = loss_fn(x, torch.tensor([[-3.0, 3.0]]))     # "imbalance": a strong 1X
        >>> contradict = loss_fn(x, torch.tensor([[3.0, -3.0]]))
        >>> bool(agree < contradict)
        True
    """

    def __init__(self, sampling_rate: float, class_names: Sequence[str],
                 temperature: float = 1.0, evidence_floor: float = 0.05) -> None:
        super().__init__()
        self.sampling_rate = _check_real("sampling_rate", sampling_rate, 0.0,
                                         low_inclusive=False)
        self.class_names = _check_class_names(class_names)
        self.temperature = _check_real("temperature", temperature, 0.0, low_inclusive=False)
        self.evidence_floor = _check_real("evidence_floor", evidence_floor, 0.0, 1.0,
                                          low_inclusive=False)
        self.known_classes = tuple(n for n in self.class_names if n in KNOWN_CLASSES)

    def extra_repr(self) -> str:
        return (f"sampling_rate={self.sampling_rate:g}, classes={len(self.class_names)}, "
                f"temperature={self.temperature:g}, evidence_floor={self.evidence_floor:g}")

    @torch.no_grad()
    def evidence(self, signal: Tensor, metadata: Optional[Mapping[str, Any]] = None) -> Tensor:
        """Spectral evidence ``[B, C]`` in [0, 1] of the windows (before the floor).

        Args:
            signal: ``[B, 1, L]`` (or ``[B, L]``) input windows, any normalisation.
            metadata: optional dict; ``speed_hz`` ``[B]`` places the bands (NaN entries and a
                missing key fall back to the speed estimated from the spectrum).

        Returns:
            float32 ``[B, len(class_names)]`` on the signal's device.
        """
        with _no_autocast(signal.device):
            speed = _metadata_values(metadata, "speed_hz", signal.shape[0], signal.device)
            features = band_energies(signal.float(), self.sampling_rate, speed)
            return class_evidence(features, self.class_names)

    def forward(self, signal: Tensor, logits: Tensor,
                metadata: Optional[Mapping[str, Any]] = None) -> Tensor:
        """
        Compute the frequency-consistency loss.

        Args:
            signal: input windows ``[B, 1, L]`` (the model's input; no gradient needed).
            logits: predicted logits ``[B, num_classes]``.
            metadata: optional operating metadata, ``{"speed_hz": [B], ...}``.

        Returns:
            Scalar loss tensor (float32), differentiable w.r.t. ``logits``.
        """
        _check_logits(logits, len(self.class_names))
        if signal.shape[0] != logits.shape[0]:
            raise ValueError(f"signal has {signal.shape[0]} windows but logits "
                             f"{logits.shape[0]} rows")
        evidence = self.evidence(signal, metadata).to(logits.device)
        evidence = self.evidence_floor + (1.0 - self.evidence_floor) * evidence
        log_p = F.log_softmax(logits.float() / self.temperature, dim=-1)
        return -torch.logsumexp(log_p + evidence.log(), dim=-1).mean()


class PhysicalConstraintLoss(nn.Module):
    """
    Penalise class probabilities that contradict the operating conditions in ``metadata``.

    Each constraint forbids a class in a region of operating conditions, softly: a sample's
    weight ``w`` in [0, 1] is a sigmoid of how far it lies inside the region, its penalty is
    ``-w · log(1 - p_class)`` (computed as ``w · (logsumexp(all logits) - logsumexp(other
    logits))``, so the gradient does not vanish for a confident violation), and the loss is
    the sum over constraints of the mean penalty over the samples whose metadata is known.
    A constraint whose metadata key is missing (or NaN for every sample), or whose class is
    not among ``class_names``, contributes 0.

    Constraints (Sommerfeld number S in the Raimondi-Boyd convention that
    ``pfdtrain.data.synthetic`` writes to ``metadata["sommerfeld"]``: small S = heavily loaded,
    highly eccentric journal):

    * **oil whirl in a heavily loaded bearing**: ``w = sigmoid(ln(limit / S) / width)``.
      A plain journal bearing running at high eccentricity (ε ≳ 0.8; S ≈ 0.04 for L/D = 1 in
      Raimondi & Boyd's tables) is stable against oil whirl; whirl needs a lightly loaded,
      low-eccentricity journal (large S). Note the direction: the instability sits at *large*
      Raimondi-Boyd S (small European load number So = 1 / (2π S)), so "no whirl at a high
      load number" means "no whirl at a *low* S" here. The default limit 0.04 lies below the
      generator's smallest S (0.05; docs/data.md §1.1): the weight is at most 0.06 there (0.017
      at the default dataset's smallest S, 0.06), so a correct synthetic whirl prediction
      pays at most 0.06 · (−log(1 − p)) (0.14 at p = 0.9); on this project's synthetic data
      the term is nearly inert and acts on out-of-range or real metadata.

    Rejected candidates, because ``pfdtrain.data.synthetic`` violates them (it draws every
    class independently of the operating point; a penalty inside its ranges would punish
    correct predictions): whirl only at large S (its whirl occurs at every S in 0.05-0.5,
    with amplitude ∝ 1/√S); stick-slip/lubrication only at small S (Stribeck: thin film);
    cavitation only at high speed or low viscosity.

    Reference: Raimondi & Boyd, "A solution for the finite journal bearing and its
        application to analysis and design", ASLE Trans. 1 (1958); Newkirk & Lewis, "Oil-film
        whirl — an investigation of disturbances due to oil films in journal bearing
        mountings", Trans. ASME 78 (1956).

    Args:
        class_names: the dataset's class names, index = class label.
        whirl_sommerfeld_limit: S below which oil whirl is treated as impossible (> 0).
        whirl_width: softness of that limit in ln(S) (> 0): the weight is 0.73 at S =
            limit·e^-width and 0.27 at S = limit·e^width. Default 0.1 (±10 %).
        whirl_class: the class name of oil whirl.

    Example:
        >>> loss_fn = PhysicalConstraintLoss(["healthy", "oil_whirl"])
        >>> logits = torch.tensor([[0.0, 4.0], [0.0, 4.0]])        # both predict whirl
        >>> heavy, light = ({"sommerfeld": torch.full((2,), s)} for s in (0.01, 0.3))
        >>> bool(loss_fn(logits, heavy) > loss_fn(logits, light))
        True
    """

    def __init__(self, class_names: Sequence[str], whirl_sommerfeld_limit: float = 0.04,
                 whirl_width: float = 0.1, whirl_class: str = "oil_whirl") -> None:
        super().__init__()
        self.class_names = _check_class_names(class_names)
        self.whirl_sommerfeld_limit = _check_real("whirl_sommerfeld_limit",
                                                  whirl_sommerfeld_limit, 0.0,
                                                  low_inclusive=False)
        self.whirl_width = _check_real("whirl_width", whirl_width, 0.0, low_inclusive=False)
        self.whirl_class = str(whirl_class)
        self.whirl_index: Optional[int] = (self.class_names.index(self.whirl_class)
                                           if self.whirl_class in self.class_names else None)

    def extra_repr(self) -> str:
        return (f"classes={len(self.class_names)}, whirl_sommerfeld_limit="
                f"{self.whirl_sommerfeld_limit:g}, whirl_width={self.whirl_width:g}")

    def whirl_weight(self, sommerfeld: Tensor) -> Tensor:
        """Soft indicator in [0, 1] that oil whirl is impossible at Sommerfeld number S."""
        s = sommerfeld.clamp_min(1e-12)
        return torch.sigmoid(torch.log(self.whirl_sommerfeld_limit / s) / self.whirl_width)

    @staticmethod
    def _forbidden_class_penalty(logits: Tensor, index: int, weight: Tensor,
                                 valid: Tensor) -> Tensor:
        """Mean over valid samples of ``-w · log(1 - p_index)``; 0 when none is valid."""
        others = torch.cat([logits[:, :index], logits[:, index + 1:]], dim=1)
        neg_log_not = torch.logsumexp(logits, dim=1) - torch.logsumexp(others, dim=1)
        per_sample = torch.where(valid, weight * neg_log_not, torch.zeros_like(neg_log_not))
        return per_sample.sum() / valid.sum().clamp_min(1)

    def forward(self, logits: Tensor, metadata: Optional[Mapping[str, Any]]) -> Tensor:
        """
        Compute the operating-condition constraint loss.

        Args:
            logits: predicted logits ``[B, num_classes]``.
            metadata: operating metadata, ``{"sommerfeld": [B], ...}`` (NaN = unknown);
                missing keys or ``None`` skip the constraints that need them.

        Returns:
            Scalar loss tensor (float32, >= 0), differentiable w.r.t. ``logits``; exactly 0
            (still attached to the graph) when no constraint applies.
        """
        _check_logits(logits, len(self.class_names))
        logits = logits.float()
        total = logits.sum() * 0.0  # keeps the graph (and the device) when nothing applies
        if self.whirl_index is not None:
            s = _metadata_values(metadata, "sommerfeld", logits.shape[0], logits.device)
            if s is not None:
                valid = torch.isfinite(s) & (s > 0)
                weight = self.whirl_weight(torch.where(valid, s, torch.ones_like(s)))
                total = total + self._forbidden_class_penalty(logits, self.whirl_index,
                                                              weight, valid)
        return total


class MultiTaskLoss(nn.Module):
    """
    Classification loss plus weighted physics and auxiliary (constraint) terms.

    ``total = w_cls · classification + w_phys · physics + w_aux · auxiliary``, with the weights
    stored as buffers (so they travel in ``state_dict`` and move with ``.to(device)``). The
    physics term is ``physics_loss(signal, outputs, metadata)`` (0 when ``physics_loss`` is
    None); the auxiliary term is ``auxiliary_loss(outputs, metadata)`` (0 when
    ``auxiliary_loss`` is None or no metadata is given).

    Reference: guide section 3.4 (multi-task loss weighting); Kendall et al., "Multi-task
        learning using uncertainty to weigh losses", CVPR 2018, for the general pattern.

    Args:
        classification_weight: w_cls (>= 0).
        physics_weight: w_phys (>= 0).
        auxiliary_weight: w_aux (>= 0).
        physics_loss: e.g. a :class:`FrequencyConsistencyLoss`, or None.
        auxiliary_loss: e.g. a :class:`PhysicalConstraintLoss`, or None.
        classification_loss: ``(logits, targets) -> scalar``; default ``nn.CrossEntropyLoss()``.

    Example:
        >>> from pfdtrain.data.synthetic import CLASS_NAMES
        >>> mtl = MultiTaskLoss(physics_loss=FrequencyConsistencyLoss(6400.0, CLASS_NAMES),
        ...                     auxiliary_loss=PhysicalConstraintLoss(CLASS_NAMES))
        >>> logits = torch.randn(2, 11, requires_grad=True)
        >>> meta = {"speed_hz": torch.tensor([58.0, 61.0]), "sommerfeld": torch.tensor([0.1, 0.3])}
        >>> total, parts = mtl(logits, torch.tensor([0, 3]), torch.randn(2, 1, 6400), meta)
        >>> sorted(parts)
        ['auxiliary_loss', 'classification_loss', 'physics_loss', 'total_loss']
    """

    def __init__(self, classification_weight: float = 1.0, physics_weight: float = 0.1,
                 auxiliary_weight: float = 0.05, physics_loss: Optional[nn.Module] = None,
                 auxiliary_loss: Optional[nn.Module] = None,
                 classification_loss: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.classification_loss = (classification_loss if classification_loss is not None
                                    else nn.CrossEntropyLoss())
        self.physics_loss = physics_loss
        self.auxiliary_loss = auxiliary_loss
        # Store weights as buffers (saved in state_dict)
        self.register_buffer("w_cls", torch.tensor(_check_real(
            "classification_weight", classification_weight, 0.0), dtype=torch.float32))
        self.register_buffer("w_phys", torch.tensor(_check_real(
            "physics_weight", physics_weight, 0.0), dtype=torch.float32))
        self.register_buffer("w_aux", torch.tensor(_check_real(
            "auxiliary_weight", auxiliary_weight, 0.0), dtype=torch.float32))

    def terms(self, outputs: Tensor, targets: Tensor, signal: Tensor,
              metadata: Optional[Mapping[str, Any]] = None) -> dict[str, Tensor]:
        """
        The weighted total and each unweighted term, as tensors (no host sync).

        Args:
            outputs: predicted logits ``[B, num_classes]``.
            targets: ground-truth labels ``[B]``.
            signal: the input windows ``[B, 1, L]`` (for the physics term).
            metadata: optional operating metadata (for the physics and auxiliary terms).

        Returns:
            ``{"classification_loss", "physics_loss", "auxiliary_loss", "total_loss"}``;
            only ``total_loss`` is meant for ``backward``.
        """
        loss_cls = self.classification_loss(outputs, targets).float()
        zero = loss_cls.new_zeros(())
        loss_phys = (self.physics_loss(signal, outputs, metadata).float()
                     if self.physics_loss is not None else zero)
        loss_aux = (self.auxiliary_loss(outputs, metadata).float()
                    if self.auxiliary_loss is not None and metadata else zero)

        # Combine with weights
        total_loss = self.w_cls * loss_cls + self.w_phys * loss_phys + self.w_aux * loss_aux
        return {"classification_loss": loss_cls, "physics_loss": loss_phys,
                "auxiliary_loss": loss_aux, "total_loss": total_loss}

    def forward(self, outputs: Tensor, targets: Tensor, signal: Tensor,
                metadata: Optional[Mapping[str, Any]] = None
                ) -> tuple[Tensor, dict[str, float]]:
        """
        Compute the weighted total and its breakdown.

        Args:
            outputs: predicted logits ``[B, num_classes]``.
            targets: ground-truth labels ``[B]``.
            signal: the input windows ``[B, 1, L]`` (for the physics term).
            metadata: optional operating metadata (for the physics and auxiliary terms).

        Returns:
            ``(total, breakdown)``: the scalar total loss tensor and a dict of Python floats
            ``classification_loss``, ``physics_loss``, ``auxiliary_loss``, ``total_loss``
            (one host transfer for all four).
        """
        terms = self.terms(outputs, targets, signal, metadata)
        # Return breakdown for logging
        values = torch.stack(list(terms.values())).detach().tolist()
        return terms["total_loss"], dict(zip(terms, values))


def journal_terms(config: "TrainingConfig", data: "DataBundle"
                  ) -> tuple[nn.Module, Optional[nn.Module]]:
    """``physics.term: journal`` (the default): the journal-bearing physics terms.

    Args:
        config: the run's config (unused: the journal terms take their settings from
            their defaults; kept for the builder signature of ``PHYSICS_TERMS``).
        data: the loaded data (sampling rate and class names).

    Returns:
        ``(FrequencyConsistencyLoss, PhysicalConstraintLoss)``.

    Example:
        >>> physics, constraint = journal_terms(config, data)   # doctest: +SKIP
    """
    return (FrequencyConsistencyLoss(data.sampling_rate, data.class_names),
            PhysicalConstraintLoss(data.class_names))
