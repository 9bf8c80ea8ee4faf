"""Segmentation loss plus weighted image-level cross-entropy, for OneNet with its classification head."""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UnifiedLoss"]


class UnifiedLoss(nn.Module):
    """``segmentation_loss(seg, label) + classification_weight * cross_entropy(class_logits, class_label)``.

    Pairs with :class:`monai_onenet.engines.PrepareUnifiedBatch`, which hands the trainer the target
    ``(label, class_label)``. A network without a classification head returns the segmentation alone; then only
    the segmentation term counts, so one config serves segmentation-only and unified training.

    Args:
        segmentation_loss: any MONAI segmentation loss (e.g. ``DeepSupervisionLoss`` over
            :class:`IgnoreValueDiceCELoss`), called with the segmentation output as the network returns it.
        classification_weight: weight of the classification term.
        label_smoothing: passed to ``torch.nn.functional.cross_entropy``.

    Example:
        >>> import torch
        >>> from monai.losses import DiceCELoss
        >>> loss = UnifiedLoss(DiceCELoss(to_onehot_y=True, softmax=True), classification_weight=0.5)
        >>> seg, cls = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
        >>> label, class_label = torch.randint(0, 3, (2, 1, 8, 8)), torch.tensor([0, 4])
        >>> both = loss((seg, cls), (label, class_label))
        >>> seg_only = loss(seg, (label, class_label))
        >>> bool(both > seg_only)
        True
    """

    def __init__(self, segmentation_loss: nn.Module, classification_weight: float = 1.0, label_smoothing: float = 0.0):
        super().__init__()
        if classification_weight < 0:
            raise ValueError(f"classification_weight must be >= 0, got {classification_weight}")
        self.segmentation_loss = segmentation_loss
        self.classification_weight = classification_weight
        self.label_smoothing = label_smoothing

    def forward(
        self,
        output: Union[torch.Tensor, Sequence],
        target: Union[torch.Tensor, Sequence[torch.Tensor]],
    ) -> torch.Tensor:
        """``output``: the network's segmentation, or ``(segmentation, class_logits (B, K))``; ``target``: the
        label, or ``(label, class_label (B,))``."""
        label, class_label = (target[0], target[1]) if isinstance(target, (tuple, list)) else (target, None)
        unified = isinstance(output, tuple) and len(output) == 2 and output[1].ndim == 2
        segmentation = output[0] if unified else output
        loss = self.segmentation_loss(segmentation, label)
        if unified:
            if class_label is None:
                raise ValueError(
                    "the network has a classification head but the batch has no class labels: use "
                    "monai_onenet.engines.PrepareUnifiedBatch as the trainer's prepare_batch."
                )
            class_logits = output[1]
            if class_label.ndim != 1 or class_label.shape[0] != class_logits.shape[0]:
                raise ValueError(
                    f"class labels must be one index per image, shape ({class_logits.shape[0]},), got "
                    f"{tuple(class_label.shape)}"
                )
            loss = loss + self.classification_weight * F.cross_entropy(
                class_logits, class_label.long(), label_smoothing=self.label_smoothing
            )
        return loss
