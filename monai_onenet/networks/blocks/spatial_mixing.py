"""Choice of the spatial mixing step inside OneNet's 1D blocks."""

from __future__ import annotations

import torch.nn as nn

from monai_onenet.networks.blocks.oriented_conv import OrientedConv
from monai_onenet.networks.blocks.sequence_conv import SequenceConv

__all__ = ["SPATIAL_MIXING", "get_spatial_mixing"]

SPATIAL_MIXING = ("sequence", "oriented", "none")


def get_spatial_mixing(name: str, spatial_dims: int, channels: int, kernel_size: int) -> nn.Module:
    """Build the spatial mixing of one 1D block.

    Args:
        name: ``"sequence"`` (the paper's shared conv over the flattened map, faithful), ``"oriented"``
            (depthwise 1D convs along each axis, the project's own) or ``"none"``.
        spatial_dims: number of spatial dimensions.
        channels: channels the step sees.
        kernel_size: filter length.
    """
    if name == "sequence":
        return SequenceConv(channels, kernel_size)
    if name == "oriented":
        return OrientedConv(spatial_dims, channels, kernel_size)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"spatial_mixing must be one of {SPATIAL_MIXING}, got {name!r}.")
