"""The 2D-style levels of the paper's baselines: U-Net encoder levels and the U-Net decoder used by OneNet_e."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool

from monai_onenet.networks.blocks.channel_levels import NormFirstADN
from monai_onenet.networks.blocks.stepped import SteppedSequential

__all__ = ["UNetEncoderLevel", "UNetDecoderLevel", "double_conv"]


def double_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    act: str | tuple | None,
    norm: str | tuple | None,
    dropout: float | tuple | None,
    bias: bool,
    conv_only: bool = False,
) -> SteppedSequential:
    """Two 3x3 convolutions (conv -> norm -> act each, or plain convolutions with ``conv_only``)."""
    settings = {"kernel_size": 3, "act": act, "norm": norm, "dropout": dropout, "bias": bias, "conv_only": conv_only}
    convs = [
        Convolution(spatial_dims, in_channels, out_channels, **settings),
        Convolution(spatial_dims, out_channels, out_channels, **settings),
    ]
    for conv in convs:
        if not conv_only:  # see NormFirstADN: MONAI's own ADN class may be scripted in another order
            conv.adn.__class__ = NormFirstADN
    return SteppedSequential(*convs)


class UNetEncoderLevel(nn.Module):
    """U-Net encoder level: 2x max-pooling, then two 3x3 conv -> norm -> act.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolutions have a bias.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)
        self.mixing = nn.Identity()  # the stages match OneNet's levels: downsample, mixing, convs
        self.convs = double_conv(spatial_dims, in_channels, out_channels, act, norm, dropout, bias)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)

    @torch.jit.unused
    def mixes_while_downsampling(self, x: torch.Tensor) -> bool:
        return False

    def downsample_and_mix(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixing(self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.downsample(x))


class UNetDecoderLevel(nn.Module):
    """U-Net decoder level as in the OneNet authors' code: transposed conv, concat the skip, two 3x3 convs.

    At the top level (``skip_channels == 0``) the two convolutions are plain, with no norm or activation.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels before upsampling.
        skip_channels: channels of the encoder skip; 0 at the top level.
        out_channels: output channels (also the width of the upsampled map).
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolutions have a bias.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.upsample = Conv[Conv.CONVTRANS, spatial_dims](in_channels, out_channels, kernel_size=2, stride=2)
        self.mixing = nn.Identity()  # the stages match OneNet's levels: merge, mixing, convs
        top = skip_channels == 0
        self.convs = double_conv(
            spatial_dims, out_channels + skip_channels, out_channels, act, norm, dropout, bias, conv_only=top
        )

    def concat(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Put the skip before the upsampled ``x``."""
        return x if skip is None else torch.cat([skip, x], dim=1)

    def merge(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Upsample ``x`` and put the skip before it."""
        return self.concat(self.upsample(x), skip)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.convs(self.merge(x, skip))
