"""Training-history and confusion-matrix figures, written as image files (no display needed).

The figures are built on :class:`matplotlib.figure.Figure` directly instead of through
``pyplot``: that renders with the Agg canvas on any machine (headless servers, CI), keeps no
global figure registry (no leak when a long job plots every epoch), and, unlike calling
``matplotlib.use("Agg")`` at import, never switches the backend of a user's interactive session
(a notebook importing pfdtrain keeps showing its own plots).

Example:
    >>> plot_history(json.loads(Path("runs/x/history.json").read_text()), "runs/x/history.png")
    PosixPath('runs/x/history.png')
    >>> plot_confusion_matrix([[5, 1], [0, 6]], ["healthy", "wear"], "cm.png")
    PosixPath('cm.png')
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pfdtrain.utils.io import atomic_path

PathLike = Union[str, Path]


def _save(fig: Figure, path: PathLike, dpi: int = 120) -> Path:
    """Render ``fig`` to ``path`` atomically; the format follows the suffix (default PNG)."""
    path = Path(path)
    # The temp file ends in ".tmp", so the format must be named, not guessed from the name.
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def _series(history: Mapping[str, Sequence[float]], key: str) -> Optional[np.ndarray]:
    values = history.get(key)
    if values is None or len(values) == 0:
        return None
    return np.asarray(values, dtype=np.float64)


def plot_history(history: Mapping[str, Sequence[float]], path: PathLike) -> Path:
    """Plot a run's ``history.json``: loss, accuracy and learning rate per epoch.

    Three panels side by side: ``train_loss``/``val_loss``, ``train_acc``/``val_acc`` and
    ``lr``. The learning-rate axis is logarithmic when the rate spans more than one decade
    (warm-up and step schedules are unreadable on a linear axis). Missing keys (no validation
    split, no LR monitor) leave their curve out; a panel with no data says so.

    Args:
        history: ``{"train_loss": [...], "val_loss": [...], "train_acc": [...],
            "val_acc": [...], "lr": [...]}`` — one value per epoch, as the trainer writes it.
        path: image file to write (``.png``, ``.pdf``, ``.svg``); its folder is created and an
            existing file is replaced atomically.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``history`` holds none of the plotted keys.

    Example:
        >>> plot_history({"train_loss": [1.2, 0.7], "val_loss": [1.3, 0.9],
        ...               "train_acc": [40, 70], "val_acc": [35, 60], "lr": [1e-3, 1e-4]},
        ...              "history.png")
        PosixPath('history.png')
    """
    panels = (("Loss", ("train_loss", "val_loss")),
              ("Accuracy (%)", ("train_acc", "val_acc")),
              ("Learning rate", ("lr",)))
    if not any(_series(history, key) is not None for _, keys in panels for key in keys):
        raise ValueError(f"history has none of the keys train_loss, val_loss, train_acc, "
                         f"val_acc, lr (it has {sorted(history)}); pass the dict of a run's "
                         f"history.json")
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    for ax, (title, keys) in zip(axes, panels):
        drawn = False
        for key in keys:
            values = _series(history, key)
            if values is None:
                continue
            epochs = np.arange(1, values.size + 1)
            ax.plot(epochs, values, marker="o" if values.size <= 30 else None, markersize=3,
                    label=key.split("_")[0] if key != "lr" else "lr")
            drawn = True
            if key == "lr":
                positive = values[values > 0]
                if positive.size and positive.max() / positive.min() > 10.0:
                    ax.set_yscale("log")
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
        elif len(keys) > 1:
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.25" ticks
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(matrix: Union[Sequence[Sequence[int]], np.ndarray],
                          class_names: Sequence[str], path: PathLike,
                          normalize: bool = True, title: Optional[str] = None) -> Path:
    """Draw a ``[true, predicted]`` confusion matrix as an annotated heat map.

    Args:
        matrix: square counts, rows = true class, columns = predicted class (as
            :func:`pfdtrain.evaluation.metrics.confusion_matrix` returns).
        class_names: name of every class index (axis labels).
        path: image file to write; replaced atomically.
        normalize: colour and annotate each row as fractions of its true class (per-class
            recall on the diagonal), so rare classes are as readable as common ones; a row
            without samples stays 0. False: raw counts.
        title: figure title (default: ``"Confusion matrix"``, noting the normalisation).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the matrix is not square or does not match ``class_names``.

    Example:
        >>> plot_confusion_matrix([[5, 1], [0, 6]], ["healthy", "wear"], "cm.png")
        PosixPath('cm.png')
    """
    return _save(confusion_matrix_figure(matrix, class_names, normalize, title), path)


def confusion_matrix_figure(matrix: Union[Sequence[Sequence[int]], np.ndarray],
                            class_names: Sequence[str], normalize: bool = True,
                            title: Optional[str] = None) -> Figure:
    """The figure :func:`plot_confusion_matrix` saves (TensorBoard logs it as an image).

    Raises:
        ValueError: the matrix is not square or does not match ``class_names``.

    Example:
        >>> writer.add_figure("test/confusion_matrix", confusion_matrix_figure(m, names))
    """
    counts = np.asarray(matrix, dtype=np.float64)
    n = len(class_names)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {counts.shape}, expected ({n}, {n}) for "
                         f"{n} class names")
    if normalize:
        support = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(values.max()), 1.0)
    size = max(4.5, 0.6 * n + 2.5)  # 11 classes need room for their labels and numbers
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize
                           else "Confusion matrix (counts)"))
    font = 9 if n <= 8 else 7
    for i in range(n):
        for j in range(n):
            if counts[i, j] == 0 and i != j:
                continue  # empty off-diagonal cells stay blank: errors stand out
            text = f"{values[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=font,
                    color="white" if values[i, j] > 0.6 * vmax else "black")
    fig.tight_layout()
    return fig
