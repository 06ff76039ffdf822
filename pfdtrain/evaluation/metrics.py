"""Classification metrics computed from logits and targets (numpy only, no extra deps)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``[true, predicted]`` counts.

    Example:
        >>> confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2).tolist()
        [[1, 0], [1, 0]]
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets.astype(np.int64), predictions.astype(np.int64)), 1)
    return matrix


def classification_report(targets: np.ndarray, predictions: np.ndarray,
                          class_names: Sequence[str]) -> dict:
    """Accuracy (0-100), per-class precision/recall/F1/support, macro F1, confusion matrix.

    Args:
        targets: true class indices ``[N]``.
        predictions: predicted class indices ``[N]``.
        class_names: names by class index.

    Example:
        >>> classification_report(np.array([0, 1]), np.array([0, 1]), ["a", "b"])["accuracy"]
        100.0
    """
    matrix = confusion_matrix(targets, predictions, len(class_names))
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        recall = np.where(support > 0, true_pos / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)  # scikit-learn's convention: y_true ∪ y_pred
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": 100.0 * float(true_pos.sum()) / max(int(matrix.sum()), 1),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "num_samples": int(matrix.sum()),
    }
