"""Per-case segmentation metrics: the paper's Table 1 columns (cross-entropy, mAP@0.5, mIoU) and Dice."""

from .segmentation import aggregate_case_metrics, case_metrics

__all__ = ["aggregate_case_metrics", "case_metrics"]
