"""What MONAI's engines need for OneNet's unified (segmentation + classification) training."""

from .prepare_batch import PrepareUnifiedBatch

__all__ = ["PrepareUnifiedBatch"]
