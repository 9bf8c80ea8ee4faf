"""Training loss and validation metric per epoch, as one PNG."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

__all__ = ["save_curves", "save_seed_curves"]


def save_curves(history: Sequence[Mapping[str, float]], path: str, metric_name: str = "val_mean_dice") -> str:
    """Save the loss (left axis) and validation metric (right axis) curves of ``history`` to ``path``.

    Args:
        history: one dict per epoch with ``epoch``, ``train_loss`` and, on validation epochs, ``metric_name``.
        path: the PNG to write.
        metric_name: the key of the validation metric.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    loss_axis = figure.subplots()
    epochs = [h["epoch"] for h in history]
    loss_axis.plot(epochs, [h.get("train_loss") for h in history], color="tab:blue", label="train loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("train loss", color="tab:blue")
    validated = [h for h in history if h.get(metric_name) is not None]
    if validated:
        metric_axis = loss_axis.twinx()
        metric_axis.plot(
            [h["epoch"] for h in validated],
            [h[metric_name] for h in validated],
            "o-",
            color="tab:red",
            label=metric_name,
        )
        metric_axis.set_ylabel(metric_name, color="tab:red")
        metric_axis.set_ylim(0, 1)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def save_seed_curves(rows: Sequence[Mapping], path: str) -> str:
    """Validation Dice per epoch of several models, one panel each, one thin line per seed and their mean.

    Args:
        rows: the accuracy benchmark's rows; each has ``model`` and ``seeds`` (seed -> Dice per epoch).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    columns = min(len(rows), 4)
    lines = (len(rows) + columns - 1) // columns
    figure = Figure(figsize=(3.2 * columns, 2.6 * lines))
    axes = figure.subplots(lines, columns, squeeze=False, sharey=True)
    for axis, row in zip(axes.flat, rows):
        curves = list(row["seeds"].values())
        for curve in curves:
            axis.plot(range(1, len(curve) + 1), curve, color="grey", alpha=0.5, linewidth=1)
        mean = [sum(values) / len(values) for values in zip(*curves)]
        axis.plot(range(1, len(mean) + 1), mean, color="tab:red", linewidth=2)
        axis.set_title(row["model"], fontsize=9)
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(rows) :]:
        axis.axis("off")
    figure.supxlabel("epoch")
    figure.supylabel("validation Dice")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
