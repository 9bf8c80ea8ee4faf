"""A user's own 2D data: an images folder and a masks folder matched by file stem, and optional image labels."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

__all__ = ["IMAGE_SUFFIXES", "PICTURE_SUFFIXES", "folder_datalist", "image_inputs"]

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # what the 2D bundles read (through PIL)


def _stem(path: Path) -> str:
    return path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem


def _images(folder: Path, suffixes: Sequence[str]) -> Dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found.")
    files = {_stem(p): p for p in sorted(folder.iterdir()) if p.name.lower().endswith(tuple(suffixes))}
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(suffixes)}).")
    return files


def folder_datalist(
    images_dir: PathLike,
    masks_dir: Optional[PathLike] = None,
    labels_csv: Optional[PathLike] = None,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> List[Dict[str, object]]:
    """MONAI data dicts from an images folder, a masks folder matched by stem, and an optional label CSV.

    Args:
        images_dir: the images.
        masks_dir: masks with the same stems (any of ``suffixes``); None for classification or inference only.
        labels_csv: optional CSV with a header ``image,label``: an image stem (or file name) and an integer
            image-level label, stored as ``"class_label"``.
        suffixes: file endings that count as images.

    Raises:
        FileNotFoundError: a folder is missing or empty.
        ValueError: images without masks, masks without images, or images missing from the CSV (all listed).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for sub in ("img", "seg"):
        ...     (root / sub).mkdir()
        ...     _ = (root / sub / "case1.png").write_bytes(b"")
        >>> [sorted(d) for d in folder_datalist(root / "img", root / "seg")]
        [['image', 'label', 'name']]
    """
    images = _images(Path(images_dir), suffixes)
    items: List[Dict[str, object]] = [{"image": str(path), "name": stem} for stem, path in images.items()]
    if masks_dir is not None:
        masks = _images(Path(masks_dir), suffixes)
        unmatched = [f"image without mask: {images[s]}" for s in images if s not in masks]
        unmatched += [f"mask without image: {masks[s]}" for s in masks if s not in images]
        if unmatched:
            raise ValueError(f"{len(unmatched)} file(s) do not pair by name:\n  " + "\n  ".join(unmatched[:20]))
        for item in items:
            item["label"] = str(masks[item["name"]])
    if labels_csv is not None:
        with open(labels_csv, newline="") as file:
            reader = csv.DictReader(file)
            if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
                raise ValueError(f"{labels_csv}: expected a header with columns 'image' and 'label'.")
            labels = {}
            for row in reader:
                try:
                    labels[_stem(Path(row["image"]))] = int(row["label"])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{labels_csv}, line {reader.line_num}: label {row['label']!r} of {row['image']!r} is not "
                        "an integer class index."
                    ) from None
        absent = [str(images[item["name"]]) for item in items if item["name"] not in labels]
        if absent:
            raise ValueError(f"{labels_csv} has no label for:\n  " + "\n  ".join(absent[:20]))
        for item in items:
            item["class_label"] = labels[item["name"]]
    return items


def image_inputs(
    input_path: Optional[PathLike],
    default: Sequence[Dict[str, object]] = (),
    suffixes: Sequence[str] = PICTURE_SUFFIXES,
) -> List[Dict[str, object]]:
    """The pictures to predict: ``input_path`` (an image file or a folder of them), else ``default`` (a dataset's
    test split), as ``[{"image": path, "name": stem}, ...]``.

    Raises:
        FileNotFoundError: ``input_path`` does not exist, or there is nothing to predict.
        ValueError: ``input_path`` is a file of another kind than ``suffixes``.

    Example:
        >>> image_inputs("", [{"image": "a.jpg", "name": "a", "label": "a.png"}])
        [{'image': 'a.jpg', 'name': 'a'}]
    """
    if input_path:
        source = Path(input_path)
        if source.is_file():
            if not source.name.lower().endswith(tuple(suffixes)):
                raise ValueError(f"--input {source}: not a picture this bundle reads ({', '.join(suffixes)}).")
            return [{"image": str(source), "name": _stem(source)}]
        if not source.is_dir():
            raise FileNotFoundError(f"--input {source}: no such file or folder.")
        return [{"image": str(path), "name": stem} for stem, path in _images(source, suffixes).items()]
    if not default:
        raise FileNotFoundError("nothing to predict: give --input (an image or a folder of images).")
    return [{"image": str(item["image"]), "name": item["name"]} for item in default]
