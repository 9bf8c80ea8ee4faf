"""Dice + cross-entropy that skips voxels labelled with an ignore value (VOC's 255 object borders)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss
from torch import nn

__all__ = ["IgnoreValueDiceCELoss"]


class IgnoreValueDiceCELoss(nn.Module):
    """MONAI's ``DiceCELoss`` (softmax, one-hot target) over the voxels whose label is not ``ignore_value``.

    MONAI's ``DiceCELoss`` has no ignore index. This composes MONAI's ``MaskedDiceLoss`` (masking after the
    softmax) with ``torch.nn.functional.cross_entropy(ignore_index=...)``; without ignored voxels it equals
    ``DiceCELoss(to_onehot_y=True, softmax=True, ...)``. It works under ``DeepSupervisionLoss``, whose nearest
    resampling keeps the ignore value.

    Args:
        ignore_value: the label value to skip.
        include_background: Dice over the background channel too.
        batch: Dice over the whole batch rather than per image.
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.

    Example:
        >>> import torch
        >>> loss = IgnoreValueDiceCELoss(ignore_value=255)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> target = torch.randint(0, 3, (2, 1, 8, 8)).float()
        >>> target[:, :, :2] = 255
        >>> loss(logits, target).backward()
        >>> bool(logits.grad[:, :, :2].abs().max() == 0)
        True
    """

    def __init__(
        self,
        ignore_value: int = 255,
        include_background: bool = True,
        batch: bool = False,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
    ) -> None:
        super().__init__()
        self.ignore_value = ignore_value
        self.dice = MaskedDiceLoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=batch)
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input``: logits ``(B, C, *spatial)``; ``target``: class indices ``(B, 1, *spatial)``."""
        if target.shape[1] != 1:
            raise ValueError(f"target must hold class indices of shape (B, 1, ...), got {tuple(target.shape)}")
        index = target.long()
        valid = index != self.ignore_value
        clean = torch.where(valid, index, torch.zeros_like(index))
        dice = self.dice(input, clean, mask=valid.to(input.dtype))
        if valid.any():
            ce = F.cross_entropy(input, index[:, 0], ignore_index=self.ignore_value)
        else:
            ce = input.sum() * 0.0
        return self.lambda_dice * dice + self.lambda_ce * ce
