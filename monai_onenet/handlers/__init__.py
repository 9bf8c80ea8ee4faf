"""Ignite handlers the bundles attach to MONAI's trainers and evaluators."""

from .reseed import ReseedEachEpoch
from .resume import ResumableCheckpoint, latest_checkpoint, require_checkpoint
from .segmentation_report import SegmentationReport
from .segmentation_score import SegmentationScore
from .training_curves import TrainingCurves

__all__ = [
    "ReseedEachEpoch",
    "ResumableCheckpoint",
    "SegmentationReport",
    "SegmentationScore",
    "TrainingCurves",
    "latest_checkpoint",
    "require_checkpoint",
]
