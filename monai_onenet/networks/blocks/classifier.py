"""Image-level classification head on OneNet's deepest features (the "unified" part of the paper's title)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Pool

from monai_onenet.networks.blocks.channel_levels import ChannelConv

__all__ = ["OneNetClassifier"]


class OneNetClassifier(nn.Module):
    """Channel-wise conv, global average pooling and a linear layer: ``(B, C, *S) -> (B, num_classes)``.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the deepest encoder features.
        num_classes: number of image-level classes.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio before the linear layer.

    Example::

        >>> head = OneNetClassifier(spatial_dims=2, in_channels=64, num_classes=3, act="relu", norm="batch")
        >>> head(torch.randn(2, 64, 4, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.features = ChannelConv(spatial_dims, in_channels, in_channels, act, norm)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))
