"""OneNet's 1D levels: pixel-(un)shuffle, spatial mixing, channel-wise convolutions."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

from monai_onenet.networks.blocks.pixel_shuffle import channels_to_space, space_to_channels
from monai_onenet.networks.blocks.spatial_mixing import get_spatial_mixing

__all__ = ["ChannelConv", "OneNetEncoderLevel", "OneNetDecoderLevel"]


class ChannelConv(Convolution):
    """The paper's channel-wise 1D conv ("PW"): a 1x1 convolution, then activation, dropout and normalisation.

    The authors' ``Conv1d(kernel=stride=C)`` over a channels-last flattening is exactly a 1x1 convolution.
    Normalisation comes after the activation, as in their code.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolution has a bias.
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
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            kernel_size=1,
            act=act,
            norm=norm,
            dropout=dropout,
            bias=bias,
            adn_ordering="ADN",
        )


class OneNetEncoderLevel(nn.Module):
    """One encoder level of OneNet: pixel-unshuffle, spatial mixing, two channel-wise convs.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels before unshuffling (``2^d`` times as many after it).
        out_channels: output channels.
        spatial_mixing: ``"sequence"``, ``"oriented"`` or ``"none"``.
        mixing_kernel_size: kernel length of the spatial mixing.
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
        spatial_mixing: str,
        mixing_kernel_size: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        folded = in_channels * 2**spatial_dims
        self.mixing = get_spatial_mixing(spatial_mixing, spatial_dims, folded, mixing_kernel_size)
        self.convs = nn.Sequential(
            ChannelConv(spatial_dims, folded, out_channels, act, norm, dropout, bias),
            ChannelConv(spatial_dims, out_channels, out_channels, act, norm, dropout, bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.mixing(space_to_channels(x, 2)))


class OneNetDecoderLevel(nn.Module):
    """One decoder level of OneNet_ed: pixel-shuffle, concat the skip, spatial mixing, two channel-wise convs.

    The width is not halved after the concatenation (pixel-shuffle already divides it by ``2^d``).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels before shuffling (divisible by ``2^d``).
        skip_channels: channels of the encoder skip; 0 at the top level, which has none.
        out_channels: output channels.
        spatial_mixing: ``"sequence"``, ``"oriented"`` or ``"none"``.
        mixing_kernel_size: kernel length of the spatial mixing.
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
        spatial_mixing: str,
        mixing_kernel_size: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        block = 2**spatial_dims
        if in_channels % block != 0:
            raise ValueError(f"OneNetDecoderLevel needs in_channels divisible by {block}, got {in_channels}.")
        merged = in_channels // block + skip_channels
        self.mixing = get_spatial_mixing(spatial_mixing, spatial_dims, merged, mixing_kernel_size)
        self.convs = nn.Sequential(
            ChannelConv(spatial_dims, merged, out_channels, act, norm, dropout, bias),
            ChannelConv(spatial_dims, out_channels, out_channels, act, norm, dropout, bias),
        )

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = channels_to_space(x, 2)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.convs(self.mixing(x))
