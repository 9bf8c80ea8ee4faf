"""Per-case segmentation metrics and their summary over a dataset.

Definitions (also in the bundles' docs):

* **Dice** and **IoU** per foreground class and case come from MONAI's ``compute_dice`` / ``compute_iou`` with
  ``ignore_empty=False``: 1 when ground truth and prediction are both empty, 0 when only one is.
* **mean Dice** / **mIoU**: the mean over foreground classes of the case-averaged Dice / IoU.
* **mIoU with background** (``miou_with_background``): the same mean with the background class counted as one
  more class, the number the PASCAL VOC benchmark (and most papers' Pet and VOC tables) report; with one or two
  foreground classes it is dominated by the easy background, so the foreground mIoU is the headline here.
* **cross-entropy**: the voxel-mean of ``-log p(true class)`` under the softmax output, averaged over cases.
* **mAP@0.5**: for each foreground class, the share of cases in which the class is present (in the ground
  truth or the prediction) whose IoU exceeds 0.5, i.e. the precision of "found the structure" decisions at
  the 0.5 IoU threshold; averaged over foreground classes.
* **pooled** (``pooled=True``; the PASCAL VOC convention, used by the Pet and VOC bundles): per class, IoU is the
  dataset's total intersection over its total union, and Dice ``2 I / (U + I)`` from the same totals; classes
  that occur nowhere (neither in a label nor in a prediction) are left out of the means. Per-case averaging
  would score every absent class of every picture as a perfect 1, which drowns the real classes when a picture
  holds one or two of 21 or 38.
* **ignored voxels** (``ignore_value``, e.g. VOC's 255 object borders) count in no metric.
* **regions** (brain tumour): unions of classes (e.g. whole tumour = edema + non-enhancing + enhancing),
  scored with Dice and IoU like a class.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from monai.metrics import compute_dice, compute_iou

__all__ = ["BACKGROUND", "case_metrics", "aggregate_case_metrics"]

BACKGROUND = "background"


def _overlap(pred: torch.Tensor, truth: torch.Tensor) -> Dict[str, float]:
    """Dice, IoU, presence and voxel counts of one binary structure; ``pred`` and ``truth`` are bool ``(*spatial)``."""
    as_batch = (pred[None, None].float(), truth[None, None].float())
    return {
        "dice": float(compute_dice(*as_batch, include_background=True, ignore_empty=False)),
        "iou": float(compute_iou(*as_batch, include_background=True, ignore_empty=False)),
        "present": float(bool(pred.any() or truth.any())),
        "intersection": float((pred & truth).sum()),
        "union": float((pred | truth).sum()),
    }


def case_metrics(
    prob: torch.Tensor,
    label: torch.Tensor,
    class_names: Sequence[str],
    regions: Optional[Mapping[str, Sequence[int]]] = None,
    ignore_value: Optional[int] = None,
) -> Dict[str, float]:
    """All metrics of one case.

    Args:
        prob: softmax probabilities ``(C, *spatial)``.
        label: the ground truth, class indices ``(1, *spatial)`` or one-hot ``(C, *spatial)``.
        class_names: ``C`` names, background first.
        regions: optional ``{name: class indices}`` scored as unions.
        ignore_value: a label value (with index labels) whose voxels no metric counts.

    Returns:
        A flat dict: ``cross_entropy`` and ``dice/<name>``, ``iou/<name>``, ``present/<name>``,
        ``intersection/<name>``, ``union/<name>`` (voxel counts) per foreground class and region, then the same
        for ``background``.

    Example:
        >>> import torch
        >>> prob = torch.tensor([[[0.9, 0.2], [0.8, 0.1]], [[0.1, 0.8], [0.2, 0.9]]])
        >>> metrics = case_metrics(prob, torch.tensor([[[0, 1], [0, 0]]]), ["background", "lesion"])
        >>> round(metrics["dice/lesion"], 3), round(metrics["iou/lesion"], 3)
        (0.667, 0.5)
    """
    if len(class_names) != prob.shape[0]:
        raise ValueError(f"{len(class_names)} class names for {prob.shape[0]} output channels.")
    index = label.argmax(0) if label.shape[0] > 1 else label[0].long()
    valid = torch.ones_like(index, dtype=torch.bool) if ignore_value is None else index != ignore_value
    index = torch.where(valid, index, torch.zeros_like(index))
    pred = prob.argmax(0)
    log_prob = torch.log(prob.float().clamp_min(1e-7))
    metrics = {"cross_entropy": float(-log_prob.gather(0, index[None])[0][valid].mean())}
    structures = {name: (c,) for c, name in enumerate(class_names) if c > 0}
    structures.update(regions or {})
    structures[BACKGROUND] = (0,)  # last: only for the mIoU with background, the VOC benchmark's number
    for name, classes in structures.items():
        members = torch.tensor(list(classes), device=index.device)
        for key, value in _overlap(torch.isin(pred, members) & valid, torch.isin(index, members) & valid).items():
            metrics[f"{key}/{name}"] = value
    return metrics


def _mean(values: List[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _pooled(cases: Sequence[Mapping[str, float]], name: str) -> Dict[str, float]:
    intersection = sum(case[f"intersection/{name}"] for case in cases)
    union = sum(case[f"union/{name}"] for case in cases)
    if union == 0:
        return {"dice": float("nan"), "iou": float("nan")}
    return {"dice": 2 * intersection / (union + intersection), "iou": intersection / union}


def aggregate_case_metrics(
    cases: Sequence[Mapping[str, float]],
    class_names: Sequence[str],
    regions: Optional[Mapping] = None,
    pooled: bool = False,
) -> Dict[str, object]:
    """The dataset summary of :func:`case_metrics` results.

    ``pooled=False`` averages Dice and IoU over cases (medical volumes); ``pooled=True`` divides the dataset's
    total intersection by its total union per class (the VOC convention, see the module docstring).

    Returns:
        ``{"cases", "pooled", "mean_dice", "miou", "miou_with_background", "map50", "cross_entropy",
        "dice": {name: ...}, "iou": {...}, "ap50": {...}, "regions": {name: {"dice", "iou"}}}``, the per-class
        entries over foreground classes.

    Example:
        >>> cases = [{"cross_entropy": 0.2, "dice/a": 1.0, "iou/a": 1.0, "present/a": 1.0},
        ...          {"cross_entropy": 0.4, "dice/a": 0.5, "iou/a": 0.4, "present/a": 1.0}]
        >>> summary = aggregate_case_metrics(cases, ["background", "a"])
        >>> summary["mean_dice"], summary["map50"], round(summary["cross_entropy"], 2)
        (0.75, 0.5, 0.3)
    """
    foreground = list(class_names[1:])
    if pooled:
        totals = {name: _pooled(cases, name) for name in foreground}
        dice = {name: totals[name]["dice"] for name in foreground}
        iou = {name: totals[name]["iou"] for name in foreground}
    else:
        dice = {name: _mean([case[f"dice/{name}"] for case in cases]) for name in foreground}
        iou = {name: _mean([case[f"iou/{name}"] for case in cases]) for name in foreground}
    if all(f"iou/{BACKGROUND}" in case for case in cases):
        background = _pooled(cases, BACKGROUND)["iou"] if pooled else _mean([c[f"iou/{BACKGROUND}"] for c in cases])
    else:  # cases scored before the background was recorded
        background = float("nan")
    ap50 = {}
    for name in foreground:
        present = [case for case in cases if case[f"present/{name}"]]
        ap50[name] = _mean([float(case[f"iou/{name}"] > 0.5) for case in present]) if present else float("nan")
    summary: Dict[str, object] = {
        "cases": len(cases),
        "pooled": pooled,
        "mean_dice": _mean(list(dice.values())),
        "miou": _mean(list(iou.values())),
        "miou_with_background": _mean([background] + list(iou.values())),
        "map50": _mean(list(ap50.values())),
        "cross_entropy": _mean([case["cross_entropy"] for case in cases]),
        "dice": dice,
        "iou": iou,
        "ap50": ap50,
    }
    if regions:
        summary["regions"] = {
            name: _pooled(cases, name)
            if pooled
            else {"dice": _mean([c[f"dice/{name}"] for c in cases]), "iou": _mean([c[f"iou/{name}"] for c in cases])}
            for name in regions
        }
    return summary
