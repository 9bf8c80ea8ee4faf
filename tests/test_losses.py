"""IgnoreValueDiceCELoss: MONAI's DiceCELoss where nothing is ignored, blind to ignored voxels otherwise."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from monai_onenet.losses import IgnoreValueDiceCELoss


@pytest.mark.parametrize("include_background, batch", [(True, False), (False, True)])
def test_equals_monai_dice_ce_without_ignored_voxels(include_background, batch):
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8)).float()
    expected = DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=batch)
    actual = IgnoreValueDiceCELoss(include_background=include_background, batch=batch)
    torch.testing.assert_close(actual(logits, target), expected(logits, target))


def test_predictions_at_ignored_voxels_do_not_matter():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8)).float()
    target[..., :3] = 255
    changed = logits.clone()
    changed[..., :3] = torch.randn(2, 3, 8, 3) * 10
    loss = IgnoreValueDiceCELoss()
    torch.testing.assert_close(loss(logits, target), loss(changed, target))


def test_works_under_deep_supervision():
    heads = [torch.randn(1, 3, 16, 16, requires_grad=True), torch.randn(1, 3, 8, 8, requires_grad=True)]
    target = torch.randint(0, 3, (1, 1, 16, 16)).float()
    target[..., :4, :] = 255
    DeepSupervisionLoss(IgnoreValueDiceCELoss())(heads, target).backward()
    assert all(torch.isfinite(h.grad).all() for h in heads)


def test_rejects_one_hot_targets():
    with pytest.raises(ValueError, match="class indices"):
        IgnoreValueDiceCELoss()(torch.randn(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
