"""Oriented 1D spatial mixing: depthwise 1D convolutions along each spatial axis in turn."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv

from monai_onenet.networks.blocks.layout import channels_first_view, channels_last_view

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
        self.fast_path = True  # False runs every conv module as written (FLOP counters hook the modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = x
        last = len(self.convs) - 1
        for axis, conv in enumerate(self.convs):
            fold = self.fast_path and axis == last and axis > 0 and not torch.jit.is_tracing()
            # A kernel longer than the axis (deep levels of small inputs) trains 3x slower folded than plain.
            fold = fold and mixed.shape[-1] >= conv.kernel_size[-1]
            if fold and channels_last_view(mixed).is_contiguous():
                mixed = _along_last_axis(mixed, conv.weight, conv.bias)
            else:
                mixed = conv(mixed)
        return x + mixed


def _along_last_axis(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """The depthwise conv along the last spatial axis, run as one along the first axis of a folded view.

    On channels-last maps oneDNN's kernels for a ``1 x k`` depthwise conv are about 3x slower than for ``k x 1``
    (backward most). Folding every other spatial axis into the batch, ``(B, *S, C) -> (B * S[:-1], S[-1], 1, C)``,
    is a free view for a channels-last tensor (the only kind it is used on) and turns the conv into a ``k x 1`` one
    with identical outputs.
    ONNX export (a trace) keeps the plain convolution, which ONNX Runtime lays out on its own.
    """
    channels, length = x.shape[1], x.shape[-1]
    folded = channels_last_view(x).reshape(-1, length, 1, channels)
    folded = folded.permute(0, 3, 1, 2)  # (N, C, length, 1), stored channels-last
    kernel = weight.reshape(channels, 1, -1, 1)
    out = F.conv2d(folded, kernel, bias, padding=(kernel.shape[2] // 2, 0), groups=channels)
    shape: List[int] = [x.shape[0]] + list(x.shape[2:]) + [channels]
    return channels_first_view(out.permute(0, 2, 3, 1).reshape(shape))
