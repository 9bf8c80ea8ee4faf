"""A confusion matrix as a picture: rows the true class, columns the predicted one, each row normalised."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["save_confusion"]


def save_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str, title: str = "") -> str:
    """Save ``matrix[true][predicted]`` (counts) as a heat map, rows normalised to the share of each true class.

    Example:
        >>> import tempfile, os
        >>> path = save_confusion([[3, 1], [0, 4]], ["cat", "dog"], os.path.join(tempfile.mkdtemp(), "c.png"))
        >>> os.path.getsize(path) > 0
        True
    """
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=np.float64)
    if counts.shape != (len(class_names), len(class_names)):
        raise ValueError(f"a {counts.shape} matrix for {len(class_names)} class names")
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(3 + 0.22 * len(class_names), 14)
    figure = Figure(figsize=(size + 1, size))
    axis = figure.subplots()
    shown = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    fontsize = 8 if len(class_names) <= 12 else 5
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=fontsize)
    axis.set_yticks(ticks, class_names, fontsize=fontsize)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.colorbar(shown, ax=axis, fraction=0.046, label="share of the true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axis.set_title(f"{title}  top-1 {accuracy:.3f}".strip(), fontsize=9)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
