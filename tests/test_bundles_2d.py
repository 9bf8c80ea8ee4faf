"""The Pet and VOC bundles end to end through `python -m monai.bundle`, on generated trees in the real layouts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from bundle_utils import (
    BUNDLES,
    check_two_epochs_written,
    configs,
    overrides,
    run_bundle,
    run_bundle_on_two_processes,
    train_two_epochs,
)
from monai.bundle import ConfigParser
from PIL import Image

import monai_onenet  # noqa: F401  (registers OneNet for the configs)
from monai_onenet.data.pet import pet_datalist
from monai_onenet.data.voc import voc_datalist

pytestmark = pytest.mark.slow

TINY_2D = ["--image_size", "[32,32]", "--network_def#channels", "[8,16,32,64,128]", "--batch_size", "8"]
NUM_CLASSES = {"pet": 38, "voc": 21}


def common(root, output_dir, *extra):
    return overrides(root, output_dir, TINY_2D, *extra)


@pytest.fixture(scope="module", params=["pet", "voc"])
def trained(request, demo_2d_root, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp(f"run_{request.param}")
    return request.param, output_dir, train_two_epochs(request.param, demo_2d_root, output_dir, TINY_2D)


def test_training_writes_checkpoints_curves_and_a_pooled_report(trained):
    bundle, output_dir, result = trained
    check_two_epochs_written(output_dir, "val_miou")
    summary = json.loads((output_dir / "validation" / "metrics.json").read_text())["summary"]
    assert summary["pooled"] is True and 0.0 <= summary["miou"] <= 1.0
    assert summary["cases"] == (4 if bundle == "pet" else 2)  # Pet: 10% of trainval, one image of 4 breeds
    assert list((output_dir / "validation" / "overlays").glob("*.png"))
    if bundle == "pet":
        classification = summary["classification"]
        assert len(classification["confusion"]) == 37
        assert sum(map(sum, classification["confusion"])) == summary["cases"]
        assert (output_dir / "validation" / "confusion.png").stat().st_size > 0
        assert "classification top-1" in result.stdout + result.stderr


def test_evaluate_reports_table1_columns_on_the_held_out_split(trained, demo_2d_root):
    bundle, output_dir, result = trained
    result = run_bundle("evaluating", configs(bundle, "train.json", "evaluate.json"), common(demo_2d_root, output_dir))
    summary = json.loads((output_dir / "eval" / "metrics.json").read_text())["summary"]
    for key in ("miou", "map50", "cross_entropy", "mean_dice"):
        assert key in summary
    assert summary["cross_entropy"] > 0
    expected = len(pet_datalist(demo_2d_root, "test")) if bundle == "pet" else len(voc_datalist(demo_2d_root, "val"))
    assert summary["cases"] == expected
    assert ("classification" in summary) == (bundle == "pet")
    assert "mIoU" in result.stdout + result.stderr


def test_inference_writes_masks_at_each_images_own_size(trained, demo_2d_root, tmp_path):
    bundle, output_dir, _ = trained
    picture = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "wide.jpg")
    out = tmp_path / "out"
    ckpt = str(output_dir / "models" / "model.pt")
    run_bundle(
        "inference",
        configs(bundle, "inference.json"),
        common(demo_2d_root, out, "--input", str(tmp_path / "wide.jpg"), "--ckpt_path", ckpt),
    )
    mask = np.asarray(Image.open(out / "predictions" / "wide_seg.png"))
    assert mask.shape == (40, 56) and mask.max() < NUM_CLASSES[bundle]
    if bundle == "pet":
        rows = list(csv.reader((out / "predictions" / "classes.csv").open()))
        assert len(rows) == 1 and rows[0][0].endswith("wide.jpg") and 0 <= float(rows[0][1]) < 37


def test_inference_defaults_to_the_held_out_split(trained, demo_2d_root):
    bundle, output_dir, _ = trained
    run_bundle("inference", configs(bundle, "inference.json"), common(demo_2d_root, output_dir))
    items = pet_datalist(demo_2d_root, "test") if bundle == "pet" else voc_datalist(demo_2d_root, "val")
    masks = sorted(p.name for p in (output_dir / "predictions").glob("*_seg.png"))
    assert masks == sorted(f"{item['name']}_seg.png" for item in items)


def test_pet_trimap_target_trains_segmentation_only(demo_2d_root, tmp_path):
    args = common(demo_2d_root, tmp_path, "--target", "trimap", "--classify", "false", "--epochs", "1")
    run_bundle("training", configs("pet", "train.json"), args + ["--val_interval", "1"])
    summary = json.loads((tmp_path / "validation" / "metrics.json").read_text())["summary"]
    assert set(summary["iou"]) == {"pet", "border"} and "classification" not in summary
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu")
    assert not any(key.startswith("classifier") for key in state)


def test_missing_dataset_names_the_fix(tmp_path):
    result = run_bundle("training", configs("voc", "train.json"), common(tmp_path, tmp_path / "out"), check=False)
    assert result.returncode != 0
    assert "PASCAL VOC 2012 not found" in result.stderr and "demo_2d --dataset voc" in result.stderr


SHARED_BLOCKS = (
    "optimizer",
    "lr_scheduler",
    "train#dataloader",
    "train#handlers",
    "validate#dataloader",
    "validate#best_saver",
    "validate#handlers",
    "validate#evaluator",
)


@pytest.mark.parametrize("bundle", ["brain", "pet", "voc"])
def test_engine_wiring_is_the_heart_bundles(bundle):
    """Every bundle is self-contained (MONAI Label and the model zoo read one folder), so the engine wiring is
    written out in each; this keeps those blocks identical to the heart bundle's, so they cannot drift apart."""

    def block(name: str, key: str):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES[name] / "configs" / "train.json"))
        return parser.get(key)

    for key in SHARED_BLOCKS:
        assert block(bundle, key) == block("heart", key), f"{bundle}: {key} differs from the heart bundle's"
    trainer = block(bundle, "train#trainer")
    trainer.pop("prepare_batch", None)  # Pet's unified batches: image, (label, breed)
    assert trainer == block("heart", "train#trainer")


def test_two_process_ddp_trains_the_unified_pet_bundle(demo_2d_root, tmp_path):
    """`torchrun --nproc_per_node 2` with gloo: segmentation + classification under DistributedDataParallel."""
    args = common(demo_2d_root, tmp_path, "--epochs", "1", "--val_interval", "1")
    run_bundle_on_two_processes(configs("pet", "train.json", "multi_gpu_train.json"), args)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and 0 <= history[0]["val_miou"] <= 1
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu")
    assert any(key.startswith("classifier") for key in state)  # saved unwrapped, head included


def test_resuming_with_another_network_names_the_clash(trained, demo_2d_root):
    bundle, output_dir, _ = trained
    args = common(demo_2d_root, output_dir, "--epochs", "3", "--network_def#channels", "[8,16,32,64,64]")
    result = run_bundle("training", configs(bundle, "train.json"), args, check=False)
    assert result.returncode != 0
    assert "holds a run of a different network" in result.stderr and "--output_dir" in result.stderr
