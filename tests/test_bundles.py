"""The MSD bundles end to end through `python -m monai.bundle`, as the model zoo tests its bundles."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import (
    BUNDLES,
    REPO,
    SCHEMA,
    TASKS,
    TINY,
    bundle_command,
    check_two_epochs_written,
    configs,
    overrides,
    run_bundle,
    run_bundle_on_two_processes,
    train_two_epochs,
)
from monai.bundle import ConfigParser, ckpt_export, verify_metadata, verify_net_in_out

import monai_onenet  # noqa: F401  (registers OneNet for the configs)

pytestmark = pytest.mark.slow


def model_state(path):
    """The model weights of a checkpoint: the best-model file holds them bare, epoch checkpoints under "model"."""
    checkpoint = torch.load(path, map_location="cpu")
    return checkpoint["model"] if "optimizer" in checkpoint else checkpoint


def common(demo_root, output_dir, *extra):
    return overrides(demo_root, output_dir, TINY, *extra)


@pytest.fixture(scope="module", params=["heart", "brain"])
def trained(request, demo_root, tmp_path_factory):
    """A bundle trained for two epochs on the tiny data (validation every epoch)."""
    output_dir = tmp_path_factory.mktemp(f"run_{request.param}")
    return request.param, output_dir, train_two_epochs(request.param, demo_root, output_dir, TINY)


def test_training_writes_checkpoints_curves_and_validation_report(trained):
    bundle, output_dir, result = trained
    check_two_epochs_written(output_dir, "val_mean_dice")
    assert (output_dir / "curves.png").stat().st_size > 0
    report = json.loads((output_dir / "validation" / "metrics.json").read_text())
    assert report["summary"]["cases"] == 1  # 6 cases, val_frac 0.2
    assert "train" in result.stdout + result.stderr  # the progress bar's description


def test_evaluate_writes_table1_metrics_per_case_and_overlays(trained, demo_root):
    bundle, output_dir, _ = trained
    result = run_bundle("evaluating", configs(bundle, "train.json", "evaluate.json"), common(demo_root, output_dir))
    report = json.loads((output_dir / "eval" / "metrics.json").read_text())
    summary = report["summary"]
    for key in ("mean_dice", "miou", "map50", "cross_entropy", "dice", "iou"):
        assert key in summary
    assert 0.0 <= summary["mean_dice"] <= 1.0 and summary["cross_entropy"] > 0
    if bundle == "brain":
        assert set(summary["regions"]) == {"tumour core", "whole tumour", "enhancing tumour"}
        assert len(summary["dice"]) == 3
    rows = (output_dir / "eval" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("case,cross_entropy,dice/") and len(rows) == 2
    assert list((output_dir / "eval" / "overlays").glob("*.png"))
    assert "mean Dice" in result.stdout + result.stderr


def test_inference_keeps_original_shape_and_affine(trained, demo_root):
    bundle, output_dir, _ = trained
    run_bundle("inference", configs(bundle, "inference.json"), common(demo_root, output_dir))
    inputs = sorted((demo_root / TASKS[bundle] / "imagesTs").glob("*.nii.gz"))
    for image_path in inputs:
        image = nib.load(str(image_path))
        name = image_path.name.replace(".nii.gz", "_seg.nii.gz")
        prediction = nib.load(str(output_dir / "predictions" / name))
        assert prediction.shape == image.shape[:3]
        np.testing.assert_allclose(prediction.affine, image.affine, atol=1e-5)
        values = np.unique(np.asarray(prediction.dataobj))
        assert set(values.tolist()) <= set(range(4 if bundle == "brain" else 2))


def test_inference_on_a_given_file(trained, demo_root, tmp_path):
    bundle, output_dir, _ = trained
    source = sorted((demo_root / TASKS[bundle] / "imagesTs").glob("*.nii.gz"))[0]
    run_bundle(
        "inference",
        configs(bundle, "inference.json"),
        common(
            demo_root,
            output_dir,
            "--input",
            str(source),
            "--output_dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--ckpt_path",
            str(output_dir / "models" / "model.pt"),
        ),
    )
    assert [p.name for p in (tmp_path / "predictions").iterdir()] == [source.name.replace(".nii.gz", "_seg.nii.gz")]


def test_ckpt_export_gives_torchscript_that_predicts_like_the_checkpoint(trained, tmp_path):
    bundle, output_dir, _ = trained
    bundle_root = BUNDLES[bundle]
    net_path = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(net_path),
        ckpt_file=str(output_dir / "models" / "model.pt"),
        meta_file=str(bundle_root / "configs" / "metadata.json"),
        config_file=str(bundle_root / "configs" / "inference.json"),
        bundle_root=str(bundle_root),
        **{"network_def#channels": [8, 16, 32, 64, 128]},
    )
    scripted = torch.jit.load(str(net_path)).eval()
    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "inference.json"))
    parser["network_def"]["channels"] = [8, 16, 32, 64, 128]
    eager = parser.get_parsed_content("network_def")
    eager.load_state_dict(model_state(output_dir / "models" / "model.pt"))
    x = torch.randn(1, 4 if bundle == "brain" else 1, 32, 32)
    torch.testing.assert_close(scripted(x), eager.eval()(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bundle", ["heart", "brain", "pet", "voc"])
def test_metadata_and_network_io_verify(bundle):
    configs_dir = BUNDLES[bundle] / "configs"
    verify_metadata(meta_file=str(configs_dir / "metadata.json"), filepath=str(SCHEMA))
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs_dir / "metadata.json"),
        config_file=str(configs_dir / "inference.json"),
        n=2,
        any=16,
        **({"classify": False} if bundle == "pet" else {}),  # the metadata describes the segmentation output
    )


NETWORK_SETTINGS = [
    ("heart", {"spatial_dims": 2}),
    ("heart", {"spatial_dims": 3}),
    ("brain", {"spatial_dims": 2}),
    ("brain", {"spatial_dims": 3}),
    ("pet", {"classify": True}),
    ("pet", {"classify": False}),
    ("voc", {}),
]


@pytest.mark.parametrize("bundle, overrides", NETWORK_SETTINGS)
def test_train_and_inference_configs_build_the_same_network(bundle, overrides):
    """MONAI Label reads only inference.json: it must build the network train.json trained."""
    nets = []
    for name in ("train.json", "inference.json"):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES[bundle] / "configs" / name))
        parser.update(overrides)
        nets.append(parser.get_parsed_content("network_def"))
    train_net, infer_net = nets
    assert repr(train_net) == repr(infer_net)
    assert {k: v.shape for k, v in train_net.state_dict().items()} == {
        k: v.shape for k, v in infer_net.state_dict().items()
    }
    assert (train_net.classifier is not None) == overrides.get("classify", False)


def test_bundles_differ_only_in_task_settings():
    """The two bundles share one workflow: only the task's own settings may differ between their configs."""
    task_keys = {"output_dir", "task", "in_channels", "class_names", "regions", "pixdim", "flip_axes"}
    for name in ("train.json", "inference.json", "evaluate.json", "multi_gpu_train.json"):
        heart, brain = (json.loads((BUNDLES[b] / "configs" / name).read_text()) for b in ("heart", "brain"))
        differing = {key for key in heart.keys() | brain.keys() if heart.get(key) != brain.get(key)}
        assert differing <= task_keys, f"{name}: {sorted(differing - task_keys)} differ between the bundles"


def test_three_d_patches_train_and_infer(demo_root, tmp_path):
    overrides = [
        "--dataset_dir",
        str(demo_root),
        "--output_dir",
        str(tmp_path),
        "--spatial_dims",
        "3",
        "--roi_size",
        "[16,16,16]",
        "--network",
        "onenet_ed_4_oriented",
        "--network_def#channels",
        "[4,8,16,32,64]",
    ]
    run_bundle("training", configs("heart", "train.json"), overrides + ["--epochs", "1", "--val_interval", "1"])
    run_bundle("inference", configs("heart", "inference.json"), overrides)
    predictions = sorted((tmp_path / "predictions").glob("*.nii.gz"))
    assert len(predictions) == 2 and nib.load(str(predictions[0])).shape == (32, 32, 8)


def test_interrupted_training_resumes_and_ends_like_an_uninterrupted_run(demo_root, tmp_path):
    args = ["--epochs", "3", "--val_interval", "1", "--num_workers", "0"]
    straight = tmp_path / "straight"
    run_bundle("training", configs("heart", "train.json"), common(demo_root, straight, *args))

    resumed = tmp_path / "resumed"
    command = bundle_command("training", configs("heart", "train.json"), common(demo_root, resumed, *args))
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = resumed / "models" / "checkpoint_epoch=1.pt"
    deadline = time.time() + 300
    while not first.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (resumed / "models" / "checkpoint_epoch=3.pt").exists(), "the run ended before it was interrupted"

    result = run_bundle("training", configs("heart", "train.json"), common(demo_root, resumed, *args))
    assert "resumed from" in result.stdout + result.stderr
    history = json.loads((resumed / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for name in ("checkpoint_epoch=3.pt", "model.pt"):
        expected, actual = model_state(straight / "models" / name), model_state(resumed / "models" / name)
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=f"{name}: {key}")


def test_two_process_ddp_training_on_cpu(tmp_path):
    """`torchrun --nproc_per_node 2` with gloo: the checkpoint it writes loads into a single-process inference."""
    from monai_onenet.data.demo_msd import write_demo_task

    write_demo_task("Task02_Heart", tmp_path / "data", num_training=10, num_test=1, shape=(32, 32, 8), progress=False)
    overrides = ["--dataset_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"), *TINY]
    run_bundle_on_two_processes(
        configs("heart", "train.json", "multi_gpu_train.json"), [*overrides, "--epochs", "2", "--val_interval", "1"]
    )
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all(0 <= h["val_mean_dice"] <= 1 for h in history)
    run_bundle("inference", configs("heart", "inference.json"), overrides)
    assert len(list((tmp_path / "out" / "predictions").glob("*.nii.gz"))) == 1


def test_download_true_fetches_the_task_through_decathlon_dataset(tmp_path, monkeypatch):
    """`--download True` goes through MONAI's own DecathlonDataset download; the network is replaced by a
    function that writes the task where the real archive would unpack."""
    from monai.apps import datasets
    from monai.bundle import ConfigWorkflow

    from monai_onenet.data.demo_msd import write_demo_task

    fetched = []

    def fake_download_and_extract(url, filepath, output_dir, hash_val=None, **kwargs):
        fetched.append(url)
        write_demo_task("Task02_Heart", output_dir, num_training=6, num_test=1, shape=(32, 32, 8), progress=False)

    monkeypatch.setattr(datasets, "download_and_extract", fake_download_and_extract)
    workflow = ConfigWorkflow(
        config_file=configs("heart", "train.json"),
        workflow_type="train",
        run_id="training",
        dataset_dir=str(tmp_path / "data"),
        output_dir=str(tmp_path / "out"),
        download=True,
        epochs=1,
        val_interval=1,
        roi_size=[32, 32],
        samples_per_volume=4,
        **{"network_def#channels": [8, 16, 32, 64, 128]},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    assert len(fetched) == 1 and fetched[0].endswith("Task02_Heart.tar")
    assert (tmp_path / "out" / "models" / "model.pt").is_file()
