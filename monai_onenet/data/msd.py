"""The MSD tasks the bundles train on, and the checks that run before any work starts.

Each check raises an error that names the file (or folder) and the problem, and says how to fix it, before
a single checkpoint or prediction is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import nibabel as nib
import numpy as np

from monai_onenet.config_values import flag

from .files import require_files

__all__ = [
    "MSDTask",
    "MSD_TASKS",
    "check_msd_dataset",
    "check_nifti_inputs",
    "inference_files",
    "missing_dataset_message",
]

PathLike = Union[str, os.PathLike]
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class MSDTask:
    """What the bundles need to know about one Medical Segmentation Decathlon task."""

    name: str
    channels: Tuple[str, ...]
    classes: Tuple[str, ...]
    pixdim: Tuple[float, float, float]
    regions: Dict[str, Tuple[int, ...]] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


MSD_TASKS: Dict[str, MSDTask] = {
    "Task02_Heart": MSDTask(
        name="Task02_Heart", channels=("MRI",), classes=("background", "left atrium"), pixdim=(1.25, 1.25, 1.37)
    ),
    "Task01_BrainTumour": MSDTask(
        name="Task01_BrainTumour",
        channels=("FLAIR", "T1w", "T1gd", "T2w"),
        classes=("background", "edema", "non-enhancing tumour", "enhancing tumour"),
        pixdim=(1.0, 1.0, 1.0),
        # MONAI's and BraTS's usual evaluation regions over the MSD labels.
        regions={"tumour core": (2, 3), "whole tumour": (1, 2, 3), "enhancing tumour": (3,)},
    ),
}


def missing_dataset_message(dataset_dir: PathLike, task: str, problem: str) -> str:
    """The error text for a dataset that is not there: what was looked at, and both ways out."""
    return (
        f"{problem}\n  looked in: {Path(dataset_dir).resolve() / task}\n"
        f"  dataset_dir must be the folder that *contains* {task}/ (DecathlonDataset's root_dir). Either\n"
        f"  - download the real data: add `--download True` (MONAI's DecathlonDataset fetches {task}), or\n"
        f"  - generate demo data in the MSD layout: "
        f"`python -m monai_onenet.data.demo_msd --task {task} --out {dataset_dir}`"
    )


def _open_nifti(path: Path) -> nib.Nifti1Image:
    """The NIfTI image proxy (header read, voxel data not yet); a clear error when it is not a readable NIfTI."""
    try:
        return nib.load(str(path))
    except Exception as error:  # nibabel raises several types for a broken header
        raise ValueError(f"{path}: not a readable NIfTI file ({error}). Replace or re-download it.") from error


def _nifti_header(path: Path) -> Tuple[int, ...]:
    """The shape of a NIfTI file from its header."""
    return tuple(int(n) for n in _open_nifti(path).shape)


def _nifti_files(folder: Path) -> List[Path]:
    """The NIfTI files of a folder, sorted, without hidden files (e.g. macOS ``._*`` companions)."""
    return sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("."))


def _split_channels(shape: Tuple[int, ...]) -> Tuple[Tuple[int, ...], int]:
    """(spatial shape, channels) of an MSD volume: 3D files have one channel, 4D files keep channels last."""
    if len(shape) == 3:
        return shape, 1
    if len(shape) == 4:
        return shape[:3], shape[3]
    raise ValueError(f"expected a 3D or 4D (channels last) volume, got shape {shape}")


def check_msd_dataset(
    dataset_dir: PathLike, task: str, in_channels: int, download: bool = False, section: str = "training"
) -> int:
    """Check an MSD task folder before training or evaluation; return the number of cases checked.

    Reads ``dataset.json`` and every image and label header that it lists (cheap: no voxel data), and checks
    that the files exist and are readable NIfTI, that image and label have the same spatial shape, that
    labels have one channel and that images have ``in_channels`` channels. Voxel-level problems (a truncated
    file, label values outside the task's classes) are caught by
    :class:`monai_onenet.transforms.CheckSegmentationPaird` when the data is first loaded.

    Args:
        dataset_dir: the folder that contains ``<task>/`` (``DecathlonDataset``'s ``root_dir``).
        task: e.g. ``"Task02_Heart"``.
        in_channels: channels the network expects.
        download: when True nothing is checked (``DecathlonDataset`` downloads the task first); ``dataset_dir``
            is created, since ``DecathlonDataset`` requires it to exist.
        section: ``"training"`` (images and labels) or ``"test"`` (images only).

    Raises:
        FileNotFoundError: the task folder, its ``dataset.json``, or a listed file is missing.
        ValueError: an empty task, an unreadable file, mismatched shapes or a wrong channel count.

    Example:
        >>> import tempfile
        >>> from monai_onenet.data.demo_msd import write_demo_task
        >>> root = tempfile.mkdtemp()
        >>> _ = write_demo_task("Task02_Heart", root, 2, 0, (16, 16, 4), progress=False)
        >>> check_msd_dataset(root, "Task02_Heart", in_channels=1)
        2
    """
    if flag(download, "download"):
        Path(dataset_dir).mkdir(parents=True, exist_ok=True)  # DecathlonDataset needs root_dir to exist
        return 0
    folder = Path(dataset_dir) / task
    description_file = folder / "dataset.json"
    if not folder.is_dir():
        raise FileNotFoundError(missing_dataset_message(dataset_dir, task, f"MSD task folder {folder} not found."))
    if not description_file.is_file():
        raise FileNotFoundError(
            missing_dataset_message(
                dataset_dir,
                task,
                f"{description_file} not found: the task folder is empty "
                "or not in the MSD layout (dataset.json, imagesTr/, labelsTr/).",
            )
        )
    try:
        entries = json.loads(description_file.read_text())[section]
    except (json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{description_file}: not a valid MSD dataset.json ({error!r}).") from error
    if not entries:
        raise ValueError(missing_dataset_message(dataset_dir, task, f"{description_file} lists no {section} cases."))
    cases = [entry if isinstance(entry, dict) else {"image": entry} for entry in entries]
    require_files(
        (folder / path for case in cases for path in case.values()),
        str(description_file),
        "\nRestore them, or remove their entries from dataset.json.",
    )
    for case in cases:
        image_path = folder / case["image"]
        image_spatial, channels = _split_channels(_nifti_header(image_path))
        if channels != in_channels:
            raise ValueError(
                f"{image_path}: {channels} channel(s), but the network expects in_channels={in_channels} "
                f"({task} has {MSD_TASKS[task].in_channels if task in MSD_TASKS else '?'}). Check the task or "
                "the bundle's in_channels."
            )
        if "label" in case:
            label_path = folder / case["label"]
            label_shape = _nifti_header(label_path)
            if label_shape != image_spatial:
                raise ValueError(
                    f"{label_path}: label shape {label_shape} differs from image {image_path.name} spatial shape "
                    f"{image_spatial}. Image and label must be voxel-aligned volumes of the same shape."
                )
    return len(cases)


def inference_files(input_path: Optional[PathLike], dataset_dir: PathLike, task: str) -> List[Dict[str, str]]:
    """The images to predict: ``input_path`` (a NIfTI file or a folder of them), else the task's ``imagesTs``.

    Returns:
        ``[{"image": path}, ...]``, sorted.

    Raises:
        FileNotFoundError: nothing to predict, with the place looked at.
    """
    if input_path:
        source = Path(input_path)
        if source.is_file():
            files = [source]
        elif source.is_dir():
            files = _nifti_files(source)
        else:
            raise FileNotFoundError(f"--input {source}: no such file or folder.")
    else:
        source = Path(dataset_dir) / task / "imagesTs"
        if not source.is_dir():
            raise FileNotFoundError(
                missing_dataset_message(dataset_dir, task, f"{source} not found, and no --input was given.")
            )
        files = _nifti_files(source)
    if not files:
        raise FileNotFoundError(f"no NIfTI files (*.nii, *.nii.gz) in {source}.")
    return [{"image": str(path)} for path in files]


def check_nifti_inputs(items: Sequence[Dict[str, str]], in_channels: int) -> int:
    """Read every input volume in full before inference writes anything; return how many were checked.

    Catches unreadable headers, truncated or corrupt voxel data and wrong channel counts, so that a bad file
    stops the run before the first prediction is written rather than halfway through.
    """
    for item in items:
        path = Path(item["image"])
        image = _open_nifti(path)
        _, channels = _split_channels(tuple(int(n) for n in image.shape))
        if channels != in_channels:
            raise ValueError(f"{path}: {channels} channel(s), but the network expects in_channels={in_channels}.")
        try:
            data = np.asanyarray(image.dataobj)
        except Exception as error:
            raise ValueError(
                f"{path}: the voxel data cannot be read ({error}); the file is truncated or corrupt. Replace it."
            ) from error
        if not np.isfinite(data).all():
            raise ValueError(f"{path}: contains NaN or infinite values.")
    return len(items)
