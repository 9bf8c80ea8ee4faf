"""Every bad input stops the run before any output, with an error that names the file and the fix."""

from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import TINY, configs, run_bundle

from monai_onenet.data.demo_msd import write_demo_task
from monai_onenet.data.msd import check_msd_dataset, check_nifti_inputs, inference_files
from monai_onenet.transforms import CheckSegmentationPaird, LoadVolumed, msd_loading

HEART = "Task02_Heart"


@pytest.fixture
def heart_root(tmp_path):
    write_demo_task(HEART, tmp_path, num_training=3, num_test=1, shape=(16, 16, 4), progress=False)
    return tmp_path


def _first_case(root):
    return json.loads((root / HEART / "dataset.json").read_text())["training"][0]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_missing_dataset_names_the_folder_and_both_ways_out(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        check_msd_dataset(tmp_path, HEART, in_channels=1)
    message = str(error.value)
    assert str(tmp_path / HEART) in message and "--download True" in message
    assert f"python -m monai_onenet.data.demo_msd --task {HEART} --out {tmp_path}" in message


def test_empty_task_folder(tmp_path):
    (tmp_path / HEART).mkdir()
    with pytest.raises(FileNotFoundError, match="dataset.json not found"):
        check_msd_dataset(tmp_path, HEART, in_channels=1)


def test_dataset_json_without_cases(heart_root):
    description = json.loads((heart_root / HEART / "dataset.json").read_text())
    description["training"] = []
    (heart_root / HEART / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="lists no training cases"):
        check_msd_dataset(heart_root, HEART, in_channels=1)


def test_dataset_json_listing_missing_files(heart_root):
    label = heart_root / HEART / _first_case(heart_root)["label"]
    label.unlink()
    with pytest.raises(FileNotFoundError, match="do not exist") as error:
        check_msd_dataset(heart_root, HEART, in_channels=1)
    assert str(label) in str(error.value)


def test_corrupt_header(heart_root):
    image = heart_root / HEART / _first_case(heart_root)["image"]
    image.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(ValueError, match="not a readable NIfTI") as error:
        check_msd_dataset(heart_root, HEART, in_channels=1)
    assert str(image) in str(error.value)


def test_truncated_volume_is_named_when_loaded(heart_root):
    image = heart_root / HEART / _first_case(heart_root)["image"]
    _truncate(image)
    with pytest.raises(ValueError, match="corrupt or truncated") as error:
        LoadVolumed("image")({"image": str(image)})
    assert str(image) in str(error.value)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        check_nifti_inputs([{"image": str(image)}], in_channels=1)


def test_image_and_label_of_different_shapes(heart_root):
    case = _first_case(heart_root)
    label = heart_root / HEART / case["label"]
    original = nib.load(str(label))
    nib.save(nib.Nifti1Image(np.zeros((16, 12, 4), np.uint8), original.affine), str(label))
    with pytest.raises(ValueError, match="differs from image") as error:
        check_msd_dataset(heart_root, HEART, in_channels=1)
    assert str(label) in str(error.value)


def test_label_values_outside_the_task_classes(heart_root):
    case = _first_case(heart_root)
    label = heart_root / HEART / case["label"]
    original = nib.load(str(label))
    values = np.asarray(original.dataobj).copy()
    values[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(values, original.affine), str(label))
    loading = msd_loading((1.25, 1.25, 1.37), in_channels=1, num_classes=2)
    data = {"image": str(heart_root / HEART / case["image"]), "label": str(label)}
    with pytest.raises(ValueError, match=r"label values \[7\] are not classes of this task \(0..1\)") as error:
        for transform in loading:
            data = transform(data)
    assert str(label) in str(error.value)


@pytest.mark.parametrize("in_channels", [2, 4])
def test_wrong_number_of_channels(heart_root, in_channels):
    with pytest.raises(ValueError, match=f"expects in_channels={in_channels}"):
        check_msd_dataset(heart_root, HEART, in_channels=in_channels)
    with pytest.raises(ValueError, match=f"expects in_channels={in_channels}"):
        CheckSegmentationPaird("image", None, in_channels, 2)({"image": torch.zeros(1, 8, 8, 4)})


def test_inference_input_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        inference_files(tmp_path / "nothing.nii.gz", tmp_path, HEART)
    with pytest.raises(FileNotFoundError, match="no NIfTI files"):
        inference_files(tmp_path, tmp_path, HEART)


@pytest.mark.slow
def test_training_on_a_missing_dataset_writes_nothing(tmp_path):
    result = run_bundle(
        "training",
        configs("heart", "train.json"),
        ["--dataset_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "out"), *TINY],
        check=False,
    )
    assert result.returncode != 0
    assert "--download True" in result.stderr + result.stdout and "demo_msd" in result.stderr + result.stdout
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_training_with_a_truncated_label_names_it_and_writes_nothing(heart_root, tmp_path):
    label = heart_root / HEART / _first_case(heart_root)["label"]
    _truncate(label)
    result = run_bundle(
        "training",
        configs("heart", "train.json"),
        ["--dataset_dir", str(heart_root), "--output_dir", str(tmp_path / "out"), *TINY, "--epochs", "1"],
        check=False,
    )
    assert result.returncode != 0 and label.name in result.stderr + result.stdout
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_inference_with_one_corrupt_input_writes_no_prediction(heart_root, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    source = next((heart_root / HEART / "imagesTs").glob("*.nii.gz"))
    shutil.copy(source, inputs / "a_good.nii.gz")
    shutil.copy(source, inputs / "b_bad.nii.gz")
    _truncate(inputs / "b_bad.nii.gz")
    model = tmp_path / "model.pt"
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs("heart", "inference.json"))
    parser["network_def"]["channels"] = [8, 16, 32, 64, 128]
    torch.save(parser.get_parsed_content("network_def").state_dict(), model)
    result = run_bundle(
        "inference",
        configs("heart", "inference.json"),
        ["--input", str(inputs), "--output_dir", str(tmp_path / "out"), "--ckpt_path", str(model), *TINY],
        check=False,
    )
    assert result.returncode != 0 and "b_bad.nii.gz" in result.stderr + result.stdout
    assert not (tmp_path / "out" / "predictions").exists()


@pytest.mark.slow
def test_evaluation_without_a_trained_model_says_how_to_get_one(heart_root, tmp_path):
    result = run_bundle(
        "evaluating",
        configs("heart", "train.json", "evaluate.json"),
        ["--dataset_dir", str(heart_root), "--output_dir", str(tmp_path / "out"), *TINY],
        check=False,
    )
    assert result.returncode != 0 and "no trained model at" in result.stderr + result.stdout
