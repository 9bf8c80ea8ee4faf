"""PASCAL VOC 2012 segmentation as MONAI data dicts, read from the devkit's layout.

``root`` may be ``VOCdevkit/VOC2012``, ``VOCdevkit`` or its parent::

    JPEGImages/2007_000032.jpg ...
    SegmentationClass/2007_000032.png        palette PNG: class indices 0..20, 255 = border / ignore
    ImageSets/Segmentation/train.txt, val.txt, trainval.txt
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Union

from .files import find_or_download, require_files

__all__ = ["VOC_CLASSES", "VOC_IGNORE", "check_voc", "find_voc_root", "voc_datalist"]

PathLike = Union[str, os.PathLike]
VOC_IGNORE = 255
VOC_ARCHIVE = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "6cd6e144f989b92b3379bac3b3de84fd",
)
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def find_voc_root(root: PathLike) -> Path:
    """The ``VOC2012`` folder under ``root`` (``root`` itself, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``)."""
    for candidate in (Path(root), Path(root) / "VOC2012", Path(root) / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
    raise FileNotFoundError(
        f"PASCAL VOC 2012 not found under {Path(root).resolve()}: expected JPEGImages/ and SegmentationClass/ in it, "
        "in VOC2012/ or in VOCdevkit/VOC2012/. Download VOCtrainval_11-May-2012.tar from "
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/, or generate demo data: "
        f"`python -m monai_onenet.data.demo_2d --dataset voc --out {root}`."
    )


def check_voc(root: PathLike, download: bool = False) -> Path:
    """Find VOC 2012 under ``root`` (see :func:`find_voc_root`); with ``download``, fetch and unpack the official
    train/val archive (about 2 GB) into ``root`` first when it is absent."""
    return find_or_download(find_voc_root, root, download, [VOC_ARCHIVE], into=root)


def voc_datalist(root: PathLike, split: str = "train") -> List[Dict[str, str]]:
    """MONAI data dicts ``{"image": jpg, "label": png, "name"}`` for one split of VOC 2012 segmentation.

    Args:
        root: see the module docstring.
        split: a list in ``ImageSets/Segmentation``: ``"train"``, ``"val"`` or ``"trainval"``.

    Raises:
        FileNotFoundError: the folder, the split list, an image or a mask is missing (each named).

    Example:
        >>> import tempfile
        >>> from monai_onenet.data.demo_2d import write_demo_voc
        >>> root = write_demo_voc(tempfile.mkdtemp(), num_images=4, size=32)
        >>> [sorted(item) for item in voc_datalist(root, "train")][:1]
        [['image', 'label', 'name']]
    """
    folder = find_voc_root(root)
    split_file = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file}: VOC split list not found (expected train.txt, val.txt, trainval.txt).")
    names = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    items = [
        {
            "image": str(folder / "JPEGImages" / f"{n}.jpg"),
            "label": str(folder / "SegmentationClass" / f"{n}.png"),
            "name": n,
        }
        for n in names
    ]
    require_files((item[key] for item in items for key in ("image", "label")), split_file.name)
    return items
