"""Split a unified network's decollated output into segmentation and class probabilities."""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["SplitUnifiedOutputd"]


class SplitUnifiedOutputd(MapTransform):
    """Post-processing for an evaluator over OneNet with a classification head.

    After decollation each item's ``pred`` is ``[segmentation (C, *spatial), class_logits (K,)]``; this keeps the
    segmentation under ``pred`` and puts the class probabilities (softmax) under ``class_key``. A plain
    segmentation output passes through unchanged, so the same post-processing serves both kinds of network.

    Example:
        >>> import torch
        >>> out = SplitUnifiedOutputd("pred")({"pred": [torch.zeros(2, 4, 4), torch.tensor([0.0, 0.0])]})
        >>> tuple(out["pred"].shape), out["class_prob"].tolist()
        ((2, 4, 4), [0.5, 0.5])
    """

    def __init__(
        self, keys: KeysCollection = "pred", class_key: str = "class_prob", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.class_key = class_key

    def __call__(self, data: Mapping[Hashable, object]) -> Mapping[Hashable, object]:
        out = dict(data)
        for key in self.key_iterator(out):
            value = out[key]
            if isinstance(value, (list, tuple)) and len(value) == 2 and torch.as_tensor(value[1]).ndim == 1:
                out[key], out[self.class_key] = value[0], torch.softmax(torch.as_tensor(value[1]).float(), dim=0)
        return out
