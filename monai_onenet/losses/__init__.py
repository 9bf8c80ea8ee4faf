"""Losses MONAI does not have."""

from .ignore_value import IgnoreValueDiceCELoss

__all__ = ["IgnoreValueDiceCELoss"]
