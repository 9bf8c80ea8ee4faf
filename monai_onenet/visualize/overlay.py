"""Slices of an image with the ground truth and the prediction drawn on top."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["picture_like", "pick_slices", "save_overlay"]


def pick_slices(label: np.ndarray, count: int = 3) -> list:
    """Indices along the last axis: the ends and middle of the labelled range (the middle of the volume when
    nothing is labelled)."""
    depth = label.shape[-1]
    labelled = np.flatnonzero(label.reshape(-1, depth).any(0))
    low, high = (labelled[0], labelled[-1]) if labelled.size else (depth // 2, depth // 2)
    return sorted({int(round(v)) for v in np.linspace(low, high, count + 2)[1:-1]})


def save_overlay(
    image: torch.Tensor,
    label: Optional[torch.Tensor],
    pred: torch.Tensor,
    path: str,
    class_names: Sequence[str] = (),
    count: int = 3,
    title: str = "",
    photo: bool = False,
) -> str:
    """Save a PNG of ``count`` axial slices: the first image channel in grey, ground truth outlined in green,
    the prediction filled in colour.

    Args:
        image: ``(C, *spatial)``; 2D or 3D (slices along the last axis).
        label: ground-truth class indices ``(1, *spatial)``, or None (inference).
        pred: predicted class indices ``(1, *spatial)``.
        path: the PNG to write; folders are created.
        class_names: for the legend.
        count: slices to show for a 3D volume.
        title: figure title (e.g. the case name and its Dice).
        photo: a 2D picture in row-major ``(H, W)`` order (Pet, VOC): drawn top-left first, in colour when it has
            3 channels (values in [0, 1]). Otherwise volumes (and 2D slices) are drawn as MONAI's RAS arrays.

    Returns:
        ``path``.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    if photo:
        return _save_photo_overlay(image, label, pred, path, class_names, title)
    grey = np.asarray(image[0].detach().float().cpu())
    pred_np = np.asarray(pred[0].detach().cpu()).astype(np.int64)
    truth = None if label is None else np.asarray(label[0].detach().cpu()).astype(np.int64)
    if grey.ndim == 2:
        grey, pred_np = grey[..., None], pred_np[..., None]
        truth = None if truth is None else truth[..., None]
    slices = pick_slices(truth if truth is not None else pred_np, count)
    figure = Figure(figsize=(3.2 * len(slices), 3.4))
    axes = figure.subplots(1, len(slices), squeeze=False)
    colours = colormaps["tab10"]
    for axis, z in zip(axes[0], slices):
        axis.imshow(grey[..., z].T, cmap="gray", origin="lower")
        mask = np.ma.masked_equal(pred_np[..., z].T, 0)
        axis.imshow(mask, cmap=colours, vmin=0, vmax=9, alpha=0.45, origin="lower", interpolation="nearest")
        if truth is not None and truth[..., z].any():
            axis.contour(truth[..., z].T > 0, levels=[0.5], colors="lime", linewidths=0.8, origin="lower")
        axis.set_title(f"slice {z}", fontsize=8)
        axis.axis("off")
    return _finish(figure, path, title, class_names, truth is not None)


def _finish(figure: Figure, path: str, title: str, class_names: Sequence[str], with_truth: bool) -> str:

    legend = "fill: prediction" + ("; green outline: ground truth" if with_truth else "")
    if class_names and len(class_names) <= 12:
        legend += " (" + ", ".join(f"{c}={n}" for c, n in enumerate(class_names) if c) + ")"
    figure.suptitle(f"{title}\n{legend}" if title else legend, fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def picture_like(image: torch.Tensor, spatial_shape: Sequence[int]) -> np.ndarray:
    """``image`` ``(C, H, W)`` resized (bilinear) to ``spatial_shape`` as an ``(H, W, 3)`` or ``(H, W)`` array in
    [0, 1] for ``imshow``: evaluation feeds the network a resized picture but scores (and draws) the prediction at
    the picture's own size.

    Example:
        >>> import torch
        >>> picture_like(torch.rand(3, 32, 32), (40, 56)).shape
        (40, 56, 3)
    """
    picture = image.detach().float().cpu()[None]
    if tuple(picture.shape[2:]) != tuple(spatial_shape):
        picture = torch.nn.functional.interpolate(picture, size=tuple(spatial_shape), mode="bilinear")
    picture = picture[0].numpy()
    return np.clip(np.moveaxis(picture, 0, -1), 0, 1) if picture.shape[0] == 3 else picture[0]


def _class_colours(count: int):
    """A colour per class, background included, distinct for up to 40 classes (VOC's 21, Pet's 38)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    colours = [colormaps["tab20"](i) for i in range(20)] + [colormaps["tab20b"](i) for i in range(20)]
    return ListedColormap(colours[: max(count, 2)])


def _save_photo_overlay(
    image: torch.Tensor,
    label: Optional[torch.Tensor],
    pred: torch.Tensor,
    path: str,
    class_names: Sequence[str],
    title: str,
) -> str:
    """The picture, the prediction filled over it, and the ground truth, side by side, all at the mask's size."""
    from matplotlib.figure import Figure

    pred_np = np.asarray(pred[0].detach().cpu()).astype(np.int64)
    picture = picture_like(image, pred_np.shape)
    panels = 2 if label is None else 3
    figure = Figure(figsize=(3.2 * panels, 3.6))
    axes = figure.subplots(1, panels, squeeze=False)
    for axis, name in zip(axes[0], ("image", "prediction", "ground truth")):
        axis.imshow(picture, cmap=None if picture.ndim == 3 else "gray")
        axis.set_title(name, fontsize=8)
        axis.axis("off")
    count = max(len(class_names), int(pred_np.max()) + 1, 2)
    fill = dict(cmap=_class_colours(count), vmin=0, vmax=count - 1, alpha=0.5, interpolation="nearest")
    axes[0][1].imshow(np.ma.masked_equal(pred_np, 0), **fill)
    if label is not None:
        truth = np.asarray(label[0].detach().cpu()).astype(np.int64)
        axes[0][2].imshow(np.ma.masked_equal(truth, 0), **fill)
        if truth.any():
            axes[0][1].contour(truth > 0, levels=[0.5], colors="lime", linewidths=0.8)
    return _finish(figure, path, title, class_names, label is not None)
