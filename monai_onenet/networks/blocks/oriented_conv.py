"""Oriented 1D spatial mixing: depthwise 1D convolutions along each spatial axis in turn."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

__all__ = ["OrientedConv"]


class OrientedConv(nn.Module):
    """Residual depthwise 1D convolutions, one per spatial axis (H, then W, then D).

    The project's own spatial mixing for OneNet, after Kirchmeyer & Deng, "Convolutional networks with oriented
    1D kernels" (ICCV 2023). Every kernel is still 1D, yet stacked along the axes they give each pixel a
    ``k x k`` (``k^3`` in 3D) separable neighbourhood, which the paper's flattened-sequence conv does not.
    Costs ``d * channels * (k + 1)`` parameters. The residual path keeps the pixel's own features unchanged at
    initialisation, so the block can only add context to the channel-wise path.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: input and output channels.
        kernel_size: odd length of each 1D kernel. Defaults to 7.

    Example::

        >>> mix = OrientedConv(spatial_dims=2, channels=32)
        >>> mix(torch.randn(1, 32, 16, 16)).shape
        torch.Size([1, 32, 16, 16])
    """

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"OrientedConv needs an odd kernel_size, got {kernel_size}.")
        convs = []
        for axis in range(spatial_dims):
            kernel = [1] * spatial_dims
            kernel[axis] = kernel_size
            padding = [k // 2 for k in kernel]
            convs.append(
                Conv[Conv.CONV, spatial_dims](channels, channels, kernel_size=kernel, padding=padding, groups=channels)
            )
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convs(x)
