"""Whole-volume inference for 2D (slice by slice) and 3D (sliding window) networks."""

from __future__ import annotations

from typing import Sequence

from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer

__all__ = ["volume_inferer"]


def volume_inferer(
    spatial_dims: int, roi_size: Sequence[int], sw_batch_size: int = 8, overlap: float = 0.25, mode: str = "gaussian"
) -> Inferer:
    """An inferer that runs a ``spatial_dims``-D network over a whole 3D volume.

    2D networks (the paper's setting) see axial slices through MONAI's ``SliceInferer`` (slices along the last
    axis after ``Orientationd("RAS")``), each slice tiled by a sliding window of ``roi_size``; 3D networks run a
    sliding window of ``roi_size`` patches. Either way the output covers the whole volume, so validation and
    inference report per-volume metrics.

    Example:
        >>> import torch
        >>> inferer = volume_inferer(2, (32, 32))
        >>> net = torch.nn.Conv2d(1, 2, 1)
        >>> inferer(torch.zeros(1, 1, 40, 36, 5), net).shape
        torch.Size([1, 2, 40, 36, 5])
    """
    if spatial_dims == 2:
        if len(roi_size) != 2:
            raise ValueError(f"a 2D network needs a 2D roi_size, got {list(roi_size)}")
        return SliceInferer(
            roi_size=roi_size, spatial_dim=2, sw_batch_size=sw_batch_size, overlap=overlap, mode=mode, progress=False
        )
    if spatial_dims == 3:
        if len(roi_size) != 3:
            raise ValueError(f"a 3D network needs a 3D roi_size, got {list(roi_size)}")
        return SlidingWindowInferer(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=overlap, mode=mode)
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
