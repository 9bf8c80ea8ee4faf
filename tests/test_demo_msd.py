"""The demo generator writes the real MSD layout, which MONAI reads, with anatomy a threshold cannot segment."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from monai.apps import DecathlonDataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_onenet.data.demo_msd import main, make_brain_case, make_heart_case, write_demo_task


@pytest.mark.parametrize(
    "task, channels, labels",
    [("Task02_Heart", 1, {0, 1}), ("Task01_BrainTumour", 4, {0, 1, 2, 3})],
)
def test_decathlon_dataset_reads_the_demo_task(demo_root, task, channels, labels):
    transform = [LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])]
    dataset = DecathlonDataset(
        demo_root, task, "training", transform=Compose(transform), download=False, cache_rate=0.0, val_frac=0.2
    )
    item = dataset[0]
    assert item["image"].shape == (channels, 32, 32, 8) and item["label"].shape == (1, 32, 32, 8)
    assert set(np.unique(item["label"].numpy()).astype(int).tolist()) <= labels
    description = json.loads((demo_root / task / "dataset.json").read_text())
    assert description["numTraining"] == 6 and len(description["test"]) == 2
    assert set(description["labels"]) == {str(v) for v in labels}


def test_files_carry_the_real_task_spacing_and_an_lps_affine(demo_root):
    image = nib.load(str(demo_root / "Task02_Heart" / "imagesTr" / "la_001.nii.gz"))
    np.testing.assert_allclose(np.diag(image.affine)[:3], [-1.25, -1.25, 1.37])
    assert image.get_data_dtype() == np.int16


def test_generation_is_a_function_of_the_seed(tmp_path):
    a = write_demo_task("Task02_Heart", tmp_path / "a", 1, 0, (24, 24, 6), seed=3, progress=False)
    b = write_demo_task("Task02_Heart", tmp_path / "b", 1, 0, (24, 24, 6), seed=3, progress=False)
    c = write_demo_task("Task02_Heart", tmp_path / "c", 1, 0, (24, 24, 6), seed=4, progress=False)
    load = lambda folder: np.asarray(nib.load(str(folder / "imagesTr" / "la_001.nii.gz")).dataobj)  # noqa: E731
    assert np.array_equal(load(a), load(b)) and not np.array_equal(load(a), load(c))


def _best_threshold_dice(image: np.ndarray, mask: np.ndarray) -> float:
    best = 0.0
    for level in np.quantile(image, np.linspace(0.5, 0.999, 60)):
        for predicted in (image > level, image < level):
            dice = 2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())
            best = max(best, float(dice))
    return best


@pytest.mark.parametrize(
    "maker, cls, bound",
    [
        (make_heart_case, 1, 0.5),  # the left atrium shares its intensity with four other blood pools
        (make_brain_case, 1, 0.7),  # edema is FLAIR-bright, as in real MRI, but so are other structures
        (make_brain_case, 2, 0.5),
        (make_brain_case, 3, 0.5),
    ],
)
def test_no_intensity_threshold_segments_the_structures(maker, cls, bound):
    """Even the best threshold on the best channel, chosen with the ground truth in hand, stays far from a
    learned model (the heart bundle reaches Dice > 0.9 on these volumes)."""
    image, label = maker(np.random.default_rng(0), (64, 64, 24))
    channels = [image] if image.ndim == 3 else [image[..., c] for c in range(image.shape[-1])]
    assert max(_best_threshold_dice(channel, label == cls) for channel in channels) < bound


def test_cli_if_absent_keeps_existing_data(tmp_path, capsys):
    main(
        [
            "--task",
            "Task02_Heart",
            "--out",
            str(tmp_path),
            "--num-training",
            "1",
            "--num-test",
            "0",
            "--shape",
            "16",
            "16",
            "4",
        ]
    )
    main(["--task", "Task02_Heart", "--out", str(tmp_path), "--if-absent"])
    assert "keeping it" in capsys.readouterr().out
