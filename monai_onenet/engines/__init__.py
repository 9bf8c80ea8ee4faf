"""What MONAI's engines need for OneNet: unified (segmentation + classification) batches, a clean distributed end."""

from .distributed import end_distributed
from .prepare_batch import PrepareUnifiedBatch

__all__ = ["PrepareUnifiedBatch", "end_distributed"]
