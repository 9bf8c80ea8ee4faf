"""An MSD task as in-memory 2D axial slices, split by case, for the accuracy benchmark."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

import torch
from monai.apps import DecathlonDataset
from monai.transforms import Compose, Resized
from tqdm import tqdm

from monai_onenet.data.msd import MSD_TASKS, check_msd_dataset
from monai_onenet.transforms import msd_loading

__all__ = ["SliceSet", "load_slice_set"]


@dataclass
class SliceSet:
    """Training slices, and validation volumes kept whole so that Dice is measured per 3D case.

    Attributes:
        train_images: ``(N, C, size, size)`` float32.
        train_labels: ``(N, 1, size, size)`` int64 class indices.
        val_cases: per validation case, ``(images (S, C, size, size), labels (S, 1, size, size))``.
        num_classes: classes including the background.
        in_channels: image channels.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_cases: List[Tuple[torch.Tensor, torch.Tensor]]
    num_classes: int
    in_channels: int


def _to_slices(item: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(C, H, W, D)`` image and label -> ``(D, C, H, W)`` float and ``(D, 1, H, W)`` long."""
    image = torch.as_tensor(item["image"]).float().permute(3, 0, 1, 2).contiguous()
    label = torch.as_tensor(item["label"]).long().permute(3, 0, 1, 2).contiguous()
    return image, label


def load_slice_set(
    dataset_dir: str | os.PathLike,
    task: str,
    size: int = 96,
    val_frac: float = 0.2,
    background_ratio: float = 1.0,
    split_seed: int = 0,
    download: bool = False,
) -> SliceSet:
    """Load an MSD task through ``DecathlonDataset`` (the bundles' preprocessing), resampled and resized in-plane.

    The cases of ``imagesTr`` are split into training and validation by ``DecathlonDataset`` itself
    (``val_frac``, ``split_seed``). Training keeps every slice with foreground and ``background_ratio`` times as
    many background-only slices (chosen with ``split_seed``); validation keeps every slice.

    Args:
        dataset_dir: the folder holding ``<task>/``.
        task: an MSD task name, e.g. ``"Task02_Heart"``.
        size: in-plane size every slice is resized to (a multiple of 32 suits every benchmark model).
        val_frac: share of cases held out for validation.
        background_ratio: background-only training slices per foreground slice.
        split_seed: seed of the case split and of the background slice choice.
        download: let ``DecathlonDataset`` download the task first.
    """
    if task not in MSD_TASKS:
        raise ValueError(f"unknown MSD task {task!r}; known: {', '.join(MSD_TASKS)}")
    info = MSD_TASKS[task]
    check_msd_dataset(dataset_dir, task, info.in_channels, download)
    transform = Compose(
        msd_loading(info.pixdim, info.in_channels, info.num_classes)
        + [Resized(["image", "label"], spatial_size=(size, size, -1), mode=("area", "nearest"))]
    )
    sections = {}
    for section in ("training", "validation"):
        dataset = DecathlonDataset(
            dataset_dir,
            task,
            section,
            transform=transform,
            download=download and section == "training",
            val_frac=val_frac,
            seed=split_seed,
            cache_rate=0.0,
            num_workers=0,
            progress=False,
        )
        if len(dataset) == 0:
            raise ValueError(f"{task}: no {section} cases with val_frac={val_frac}; use more cases or change it.")
        sections[section] = [_to_slices(dataset[i]) for i in tqdm(range(len(dataset)), desc=f"loading {section}")]

    images = torch.cat([image for image, _ in sections["training"]])
    labels = torch.cat([label for _, label in sections["training"]])
    has_foreground = labels.flatten(1).amax(dim=1) > 0
    foreground = torch.nonzero(has_foreground).flatten()
    background = torch.nonzero(~has_foreground).flatten()
    generator = torch.Generator().manual_seed(split_seed)
    keep_background = min(len(background), int(round(background_ratio * len(foreground))))
    background = background[torch.randperm(len(background), generator=generator)[:keep_background]]
    keep = torch.cat([foreground, background]).sort().values
    return SliceSet(images[keep], labels[keep], sections["validation"], info.num_classes, info.in_channels)
