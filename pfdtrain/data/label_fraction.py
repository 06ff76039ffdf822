"""Few labels (``data.label_fraction``): most training windows lose their label.

Only a fraction of the training windows keep their class; the others get
:data:`~pfdtrain.data.target.UNLABELED` (-1). The trainers' classification loss and training
accuracy then cover the labeled windows only, while label-free terms (the PINN trainer's
physics term) still see every window. Validation and test windows keep their labels.

The choice is stratified: in every class present in the training split,
``max(1, round(fraction · n_c))`` of its ``n_c`` windows keep their label, drawn without
replacement from ``np.random.SeedSequence([config.seed, LABEL_SEED_STREAM])``: a function of
the seed and the training windows only (not of the number of loader workers, the DDP rank or
the epoch), and a stream of its own, so the data order and the augmentation draws are those
of the fully labeled run.

Example:
    >>> mask = select_labeled(np.array([0, 0, 0, 0, 1, 1]), 0.5, seed=42)
    >>> int(mask.sum()), bool(mask[4:].any())
    (3, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pfdtrain.data.target import UNLABELED

__all__ = ["LABEL_SEED_STREAM", "select_labeled", "apply_label_fraction"]

#: Second word of the selection's seed sequence ``[config.seed, LABEL_SEED_STREAM]``.
LABEL_SEED_STREAM = 0x1ABE1


def select_labeled(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which windows keep their label: a stratified, seeded choice.

    Args:
        labels: int ``[N]`` class of every training window (values < 0 are already
            unlabeled and stay so).
        fraction: share of each class's windows that keep their label, in (0, 1].
        seed: the run's seed (``config.seed``).

    Returns:
        bool ``[N]``: True where the window keeps its label; every class present keeps at
        least one window.

    Raises:
        ValueError: ``fraction`` outside (0, 1].

    Example:
        >>> int(select_labeled(np.array([0, 1, 1, 1]), 0.1, seed=0).sum())
        2
    """
    if isinstance(fraction, bool) or not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label fraction {fraction!r} must lie in (0, 1]; set "
                         f"data.label_fraction, e.g. 0.1")
    labels = np.asarray(labels, dtype=np.int64)
    keep = np.zeros(labels.shape[0], dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), LABEL_SEED_STREAM]))
    for cls in np.unique(labels[labels >= 0]):  # sorted: the draws do not depend on order
        members = np.flatnonzero(labels == cls)
        count = max(1, int(round(float(fraction) * members.size)))
        keep[rng.choice(members, size=min(count, members.size), replace=False)] = True
    return keep


def apply_label_fraction(dataset: Any, fraction: float, seed: int) -> dict[str, Any]:
    """Unlabel all but ``fraction`` of ``dataset``'s windows (its ``labels`` array, in place).

    Args:
        dataset: a :class:`~pfdtrain.data.windows.WindowDataset` (anything with an int
            ``labels`` array, one entry per window).
        fraction: share of each class's windows that keep their label, in (0, 1].
        seed: the run's seed (``config.seed``).

    Returns:
        The record for the run's split info: ``fraction``, ``seed``, ``seed_stream``,
        ``labeled`` and ``windows`` per class index (as strings, JSON-ready) and in total.

    Example:
        >>> info = apply_label_fraction(train_ds, 0.1, seed=42)   # doctest: +SKIP
        >>> info["labeled_total"] <= info["windows_total"]          # doctest: +SKIP
        True
    """
    labels = np.asarray(dataset.labels, dtype=np.int64)
    keep = select_labeled(labels, fraction, seed)
    per_class = {str(int(c)): int((labels == c).sum()) for c in np.unique(labels[labels >= 0])}
    labeled = {c: int((keep & (labels == int(c))).sum()) for c in per_class}
    dataset.labels = np.where(keep, labels, UNLABELED).astype(np.int64)
    return {"fraction": float(fraction), "seed": int(seed), "seed_stream": LABEL_SEED_STREAM,
            "labeled": labeled, "windows": per_class, "labeled_total": int(keep.sum()),
            "windows_total": int(labels.size)}
