"""Losses MONAI does not have."""

from .ignore_value import IgnoreValueDiceCELoss
from .unified import UnifiedLoss

__all__ = ["IgnoreValueDiceCELoss", "UnifiedLoss"]
