"""The transform chains the 2D bundles (Pet, VOC, a user's folders) share: loading, checks, resizing, augmentation.

Images of any size go to the network at one ``image_size`` (a multiple of ``2 ** depth``); the evaluation chain
resizes the image only, so ``Invertd`` maps each prediction back to the image's original size and the metrics
compare it with the untouched label. Every transform is MONAI's except the checks (:class:`LoadVolumed`,
:class:`CheckSegmentationPaird`).
"""

from __future__ import annotations

from functools import partial
from typing import List, Optional, Sequence

from monai.data import PILReader
from monai.transforms import (
    EnsureChannelFirstd,
    EnsureTyped,
    MapTransform,
    RandAffined,
    RandFlipd,
    Resized,
    ScaleIntensityRanged,
)
from PIL import Image

from .checks import CheckSegmentationPaird
from .io import LoadVolumed

__all__ = ["image_2d_loading", "image_2d_resize", "image_2d_training_augmentation"]

_MODES = {1: "L", 3: "RGB"}


def image_2d_loading(
    in_channels: int,
    num_classes: int,
    ignore_value: Optional[int] = None,
    label_transforms: Sequence[MapTransform] = (),
    with_label: bool = True,
) -> List[MapTransform]:
    """Read an image and its mask as ``(C, H, W)`` / ``(1, H, W)`` at their own size, checked and scaled to [0, 1].

    ``LoadVolumed`` (PIL; colour images converted to ``in_channels``: RGB for 3, grey for 1, so VOC's and Pet's
    few grey or CMYK JPEGs load like the rest; palette masks read as class indices) -> ``EnsureChannelFirstd``
    -> ``label_transforms`` (e.g. :class:`PetTargetd`) -> ``CheckSegmentationPaird`` -> ``ScaleIntensityRanged``
    (0..255 to 0..1) -> ``EnsureTyped``. Arrays keep the file's row-major ``(H, W)`` order (``reverse_indexing``
    off; PIL's own ``spatial_shape`` metadata still reads ``(W, H)``, so do not resample from it on saving).

    Args:
        in_channels: 3 (RGB) or 1 (grey).
        num_classes: mask values must lie in ``0 .. num_classes - 1`` (or be ``ignore_value``).
        ignore_value: a mask value the loss and metrics skip (VOC: 255).
        label_transforms: applied to the channel-first mask before the check.
        with_label: False for inference (images only).

    Example:
        >>> [type(t).__name__ for t in image_2d_loading(3, 21, ignore_value=255)]
        ['LoadVolumed', 'LoadVolumed', 'EnsureChannelFirstd', 'CheckSegmentationPaird', 'ScaleIntensityRanged', \
'EnsureTyped']
    """
    if in_channels not in _MODES:
        raise ValueError(f"2D images load as RGB (in_channels=3) or grey (1), got in_channels={in_channels}")
    keys = ["image", "label"] if with_label else ["image"]
    convert = partial(Image.Image.convert, mode=_MODES[in_channels])
    loading: List[MapTransform] = [LoadVolumed("image", reader=PILReader(converter=convert, reverse_indexing=False))]
    if with_label:
        loading.append(LoadVolumed("label", reader=PILReader(reverse_indexing=False)))
    loading.append(EnsureChannelFirstd(keys))
    if with_label:
        loading += list(label_transforms)
    loading += [
        CheckSegmentationPaird("image", "label" if with_label else None, in_channels, num_classes, ignore_value),
        ScaleIntensityRanged("image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys),
    ]
    return loading


def image_2d_resize(image_size: Sequence[int], with_label: bool = False) -> List[MapTransform]:
    """Resize the image (anti-aliased bilinear) and, ``with_label``, the mask (nearest) to ``image_size``.

    Evaluation and inference resize the image only: ``Invertd`` then maps the prediction back to the original size.

    Example:
        >>> import torch
        >>> resize = image_2d_resize([32, 32], with_label=True)[0]
        >>> out = resize({"image": torch.rand(3, 50, 40), "label": torch.randint(0, 3, (1, 50, 40)).float()})
        >>> tuple(out["image"].shape), tuple(out["label"].shape)
        ((3, 32, 32), (1, 32, 32))
    """
    if len(image_size) != 2:
        raise ValueError(f"image_size must be [height, width], got {list(image_size)}")
    keys = ["image", "label"] if with_label else ["image"]
    modes = ["bilinear", "nearest"] if with_label else ["bilinear"]
    anti_aliasing = [True, False] if with_label else [True]
    return [Resized(keys, spatial_size=list(image_size), mode=modes, anti_aliasing=anti_aliasing)]


def image_2d_training_augmentation(image_size: Sequence[int], horizontal_flip: bool = True) -> List[MapTransform]:
    """Resize image and mask to ``image_size``, then a random horizontal flip and a small random affine
    (rotation up to 0.2 rad, scale within 15%; the mask resampled nearest; both reflected at the borders).

    Example:
        >>> [type(t).__name__ for t in image_2d_training_augmentation([64, 64])]
        ['Resized', 'RandFlipd', 'RandAffined']
    """
    keys = ["image", "label"]
    augmentation = image_2d_resize(image_size, with_label=True)
    if horizontal_flip:
        augmentation.append(RandFlipd(keys, prob=0.5, spatial_axis=1))
    augmentation.append(
        RandAffined(
            keys,
            prob=0.5,
            rotate_range=0.2,
            scale_range=0.15,
            mode=["bilinear", "nearest"],
            # Reflected, not zero, padding: picture and mask stay consistent where the affine pulls in space from
            # outside the frame, instead of black corners labelled background.
            padding_mode="reflection",
        )
    )
    return augmentation
