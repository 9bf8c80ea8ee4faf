"""Batches for unified (segmentation + classification) training with MONAI's ``SupervisedTrainer``."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from monai.engines.utils import PrepareBatch

__all__ = ["PrepareUnifiedBatch"]


class PrepareUnifiedBatch(PrepareBatch):
    """Give the trainer ``(image, (label, class_label))`` from a batch dict, on ``device``.

    The target pairs with :class:`monai_onenet.losses.UnifiedLoss`. A batch without ``class_key`` (a dataset
    with no image-level labels) is an error that names the key.

    Args:
        class_key: the batch key of the image-level class index (Pet: ``"breed"``).
        image_key: the batch key of the image.
        label_key: the batch key of the segmentation label.

    Example:
        >>> import torch
        >>> batch = {"image": torch.zeros(2, 3, 8, 8), "label": torch.zeros(2, 1, 8, 8), "breed": torch.tensor([3, 7])}
        >>> image, (label, breed) = PrepareUnifiedBatch("breed")(batch)
        >>> breed.tolist()
        [3, 7]
    """

    def __init__(self, class_key: str, image_key: str = "image", label_key: str = "label") -> None:
        self.class_key, self.image_key, self.label_key = class_key, image_key, label_key

    def __call__(
        self,
        batchdata: Dict[str, Any],
        device: Any = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        missing = [k for k in (self.image_key, self.label_key, self.class_key) if k not in batchdata]
        if missing:
            raise KeyError(f"batch has no {missing}; it has {sorted(batchdata)}. Check the dataset's class_key.")

        def move(value: Any) -> torch.Tensor:
            return torch.as_tensor(value).to(device=device, non_blocking=non_blocking, **kwargs)

        return move(batchdata[self.image_key]), (move(batchdata[self.label_key]), move(batchdata[self.class_key]))
