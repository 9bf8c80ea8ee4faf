"""UNeXt (Valanarasu & Patel, MICCAI 2022), rebuilt from its paper as a benchmark peer for OneNet.

Not part of the public network API: it is here so that the benchmarks set OneNet beside the light segmentation net a
user would otherwise pick. Three convolutional stages (3x3 conv, batch norm, max-pool, ReLU), two tokenized-MLP
stages (overlapping 3x3 stride-2 patch embedding, one shifted-MLP block, layer norm), and a mirrored decoder that
upsamples bilinearly and adds the skips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UNeXt", "unext", "unext_s"]


def _shift(x: torch.Tensor, axis: int, groups: int) -> torch.Tensor:
    """Split channels into ``groups`` and roll group ``g`` by ``g - groups // 2`` along ``axis`` (zeros enter)."""
    pad = groups // 2
    padding = [0, 0, 0, 0]
    padding[2 * (3 - axis)] = padding[2 * (3 - axis) + 1] = pad  # F.pad lists the last axis first
    padded = F.pad(x, padding)
    chunks = torch.chunk(padded, groups, dim=1)
    shifted = torch.cat([torch.roll(c, s, axis) for c, s in zip(chunks, range(-pad, pad + 1))], dim=1)
    return shifted.narrow(axis, pad, x.shape[axis])


class ShiftedMLP(nn.Module):
    """Tokenized MLP block: shift along H, channel MLP, depthwise 3x3 conv, GELU, shift along W, channel MLP.

    Works on ``(B, C, H, W)``; the residual and the layer norm in front are part of the block.
    """

    def __init__(self, channels: int, shift_groups: int = 5):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(channels, channels, 1)
        self.shift_groups = shift_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.fc1(_shift(y, 2, self.shift_groups))
        y = self.act(self.dwconv(y))
        y = self.fc2(_shift(y, 3, self.shift_groups))
        return x + y


class _TokenStage(nn.Module):
    """Overlapping patch embedding (3x3 conv, stride 2), layer norm, shifted MLP, layer norm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.embed = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.embed_norm = nn.LayerNorm(out_channels)
        self.mlp = ShiftedMLP(out_channels)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.embed(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.mlp(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _DecoderStage(nn.Module):
    """3x3 conv, batch norm, bilinear x2 upsampling, ReLU; then, in the token stages, a shifted MLP and a norm."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool = True, token: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.mlp = ShiftedMLP(out_channels) if token else None
        self.norm = nn.LayerNorm(out_channels) if token else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.relu(F.interpolate(self.bn(self.conv(x)), scale_factor=2.0, mode="bilinear"))
        if skip is not None:
            x = x + skip
        if self.mlp is not None and self.norm is not None:
            x = self.norm(self.mlp(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x


class UNeXt(nn.Module):
    """UNeXt: a convolutional stem and tokenized shifted-MLP stages, 2D.

    Based on: Valanarasu, Patel, "UNeXt: MLP-based Rapid Medical Image Segmentation Network", MICCAI 2022.
    At the paper's widths ``(16, 32, 128, 160, 256)`` it has about 1.47 M parameters.

    Args:
        in_channels: input channels.
        out_channels: output channels (logits).
        channels: widths of the three conv stages and the two tokenized stages.

    Input size:
        Five downsamplings: height and width must be divisible by 32.

    Example::

        >>> net = UNeXt(in_channels=1, out_channels=2)
        >>> net(torch.randn(1, 1, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, channels: Sequence[int] = (16, 32, 128, 160, 256)):
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"UNeXt needs 5 widths (3 conv stages, 2 token stages), got {tuple(channels)}.")
        c1, c2, c3, c4, c5 = (int(c) for c in channels)
        self.in_channels = in_channels
        self.conv_stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.MaxPool2d(2), nn.ReLU())
            for i, o in ((in_channels, c1), (c1, c2), (c2, c3))
        )
        self.token_stages = nn.ModuleList([_TokenStage(c3, c4), _TokenStage(c4, c5)])
        self.decoder = nn.ModuleList(
            [
                _DecoderStage(c5, c4, token=True),
                _DecoderStage(c4, c3, token=True),
                _DecoderStage(c3, c2),
                _DecoderStage(c2, c1),
                _DecoderStage(c1, c1, norm=False),
            ]
        )
        self.head = nn.Conv2d(c1, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(
                f"UNeXt expects (batch, {self.in_channels}, H, W) with H and W divisible by 32, got {list(x.shape)}."
            )
        skips = []
        for stage in self.conv_stages:
            x = stage(x)
            skips.append(x)
        x = self.token_stages[0](x)
        skips.append(x)
        x = self.token_stages[1](x)
        for stage in self.decoder:
            x = stage(x, skips.pop() if skips else None)
        return self.head(x)


def unext(in_channels: int = 3, out_channels: int = 1) -> UNeXt:
    """UNeXt at the paper's widths (16, 32, 128, 160, 256)."""
    return UNeXt(in_channels, out_channels)


def unext_s(in_channels: int = 3, out_channels: int = 1) -> UNeXt:
    """UNeXt-S, the paper's small version (widths 8, 16, 32, 64, 128)."""
    return UNeXt(in_channels, out_channels, (8, 16, 32, 64, 128))
