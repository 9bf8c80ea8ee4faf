"""Accuracy against latency, one point per model, with the Pareto frontier drawn through the undominated ones."""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

__all__ = ["pareto_front", "save_pareto"]


def pareto_front(rows: Sequence[Mapping[str, Any]], x: str = "latency_ms", y: str = "dice_mean") -> List[str]:
    """Names of the models no other model beats on both ``x`` (lower is better) and ``y`` (higher), by ``x``.

    Example:
        >>> pareto_front([{"model": "a", "latency_ms": 1, "dice_mean": 0.5},
        ...               {"model": "b", "latency_ms": 2, "dice_mean": 0.4},
        ...               {"model": "c", "latency_ms": 3, "dice_mean": 0.9}])
        ['a', 'c']
    """
    front, best = [], float("-inf")
    for row in sorted(rows, key=lambda r: (r[x], -r[y])):
        if row[y] > best:
            front.append(row["model"])
            best = row[y]
    return front


def save_pareto(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> str:
    """Plot mean Dice (error bars: sd over seeds) against latency; OneNet presets and peers in two colours.

    Args:
        rows: the accuracy benchmark's rows (``model``, ``family``, ``latency_ms``, ``dice_mean``, ``dice_std``).
        path: the PNG to write.
        title: optional title.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, 4.5))
    axis = figure.subplots()
    colours = {"onenet": "tab:red", "peer": "tab:blue"}
    for family, label in (("onenet", "OneNet presets"), ("peer", "peers")):
        members = [r for r in rows if r["family"] == family]
        if members:
            axis.errorbar(
                [r["latency_ms"] for r in members],
                [r["dice_mean"] for r in members],
                yerr=[r["dice_std"] for r in members],
                fmt="o",
                color=colours[family],
                capsize=3,
                label=label,
            )
    # Labels go right of their point; one that would overlap a label already placed moves down a line.
    figure.canvas.draw()
    points_per_pixel = 72.0 / figure.dpi
    boxes: List[tuple] = []
    for row in sorted(rows, key=lambda r: (-r["dice_mean"], r["latency_ms"])):
        px, py = (v * points_per_pixel for v in axis.transData.transform((row["latency_ms"], row["dice_mean"])))
        width, height, offset = 5.4 * len(row["model"]), 10.0, 4.0
        while any(
            px + 4 < bx + bw and bx < px + 4 + width and py + offset < by + height and by < py + offset + height
            for bx, by, bw in boxes
        ):
            offset -= height + 1
        boxes.append((px + 4, py + offset, width))
        axis.annotate(
            row["model"],
            (row["latency_ms"], row["dice_mean"]),
            textcoords="offset points",
            xytext=(4, offset),
            fontsize=9,
        )
    by_name = {r["model"]: r for r in rows}
    front = [by_name[name] for name in pareto_front(rows)]
    axis.plot(
        [r["latency_ms"] for r in front], [r["dice_mean"] for r in front], "--", color="grey", label="Pareto front"
    )
    axis.set_xlabel("CPU latency (ms, lower is better)")
    axis.set_ylabel("validation Dice (higher is better)")
    axis.set_title(title or "Dice vs latency")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: inside, it covered points
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
