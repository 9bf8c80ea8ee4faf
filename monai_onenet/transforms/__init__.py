"""MONAI dictionary transforms that MONAI itself does not have, and the chains the bundles share."""

from .checks import CheckSegmentationPaird, InputCheckError
from .image_2d import image_2d_loading, image_2d_resize, image_2d_training_augmentation
from .io import LoadVolumed
from .msd import msd_loading, msd_training_augmentation, patch_size
from .pet import PetTargetd
from .unified import SplitUnifiedOutputd

__all__ = [
    "InputCheckError",
    "CheckSegmentationPaird",
    "LoadVolumed",
    "PetTargetd",
    "SplitUnifiedOutputd",
    "image_2d_loading",
    "image_2d_resize",
    "image_2d_training_augmentation",
    "msd_loading",
    "msd_training_augmentation",
    "patch_size",
]
