"""Fail early and by name on an image / label pair the network cannot train on."""

from __future__ import annotations

from typing import Hashable, Mapping, Optional

import torch
from monai.transforms import MapTransform

__all__ = ["CheckSegmentationPaird", "InputCheckError"]


class InputCheckError(ValueError):
    """An input the project's loading and checks refuse: a corrupt file, the wrong number of channels, labels
    outside the task's classes. A ``ValueError`` whose message names the file and the fix; servers answer it as
    the client's error (HTTP 422), not their own."""


def _source(data: Mapping[Hashable, object], key: Hashable) -> str:
    meta = getattr(data.get(key), "meta", {}) or {}
    return str(meta.get("filename_or_obj", f"<{key}>"))


class CheckSegmentationPaird(MapTransform):
    """Check a loaded, channel-first image / label pair; raise a ``ValueError`` naming the file otherwise.

    Checks the image's channel count, that the label has one channel and the image's spatial shape, and that
    every label value is one of the task's class indices. Place it right after ``EnsureChannelFirstd``.

    Args:
        image_key: key of the image, shape ``(C, *spatial)``.
        label_key: key of the label, shape ``(1, *spatial)``; a missing label (inference) is allowed.
        in_channels: channels the network expects.
        num_classes: labels must lie in ``0 .. num_classes - 1``.
        ignore_value: one more allowed label value, that the loss and the metrics skip (VOC's 255 borders).

    Example:
        >>> import torch
        >>> check = CheckSegmentationPaird("image", "label", in_channels=1, num_classes=2)
        >>> _ = check({"image": torch.zeros(1, 8, 8), "label": torch.ones(1, 8, 8)})
        >>> check({"image": torch.zeros(1, 8, 8), "label": torch.full((1, 8, 8), 5.0)})
        Traceback (most recent call last):
        ...
        monai_onenet.transforms.checks.InputCheckError: <label>: label values [5] are not classes of this task ...
    """

    def __init__(
        self,
        image_key: str,
        label_key: Optional[str],
        in_channels: int,
        num_classes: int,
        ignore_value: Optional[int] = None,
    ) -> None:
        super().__init__([image_key] + ([label_key] if label_key else []), allow_missing_keys=True)
        self.image_key = image_key
        self.label_key = label_key
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.ignore_value = ignore_value

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> Mapping[Hashable, torch.Tensor]:
        image = data[self.image_key]
        if image.shape[0] != self.in_channels:
            raise InputCheckError(
                f"{_source(data, self.image_key)}: {image.shape[0]} channel(s) (shape {tuple(image.shape)}), but the "
                f"network expects in_channels={self.in_channels}."
            )
        if not self.label_key or self.label_key not in data:
            return data
        label = data[self.label_key]
        name = _source(data, self.label_key)
        if label.shape[0] != 1 or label.shape[1:] != image.shape[1:]:
            raise InputCheckError(
                f"{name}: label shape {tuple(label.shape[1:])} (channels {label.shape[0]}) does not match the image "
                f"{_source(data, self.image_key)} of spatial shape {tuple(image.shape[1:])}. Image and label must be "
                "voxel-aligned volumes of the same shape, the label with one channel."
            )
        values = torch.unique(torch.as_tensor(label))
        bad = values[(values != values.round()) | (values < 0) | (values >= self.num_classes)]
        if self.ignore_value is not None:
            bad = bad[bad != self.ignore_value]
        if bad.numel():
            shown = [int(v) if float(v).is_integer() else float(v) for v in bad[:8].tolist()]
            allowed = f"0..{self.num_classes - 1}" + ("" if self.ignore_value is None else f" or {self.ignore_value}")
            raise InputCheckError(
                f"{name}: label values {shown} are not classes of this task ({allowed}). "
                "Fix the label file, or the task's classes."
            )
        return data
