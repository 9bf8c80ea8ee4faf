"""Demo data in the exact Oxford-IIIT Pet and PASCAL VOC 2012 layouts, for machines that cannot download them.

``python -m monai_onenet.data.demo_2d --dataset pet --out data`` writes ``data/oxford-iiit-pet/`` and
``--dataset voc`` writes ``data/VOCdevkit/VOC2012/``, read by :func:`monai_onenet.data.pet.pet_datalist` and
:func:`monai_onenet.data.voc.voc_datalist` as they read the real datasets.

Objects are random textured blobs. Their class is set by *shape and texture* (the number of lobes of the outline
and the orientation of the stripes inside), never by colour, which is random: a colour lookup cannot classify
them; a model has to learn shapes.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .pet import PET_BREEDS, PET_CATS, PET_DOGS

__all__ = ["write_demo_pet", "write_demo_voc"]

PathLike = Union[str, os.PathLike]


def _blob(
    rng: np.random.Generator, size: int, kind: int, centre: Tuple[float, float], radius: float
) -> Tuple[np.ndarray, np.ndarray]:
    """A mask and a texture for object class ``kind``: lobes = 3 + kind % 5, stripe angle from kind // 5."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = y - centre[0], x - centre[1]
    angle = np.arctan2(dy, dx)
    lobes = 3 + kind % 5
    phase = rng.uniform(0, 2 * math.pi)
    outline = radius * (1.0 + 0.3 * np.cos(lobes * angle + phase))
    mask = np.hypot(dy, dx) < outline
    stripe_angle = (kind // 5) * math.pi / 8
    stripes = np.cos((dx * math.cos(stripe_angle) + dy * math.sin(stripe_angle)) * 2 * math.pi / max(radius / 3, 2))
    return mask, stripes


def _paint(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray, stripes: np.ndarray) -> None:
    base, accent = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    weight = (stripes[..., None] > 0).astype(np.float32)
    canvas[mask] = (base * weight + accent * (1 - weight))[mask]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    low = rng.uniform(60, 200, (4, 4, 3)).astype(np.float32)
    image = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32)
    return image + rng.normal(0, 6, image.shape)


def _border(mask: np.ndarray, width: int = 2) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=width) & ~ndimage.binary_erosion(mask, iterations=width)


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=92)


def write_demo_pet(
    out: PathLike, images_per_breed: int = 6, size: int = 128, test_fraction: float = 0.25, seed: int = 0
) -> Path:
    """Write ``out/oxford-iiit-pet`` in the official layout and return it.

    Args:
        out: the parent folder.
        images_per_breed: images of each of the 37 breeds.
        size: square image size in pixels.
        test_fraction: share of each breed's images listed in ``test.txt`` (the rest in ``trainval.txt``).
        seed: the data is a pure function of it.
    """
    root = Path(out) / "oxford-iiit-pet"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cats_seen, dogs_seen = sorted(PET_CATS, key=str.lower), sorted(PET_DOGS, key=str.lower)
    rows: List[Tuple[str, str]] = []
    test_count = max(1, round(images_per_breed * test_fraction)) if images_per_breed > 1 else 0
    for class_id, breed in enumerate(PET_BREEDS, start=1):
        species = 1 if breed in PET_CATS else 2
        breed_id = (cats_seen if species == 1 else dogs_seen).index(breed) + 1
        for number in range(1, images_per_breed + 1):
            name = f"{breed}_{number}"
            centre = tuple(rng.uniform(0.35, 0.65, 2) * size)
            mask, stripes = _blob(rng, size, class_id - 1, centre, rng.uniform(0.2, 0.3) * size)
            image = _background(rng, size)
            _paint(rng, image, mask, stripes)
            _save_jpeg(image, root / "images" / f"{name}.jpg")
            trimap = np.where(mask, 1, 2).astype(np.uint8)
            trimap[_border(mask)] = 3
            Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
            split = "test" if number > images_per_breed - test_count else "trainval"
            rows.append((split, f"{name} {class_id} {species} {breed_id}"))
    header = (
        "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n#BREED ID: 1-25:Dog 1:12:Cat\n"
    )
    (root / "annotations" / "list.txt").write_text(header + "\n".join(r for _, r in rows) + "\n")
    for split in ("trainval", "test"):
        (root / "annotations" / f"{split}.txt").write_text("\n".join(r for s, r in rows if s == split) + "\n")
    return root


def _voc_palette() -> List[int]:
    """The VOC colour map (bit-interleaved), 256 entries."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_demo_voc(
    out: PathLike, num_images: int = 120, size: int = 128, val_fraction: float = 0.25, seed: int = 0
) -> Path:
    """Write ``out/VOCdevkit/VOC2012`` in the devkit layout and return it.

    Each image holds one to three objects of the 20 classes; the palette PNG masks carry the class index and a
    255 border around every object, as VOC's do.

    Args:
        out: the parent folder.
        num_images: images in ``trainval.txt`` (split into ``train.txt`` and ``val.txt``).
        size: square image size in pixels.
        val_fraction: share of images in ``val.txt``.
        seed: the data is a pure function of it.
    """
    root = Path(out) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = _voc_palette()
    names = []
    for number in range(num_images):
        name = f"2007_{number:06d}"
        image = _background(rng, size)
        label = np.zeros((size, size), np.uint8)
        border = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(0, 20))
            centre = tuple(rng.uniform(0.25, 0.75, 2) * size)
            mask, stripes = _blob(rng, size, kind, centre, rng.uniform(0.1, 0.2) * size)
            _paint(rng, image, mask, stripes)
            label[mask] = kind + 1
            border |= _border(mask, 1)
        label[border] = 255
        _save_jpeg(image, root / "JPEGImages" / f"{name}.jpg")
        mask_image = Image.fromarray(label, mode="P")
        mask_image.putpalette(palette)
        mask_image.save(root / "SegmentationClass" / f"{name}.png")
        names.append(name)
    val_count = max(1, round(num_images * val_fraction)) if num_images > 1 else 0
    splits = {"train": names[: num_images - val_count], "val": names[num_images - val_count :], "trainval": names}
    for split, members in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return root


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("pet", "voc"), required=True)
    parser.add_argument("--out", default="data")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--count", type=int, default=None, help="pet: images per breed (6); voc: images (120)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.dataset == "pet":
        root = write_demo_pet(args.out, args.count or 6, args.size, seed=args.seed)
    else:
        root = write_demo_voc(args.out, args.count or 120, args.size, seed=args.seed)
    print(f"wrote {root}")


if __name__ == "__main__":
    main()
