"""MONAI dictionary transforms that MONAI itself does not have, and the MSD bundles' shared chains."""

from .checks import CheckSegmentationPaird
from .io import LoadVolumed
from .msd import msd_loading, msd_training_augmentation, patch_size
from .pet import PetTargetd

__all__ = [
    "CheckSegmentationPaird",
    "LoadVolumed",
    "PetTargetd",
    "msd_loading",
    "msd_training_augmentation",
    "patch_size",
]
