"""Pictures people would rather look at than read: overlays, curves, Pareto plots, confusion matrices.

Drawn on ``matplotlib.figure.Figure`` objects, never through pyplot, so writing a picture neither needs a display
nor changes the backend of a notebook that imports the package."""

from .confusion import save_confusion
from .curves import save_curves, save_seed_curves
from .overlay import save_overlay
from .pareto import pareto_front, save_pareto

__all__ = ["pareto_front", "save_confusion", "save_curves", "save_overlay", "save_pareto", "save_seed_curves"]
