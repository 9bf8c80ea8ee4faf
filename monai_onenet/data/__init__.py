"""Data: MSD task descriptions and checks (``msd``), Pet / VOC / folder adapters, demo data in the real on-disk
layouts (``demo_msd``, ``demo_2d``), and a reproducible train / validation split (``holdout``)."""

from .split import holdout

__all__ = ["holdout"]
