"""Demo data in the exact Medical Segmentation Decathlon layout, for machines that cannot download MSD.

``python -m monai_onenet.data.demo_msd --task Task02_Heart --out data`` writes ``data/Task02_Heart/`` with
``dataset.json``, ``imagesTr/``, ``labelsTr/`` and ``imagesTs/``: NIfTI volumes with the real task's voxel
spacing, an MSD-like (LPS-flipped) affine, int16 MRI-like intensities and the real task's label values.
``monai.apps.DecathlonDataset(root_dir="data", task="Task02_Heart")`` reads it as it reads the real task.

The volumes are synthetic anatomy, built so that a threshold cannot segment them:

* Heart (Task02): a thorax with two lungs and five blood-filled structures (left and right ventricles and
  atria, aorta) that share one intensity distribution; only the left atrium is labelled, so a model must use
  its position, shape and the pulmonary veins that enter it. Each case has its own pose, size, contrast,
  bias field and Rician noise.
* Brain tumour (Task01): a skull-stripped brain with white and grey matter and ventricles in four
  channels (FLAIR, T1w, T1gd, T2w), and an irregular tumour: edema (1), a non-enhancing core (2) and an
  enhancing rim (3). Every class is told apart only by combining channels (CSF and edema are both bright on
  T2w; only FLAIR separates them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["DemoTask", "DEMO_TASKS", "make_heart_case", "make_brain_case", "write_demo_task"]


@dataclass(frozen=True)
class DemoTask:
    """What the generator writes for one MSD task: names, geometry and the case maker."""

    task: str
    prefix: str
    shape: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    modality: Dict[str, str]
    labels: Dict[str, str]
    make_case: Callable[[np.random.Generator, Tuple[int, int, int]], Tuple[np.ndarray, np.ndarray]]
    num_training: int = 20
    num_test: int = 4
    description: str = ""
    reference: str = field(default="monai_onenet synthetic demo data (not real patients)")


def _grid(shape: Sequence[int]) -> List[np.ndarray]:
    """Voxel coordinates normalised to [-1, 1] along each axis."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return list(np.meshgrid(*axes, indexing="ij"))


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid, cubically zoomed to ``shape``."""
    coarse = rng.uniform(-1.0, 1.0, size=[cells] * len(shape)).astype(np.float32)
    zoomed = ndimage.zoom(coarse, [n / cells for n in shape], order=3, mode="nearest")
    return np.clip(zoomed[tuple(slice(0, n) for n in shape)], -1.0, 1.0)


def _ellipsoid(coords: Sequence[np.ndarray], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Normalised ellipsoid distance: < 1 inside."""
    return sum(((c - m) / r) ** 2 for c, m, r in zip(coords, centre, radii))


def _posed_grid(
    rng: np.random.Generator, shape: Sequence[int], max_angle: float, scale: Tuple[float, float], shift: float
) -> List[np.ndarray]:
    """Coordinates of a randomly rotated (about the last axis), scaled and shifted anatomy."""
    x, y, z = _grid(shape)
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    s = rng.uniform(*scale)
    dx, dy, dz = rng.uniform(-shift, shift, size=3)
    xr = (math.cos(angle) * x - math.sin(angle) * y) / s + dx
    yr = (math.sin(angle) * x + math.cos(angle) * y) / s + dy
    return [xr, yr, z / s + dz]


def _mri(rng: np.random.Generator, clean: np.ndarray, noise: float, bias: float, cells: int = 3) -> np.ndarray:
    """A multiplicative bias field and Rician noise, as a magnitude MR image has."""
    field_ = 1.0 + bias * _smooth_noise(rng, clean.shape, cells)
    signal = clean * field_
    real = signal + rng.normal(0.0, noise, clean.shape)
    imag = rng.normal(0.0, noise, clean.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def make_heart_case(rng: np.random.Generator, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One cardiac MRI-like volume (1 channel) and its left-atrium label (0/1), axes in RAS voxel order.

    Args:
        rng: the random generator; one case per call.
        shape: (x, y, z) voxels, x towards the patient's left, y anterior, z superior.

    Returns:
        ``(image, label)``: float32 image of ``shape`` and uint8 label of ``shape``.

    Example:
        >>> image, label = make_heart_case(np.random.default_rng(0), (48, 48, 16))
        >>> image.shape, sorted(np.unique(label).tolist())
        ((48, 48, 16), [0, 1])
    """
    x, y, z = _posed_grid(rng, shape, max_angle=15.0, scale=(0.85, 1.15), shift=0.08)
    wobble = 0.12 * _smooth_noise(rng, shape, 4)
    image = np.full(shape, 0.02, np.float32)
    body = _ellipsoid((x, y), (0.0, 0.0), (0.95, 0.75)) + wobble < 1.0
    image[body] = rng.uniform(0.25, 0.35)
    for side in (-1.0, 1.0):
        lung = _ellipsoid((x, y, z), (side * 0.5, -0.05, 0.0), (0.3, 0.45, 1.4)) + wobble < 1.0
        image[lung & body] = rng.uniform(0.04, 0.08)

    def blood() -> float:
        return float(rng.uniform(0.65, 0.95))

    # Myocardium wraps the ventricles; the chambers below share one blood intensity distribution.
    lv_centre = (0.12 + rng.uniform(-0.03, 0.03), 0.18, -0.15)
    myo = _ellipsoid((x, y, z), lv_centre, (0.26, 0.3, 0.45)) < 1.0
    image[myo] = rng.uniform(0.38, 0.48)
    chambers = {
        "lv": _ellipsoid((x, y, z), lv_centre, (0.17, 0.21, 0.36)) < 1.0,
        "rv": (_ellipsoid((x, y, z), (-0.2, 0.28, -0.1), (0.2, 0.16, 0.35)) < 1.0) & ~myo,
        "ra": _ellipsoid((x, y, z), (-0.25, -0.02, 0.25), (0.15, 0.15, 0.25)) < 1.0,
        "aorta": _ellipsoid((x, y), (-0.02, 0.05), (0.08, 0.08)) + (z < 0.1) * 10.0 < 1.0,
    }
    la_centre = (0.05 + rng.uniform(-0.04, 0.04), -0.22 + rng.uniform(-0.03, 0.03), 0.3 + rng.uniform(-0.05, 0.05))
    la_radii = (0.2 * rng.uniform(0.85, 1.15), 0.12 * rng.uniform(0.85, 1.15), 0.22 * rng.uniform(0.85, 1.15))
    la_shape = 0.25 * _smooth_noise(rng, shape, 5)
    left_atrium = _ellipsoid((x, y, z), la_centre, la_radii) + la_shape < 1.0
    # Pulmonary veins: four tubes running posterolaterally into the atrium, bright but not labelled.
    for side in (-1.0, 1.0):
        for dz in (-0.08, 0.08):
            vein_y = la_centre[1] - 0.12
            vein = _ellipsoid((y, z), (vein_y, la_centre[2] + dz), (0.04, 0.04)) < 1.0
            lateral = (x - la_centre[0]) * side
            chambers[f"vein{side}{dz}"] = vein & (lateral > 0.1) & (lateral < 0.35)
    for mask in chambers.values():
        image[mask & ~left_atrium] = blood()
    image[left_atrium] = blood()
    image = _mri(rng, image, noise=rng.uniform(0.03, 0.06), bias=rng.uniform(0.15, 0.3))
    return image, left_atrium.astype(np.uint8)


def make_brain_case(rng: np.random.Generator, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One skull-stripped multi-parametric brain MRI (4 channels, last axis) and its tumour label.

    Channels follow MSD Task01: FLAIR, T1w, T1gd, T2w. Labels: 0 background, 1 edema, 2 non-enhancing
    tumour, 3 enhancing tumour.

    Args:
        rng: the random generator; one case per call.
        shape: (x, y, z) voxels.

    Returns:
        ``(image, label)``: float32 image of ``shape + (4,)`` and uint8 label of ``shape``.

    Example:
        >>> image, label = make_brain_case(np.random.default_rng(0), (40, 40, 24))
        >>> image.shape, sorted(np.unique(label).tolist())
        ((40, 40, 24, 4), [0, 1, 2, 3])
    """
    x, y, z = _posed_grid(rng, shape, max_angle=10.0, scale=(0.9, 1.1), shift=0.05)
    brain = _ellipsoid((x, y, z), (0, 0, 0), (0.72, 0.85, 0.8)) + 0.1 * _smooth_noise(rng, shape, 4) < 1.0
    white = brain & (_ellipsoid((x, y, z), (0, 0, 0), (0.55, 0.68, 0.6)) + 0.3 * _smooth_noise(rng, shape, 6) < 1.0)
    ventricles = np.zeros(shape, bool)
    for side in (-1.0, 1.0):
        ventricles |= _ellipsoid((x, y, z), (side * 0.12, 0.0, 0.1), (0.07, 0.3, 0.15)) < 1.0
    # The tumour sits in one hemisphere; its parts are nested irregular blobs.
    centre = (rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.35), rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3))
    size = rng.uniform(0.7, 1.3)
    distance = _ellipsoid((x, y, z), centre, (0.13 * size, 0.15 * size, 0.13 * size))
    distance = distance + 0.35 * _smooth_noise(rng, shape, 6)
    edema_extent = rng.uniform(2.8, 4.5)
    label = np.zeros(shape, np.uint8)
    label[(distance < edema_extent) & brain] = 1
    label[distance < 1.0] = 3
    label[distance < rng.uniform(0.35, 0.6)] = 2
    label[~brain] = 0
    ventricles &= label == 0

    #                    FLAIR  T1w   T1gd  T2w
    contrast = {
        "grey": (0.45, 0.40, 0.40, 0.50),
        "white": (0.35, 0.55, 0.55, 0.35),
        "csf": (0.08, 0.15, 0.15, 0.90),
        "edema": (0.80, 0.35, 0.35, 0.85),
        "core": (0.60, 0.25, 0.20, 0.75),
        "enhancing": (0.65, 0.35, 0.95, 0.60),
    }
    regions = {
        "grey": brain & ~white,
        "white": white,
        "csf": ventricles,
        "edema": label == 1,
        "core": label == 2,
        "enhancing": label == 3,
    }
    channels = []
    for channel in range(4):
        clean = np.zeros(shape, np.float32)
        for name, mask in regions.items():
            clean[mask] = contrast[name][channel] * rng.uniform(0.9, 1.1)
        noisy = _mri(rng, clean, noise=rng.uniform(0.02, 0.04), bias=rng.uniform(0.1, 0.2))
        noisy[~brain] = 0.0  # skull-stripped, as the BraTS-derived MSD volumes are
        channels.append(noisy)
    return np.stack(channels, axis=-1), label


DEMO_TASKS: Dict[str, DemoTask] = {
    "Task02_Heart": DemoTask(
        task="Task02_Heart",
        prefix="la",
        shape=(96, 96, 40),
        spacing=(1.25, 1.25, 1.37),
        modality={"0": "MRI"},
        labels={"0": "background", "1": "left atrium"},
        make_case=make_heart_case,
        description="Left atrium segmentation (synthetic demo of MSD Task02_Heart)",
    ),
    "Task01_BrainTumour": DemoTask(
        task="Task01_BrainTumour",
        prefix="BRATS",
        shape=(80, 80, 48),
        spacing=(1.0, 1.0, 1.0),
        modality={"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        labels={"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        make_case=make_brain_case,
        description="Gliomas segmentation necrotic/active tumour and oedema (synthetic demo of MSD Task01)",
    ),
}


def _affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """An LPS-flipped affine like the MSD volumes': x and y decrease in RAS, the volume centred on 0."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * shape[0] / 2, spacing[1] * shape[1] / 2, -spacing[2] * shape[2] / 2]
    return affine


def _to_file_order(volume: np.ndarray) -> np.ndarray:
    """RAS voxel order to the file's LPS-flipped order (x and y reversed)."""
    return np.ascontiguousarray(volume[::-1, ::-1])


def _save(volume: np.ndarray, affine: np.ndarray, path: Path, dtype: type) -> None:
    image = nib.Nifti1Image(volume.astype(dtype), affine)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))


def write_demo_task(
    task: str,
    out: str | os.PathLike,
    num_training: Optional[int] = None,
    num_test: Optional[int] = None,
    shape: Optional[Sequence[int]] = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write one demo MSD task folder under ``out`` and return its path (``out/<task>``).

    Args:
        task: ``"Task02_Heart"`` or ``"Task01_BrainTumour"``.
        out: the folder that will contain the task folder (``DecathlonDataset``'s ``root_dir``).
        num_training: labelled cases in ``imagesTr``/``labelsTr`` (default: the task's).
        num_test: unlabelled cases in ``imagesTs`` (default: the task's).
        shape: (x, y, z) voxels per case (default: the task's); tests pass small shapes.
        seed: the cases are a pure function of the seed.
        progress: show a progress bar.

    Example:
        >>> import tempfile
        >>> folder = write_demo_task("Task02_Heart", tempfile.mkdtemp(), 2, 1, (32, 32, 8), progress=False)
        >>> sorted(p.name for p in folder.iterdir())
        ['dataset.json', 'imagesTr', 'imagesTs', 'labelsTr']
    """
    if task not in DEMO_TASKS:
        raise ValueError(f"unknown task {task!r}; the demo generator knows {sorted(DEMO_TASKS)}.")
    spec = DEMO_TASKS[task]
    num_training = spec.num_training if num_training is None else num_training
    num_test = spec.num_test if num_test is None else num_test
    shape = tuple(shape or spec.shape)
    folder = Path(out) / task
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    affine = _affine(spec.spacing, shape)
    rng = np.random.default_rng(seed)
    training, test = [], []
    cases = range(1, num_training + num_test + 1)
    if progress:
        from tqdm import tqdm

        cases = tqdm(cases, desc=f"demo {task}", unit="case")
    for number in cases:
        image, label = spec.make_case(rng, shape)
        scaled = np.clip(image * 1000.0, 0, 32767)  # int16 MR-like values, as the MSD files store
        name = f"{spec.prefix}_{number:03d}.nii.gz"
        if number <= num_training:
            _save(_to_file_order(scaled), affine, folder / "imagesTr" / name, np.int16)
            _save(_to_file_order(label), affine, folder / "labelsTr" / name, np.uint8)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            _save(_to_file_order(scaled), affine, folder / "imagesTs" / name, np.int16)
            test.append(f"./imagesTs/{name}")
    description = {
        "name": task.split("_", 1)[1],
        "description": spec.description,
        "reference": spec.reference,
        "licence": "CC-BY-SA 4.0 (synthetic data generated by monai_onenet)",
        "release": "monai_onenet demo 1.0",
        "tensorImageSize": "4D" if len(spec.modality) > 1 else "3D",
        "modality": spec.modality,
        "labels": spec.labels,
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }
    (folder / "dataset.json").write_text(json.dumps(description, indent=4))
    return folder


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(DEMO_TASKS), default="Task02_Heart")
    parser.add_argument("--out", default="data", help="folder that will contain <task>/ (DecathlonDataset's root_dir)")
    parser.add_argument("--num-training", type=int, default=None)
    parser.add_argument("--num-test", type=int, default=None)
    parser.add_argument("--shape", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--if-absent", action="store_true", help="do nothing when <out>/<task>/dataset.json exists")
    args = parser.parse_args(argv)
    existing = Path(args.out) / args.task / "dataset.json"
    if args.if_absent and existing.exists():
        print(f"{existing} exists; keeping it.")
        return
    folder = write_demo_task(args.task, args.out, args.num_training, args.num_test, args.shape, args.seed)
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
