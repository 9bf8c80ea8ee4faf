"""Segmentation head that predicts at half resolution and pixel-shuffles the logits up (sub-pixel convolution)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from monai_onenet.networks.blocks.pixel_shuffle import channels_to_space

__all__ = ["SubpixelHead"]


class SubpixelHead(nn.Module):
    """A 1x1 convolution to ``out_channels * 2^d`` logits, then pixel-shuffle by 2.

    After Shi et al., "Real-time single image and video super-resolution using an efficient sub-pixel convolutional
    neural network" (CVPR 2016). It lets OneNet end at half resolution: each output pixel gets its own logits
    from the features of its 2x2 (2x2x2) block, and no layer runs at full resolution.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the half-resolution features.
        out_channels: logits per output pixel.

    Example::

        >>> head = SubpixelHead(spatial_dims=2, in_channels=64, out_channels=3)
        >>> head(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, out_channels * 2**spatial_dims, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_to_space(self.conv(x), 2)
