"""The transform chains the MSD bundles share: one place for loading, checks, resampling, cropping, augmentation.

Every transform is MONAI's except the two checks (:class:`LoadVolumed`, :class:`CheckSegmentationPaird`).
"""

from __future__ import annotations

from typing import List, Sequence

from monai.transforms import (
    EnsureChannelFirstd,
    EnsureTyped,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Spacingd,
    SpatialPadd,
    SqueezeDimd,
)

from .checks import CheckSegmentationPaird
from .io import LoadVolumed

__all__ = ["msd_loading", "msd_training_augmentation", "patch_size"]


def patch_size(spatial_dims: int, roi_size: Sequence[int]) -> List[int]:
    """The 3D crop that feeds a ``spatial_dims``-D network ``roi_size`` inputs: one axial slice in 2D.

    Example:
        >>> patch_size(2, [96, 96]), patch_size(3, [64, 64, 32])
        ([96, 96, 1], [64, 64, 32])
    """
    if len(roi_size) != spatial_dims:
        raise ValueError(f"roi_size {list(roi_size)} has {len(roi_size)} axes for a {spatial_dims}D network")
    return list(roi_size) + [1] if spatial_dims == 2 else list(roi_size)


def msd_loading(
    pixdim: Sequence[float], in_channels: int, num_classes: int, with_label: bool = True
) -> List[MapTransform]:
    """Deterministic preprocessing of an MSD volume (cached by ``DecathlonDataset``; inverted by ``Invertd``).

    ``LoadVolumed`` -> ``EnsureChannelFirstd`` -> ``CheckSegmentationPaird`` -> ``Orientationd("RAS")`` ->
    ``Spacingd(pixdim)`` (bilinear image, nearest label) -> ``NormalizeIntensityd`` (per channel, over nonzero
    voxels: MRI has no absolute scale, and the skull-stripped brain volumes are zero outside the brain).

    Args:
        pixdim: target voxel spacing in mm.
        in_channels: image channels the network expects (checked).
        num_classes: label values must be below this (checked).
        with_label: False for inference (images only).
    """
    keys = ["image", "label"] if with_label else ["image"]
    modes = ["bilinear", "nearest"] if with_label else ["bilinear"]
    return [
        LoadVolumed(keys),
        EnsureChannelFirstd(keys),
        CheckSegmentationPaird("image", "label" if with_label else None, in_channels, num_classes),
        Orientationd(keys, axcodes="RAS"),
        Spacingd(keys, pixdim=pixdim, mode=modes),
        NormalizeIntensityd("image", nonzero=True, channel_wise=True),
        EnsureTyped(keys),
    ]


def msd_training_augmentation(
    spatial_dims: int, roi_size: Sequence[int], samples_per_volume: int = 8, flip_axes: Sequence[int] = ()
) -> List[MapTransform]:
    """Random training crops (half centred on the foreground) and light augmentation.

    In 2D each crop is one axial slice, squeezed to ``(C, H, W)``. Flips are off by default because cardiac
    anatomy is not left-right symmetric; the brain bundle flips left-right.

    Args:
        spatial_dims: 2 (slices) or 3 (patches).
        roi_size: the network's input size.
        samples_per_volume: crops drawn from each cached volume per epoch.
        flip_axes: spatial axes (of the 3D volume) to flip at random.
    """
    keys = ["image", "label"]
    size = patch_size(spatial_dims, roi_size)
    transforms: List[MapTransform] = [
        SpatialPadd(keys, spatial_size=size),
        RandCropByPosNegLabeld(
            keys,
            label_key="label",
            spatial_size=size,
            pos=1,
            neg=1,
            num_samples=samples_per_volume,
            image_key="image",
            image_threshold=0,
        ),
    ]
    transforms += [RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in flip_axes]
    transforms += [
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ]
    if spatial_dims == 2:
        transforms.append(SqueezeDimd(keys, dim=-1))
    return transforms
