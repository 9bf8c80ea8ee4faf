"""Oxford-IIIT Pet as MONAI data dicts, read from the official archives' layout.

``root`` is the folder holding ``images/`` and ``annotations/`` or its parent ``oxford-iiit-pet/`` (as
torchvision downloads it)::

    images/Abyssinian_1.jpg ...
    annotations/trimaps/Abyssinian_1.png     1 = pet, 2 = background, 3 = border
    annotations/list.txt                     "#" header, then: Image CLASS-ID SPECIES BREED-ID
    annotations/trainval.txt, test.txt       the same columns, one split each
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple, Union

from .files import find_or_download, require_files

__all__ = [
    "PET_BREEDS",
    "PET_CATS",
    "PET_DOGS",
    "PET_IGNORE",
    "PET_TARGETS",
    "check_pet",
    "find_pet_root",
    "pet_class_names",
    "pet_datalist",
    "read_pet_list",
]

PathLike = Union[str, os.PathLike]
PET_TARGETS = ("trimap", "breed")
PET_IGNORE = 255
# The official archives (MD5 as torchvision pins them).
PET_ARCHIVES = (
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
)

# Trimap values to the "trimap" target's classes: background 0, pet 1, border 2.
TRIMAP_CLASSES = {2: 0, 1: 1, 3: 2}

PET_CATS = (
    "Abyssinian",
    "Bengal",
    "Birman",
    "Bombay",
    "British_Shorthair",
    "Egyptian_Mau",
    "Maine_Coon",
    "Persian",
    "Ragdoll",
    "Russian_Blue",
    "Siamese",
    "Sphynx",
)
PET_DOGS = (
    "american_bulldog",
    "american_pit_bull_terrier",
    "basset_hound",
    "beagle",
    "boxer",
    "chihuahua",
    "english_cocker_spaniel",
    "english_setter",
    "german_shorthaired",
    "great_pyrenees",
    "havanese",
    "japanese_chin",
    "keeshond",
    "leonberger",
    "miniature_pinscher",
    "newfoundland",
    "pomeranian",
    "pug",
    "saint_bernard",
    "samoyed",
    "scottish_terrier",
    "shiba_inu",
    "staffordshire_bull_terrier",
    "wheaten_terrier",
    "yorkshire_terrier",
)
# CLASS-ID order (1..37): breed names sorted without regard to case; cats are capitalised.
PET_BREEDS: Tuple[str, ...] = tuple(sorted(PET_CATS + PET_DOGS, key=str.lower))


def pet_class_names(target: str = "trimap") -> List[str]:
    """The segmentation classes of a Pet target: background first.

    Example:
        >>> pet_class_names("trimap"), len(pet_class_names("breed")), pet_class_names("breed")[1]
        (['background', 'pet', 'border'], 38, 'Abyssinian')
    """
    if target not in PET_TARGETS:
        raise ValueError(f"target must be one of {PET_TARGETS}, got {target!r}")
    return ["background", "pet", "border"] if target == "trimap" else ["background", *PET_BREEDS]


def check_pet(root: PathLike, download: bool = False) -> Path:
    """Find Pet under ``root`` (see :func:`find_pet_root`); with ``download``, fetch and unpack the official
    archives into ``root/oxford-iiit-pet`` first when it is absent (about 800 MB)."""
    return find_or_download(find_pet_root, root, download, PET_ARCHIVES, into=Path(root) / "oxford-iiit-pet")


def find_pet_root(root: PathLike) -> Path:
    """The folder that holds ``images/`` and ``annotations/``: ``root`` itself or ``root/oxford-iiit-pet``."""
    for candidate in (Path(root), Path(root) / "oxford-iiit-pet"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise FileNotFoundError(
        f"Oxford-IIIT Pet not found under {Path(root).resolve()}: expected images/ and annotations/ there or in "
        "oxford-iiit-pet/. Download and unpack images.tar.gz and annotations.tar.gz from "
        "https://www.robots.ox.ac.uk/~vgg/data/pets/, or generate demo data: "
        f"`python -m monai_onenet.data.demo_2d --dataset pet --out {root}`."
    )


def read_pet_list(path: Path) -> List[Dict[str, object]]:
    """Rows of a Pet list file: ``{"name", "class_id" (1..37), "species" (1 cat, 2 dog), "breed_id"}``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Pet list file not found (it comes with annotations.tar.gz).")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        try:
            name, class_id, species, breed_id = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
        except (IndexError, ValueError) as error:
            raise ValueError(f"{path}:{number}: expected 'Image CLASS-ID SPECIES BREED-ID', got {line!r}") from error
        if not 1 <= class_id <= 37 or species not in (1, 2):
            raise ValueError(f"{path}:{number}: CLASS-ID must be 1..37 and SPECIES 1 or 2, got {line!r}")
        rows.append({"name": name, "class_id": class_id, "species": species, "breed_id": breed_id})
    return rows


def pet_datalist(root: PathLike, split: str = "trainval") -> List[Dict[str, object]]:
    """MONAI data dicts for one split of Oxford-IIIT Pet.

    Args:
        root: see the module docstring.
        split: ``"trainval"`` or ``"test"`` (the official list files).

    Returns:
        ``[{"image": jpg, "label": trimap png, "name", "breed": 0..36, "species": 0 cat / 1 dog}, ...]``:
        zero-based image-level labels; :class:`monai_onenet.transforms.PetTargetd` turns the trimap into the
        chosen segmentation target.

    Raises:
        FileNotFoundError: the folder, the list file, an image or a trimap is missing (each named).

    Example:
        >>> import tempfile
        >>> from monai_onenet.data.demo_2d import write_demo_pet
        >>> root = write_demo_pet(tempfile.mkdtemp(), images_per_breed=1, size=32)
        >>> items = pet_datalist(root, "trainval")
        >>> sorted(items[0]), items[0]["breed"] in range(37)
        (['breed', 'image', 'label', 'name', 'species'], True)
    """
    if split not in ("trainval", "test"):
        raise ValueError(f"split must be 'trainval' or 'test', got {split!r}")
    folder = find_pet_root(root)
    items = []
    for row in read_pet_list(folder / "annotations" / f"{split}.txt"):
        items.append(
            {
                "image": str(folder / "images" / f"{row['name']}.jpg"),
                "label": str(folder / "annotations" / "trimaps" / f"{row['name']}.png"),
                "name": row["name"],
                "breed": row["class_id"] - 1,
                "species": row["species"] - 1,
            }
        )
    require_files((item[key] for item in items for key in ("image", "label")), f"{split}.txt")
    return items
