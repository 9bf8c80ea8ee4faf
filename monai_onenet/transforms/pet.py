"""Oxford-IIIT Pet trimaps to the segmentation target a model trains on."""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["PetTargetd"]


class PetTargetd(MapTransform):
    """Turn a Pet trimap (1 pet, 2 background, 3 border) into class indices.

    * ``target="trimap"``: 3 classes, background 0, pet 1, border 2.
    * ``target="breed"``: 38 classes as in the paper's Table 1, background 0 and the image's breed
      ``1..37`` (from ``data[breed_key]``, zero-based) on the pet; the border, which the annotators left
      uncertain, becomes ``ignore_value``, which the loss and the metrics skip.

    Any other trimap value raises a ``ValueError`` that names the file.

    Example:
        >>> import torch
        >>> trimap = torch.tensor([[[1, 2], [3, 1]]])
        >>> PetTargetd("label", "trimap")({"label": trimap})["label"].tolist()
        [[[1, 0], [2, 1]]]
        >>> PetTargetd("label", "breed")({"label": trimap, "breed": 4})["label"].tolist()
        [[[5, 0], [255, 5]]]
    """

    def __init__(
        self, keys: KeysCollection = "label", target: str = "trimap", breed_key: str = "breed", ignore_value: int = 255
    ) -> None:
        super().__init__(keys)
        if target not in ("trimap", "breed"):
            raise ValueError(f"target must be 'trimap' or 'breed', got {target!r}")
        self.target, self.breed_key, self.ignore_value = target, breed_key, ignore_value

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> Mapping[Hashable, torch.Tensor]:
        out = dict(data)
        for key in self.key_iterator(out):
            trimap = out[key]
            values = torch.unique(torch.as_tensor(trimap))
            bad = [int(v) if float(v).is_integer() else v for v in values.tolist() if v not in (1, 2, 3)]
            if bad:
                source = getattr(trimap, "meta", {}).get("filename_or_obj", f"<{key}>")
                raise ValueError(f"{source}: trimap values {bad} outside 1 (pet), 2 (background), 3 (border).")
            pet, border = trimap == 1, trimap == 3
            result = torch.zeros_like(trimap)
            if self.target == "trimap":
                result[pet], result[border] = 1, 2
            else:
                breed = int(out[self.breed_key])
                if not 0 <= breed < 37:
                    raise ValueError(f"breed must be 0..36 (zero-based CLASS-ID), got {breed}")
                result[pet], result[border] = breed + 1, self.ignore_value
            out[key] = result
        return out
