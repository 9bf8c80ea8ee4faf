"""Pictures people would rather look at than read: slice overlays and training curves (matplotlib, no display)."""

from .curves import save_curves
from .overlay import save_overlay

__all__ = ["save_curves", "save_overlay"]
