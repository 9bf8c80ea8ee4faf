"""A real MONAI Label server serving the OneNet bundles, driven through MONAI Label's own client (as 3D Slicer is).

Runs in the `label` virtual environment that `.ci/run` builds (`pip install -e ".[label]"`); skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import configs, run_bundle

from monai_onenet.data.demo_msd import write_demo_task

pytest.importorskip("monailabel")
from monailabel.client import MONAILabelClient  # noqa: E402
from monailabel.client.client import MONAILabelClientException  # noqa: E402

from monai_onenet.label.load import concurrent_infer  # noqa: E402

pytestmark = [pytest.mark.label, pytest.mark.slow]

STUDIES = ("la_001", "la_002", "la_003")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_info(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/info/", timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server on a free loopback port: three labelled heart studies, one brain study and one corrupt file."""
    root = tmp_path_factory.mktemp("label")
    task = write_demo_task("Task02_Heart", root / "msd", num_training=3, num_test=0, shape=(64, 64, 10), progress=False)
    studies = root / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for image in sorted((task / "imagesTr").glob("*.nii.gz")):
        shutil.copy(image, studies / image.name)
        shutil.copy(task / "labelsTr" / image.name, studies / "labels" / "final" / image.name)
    (studies / "broken.nii.gz").write_bytes(b"not a nifti")
    brain = write_demo_task(
        "Task01_BrainTumour", root / "msd", num_training=1, num_test=0, shape=(48, 48, 8), progress=False
    )
    (brain_image,) = (brain / "imagesTr").glob("*.nii.gz")
    shutil.copy(brain_image, studies / "brain_001.nii.gz")  # 4 channels in one 4D NIfTI, no final label

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")
    command = [sys.executable, "-m", "monai_onenet.label", "--studies", str(studies), "--port", str(port)]
    command += ["--app_dir", str(root / "app")]
    env = dict(os.environ, MONAI_LABEL_SESSIONS="false", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 180
    while True:
        try:
            get_info(url)
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail("the server did not start:\n" + (root / "server.log").read_text()[-4000:])
            time.sleep(0.5)
    yield {"url": url, "root": root, "studies": studies, "app": root / "app"}
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def client(server, name="test"):
    return MONAILabelClient(server["url"], tmpdir=str(server["root"] / "client"), client_id=name)


def test_info_lists_the_onenet_models_as_3d_segmenters(server):
    info = get_info(server["url"])
    assert set(info["models"]) == {"onenet_heart", "onenet_brain"} == set(info["trainers"])
    heart = info["models"]["onenet_heart"]
    assert heart["type"] == "segmentation" and heart["dimension"] == 3 and heart["labels"] == {"left atrium": 1}
    assert info["models"]["onenet_brain"]["labels"] == {"edema": 1, "non-enhancing tumour": 2, "enhancing tumour": 3}
    assert heart["description"].startswith("UNTRAINED"), "random weights must say so"


def test_infer_returns_the_bundles_own_prediction_on_the_input_grid(server, tmp_path):
    path, params = client(server).infer("onenet_heart", "la_001", {})
    served = nib.load(path)
    study = nib.load(server["studies"] / "la_001.nii.gz")
    assert served.shape == study.shape and np.allclose(served.affine, study.affine, atol=1e-4)
    assert served.get_data_dtype() == np.uint8 and set(np.unique(served.dataobj)) <= {0, 1}
    assert "latencies" in params

    # The same weights through the bundle's inference.json (`python -m monai.bundle run inference`).
    model = server["app"] / "model" / "onenet_heart" / "models" / "model.pt"
    overrides = ["--input", str(server["studies"] / "la_001.nii.gz"), "--ckpt_path", str(model)]
    run_bundle("inference", configs("heart", "inference.json"), overrides + ["--output_dir", str(tmp_path)])
    (written,) = (tmp_path / "predictions").glob("*.nii.gz")
    np.testing.assert_array_equal(np.asarray(served.dataobj), np.asarray(nib.load(written).dataobj))


def test_the_brain_model_segments_a_four_channel_study(server):
    path, _ = client(server).infer("onenet_brain", "brain_001", {})
    served = nib.load(path)
    study = nib.load(server["studies"] / "brain_001.nii.gz")
    assert study.shape == (48, 48, 8, 4) and served.shape == (48, 48, 8)
    assert np.allclose(served.affine, study.affine, atol=1e-4) and set(np.unique(served.dataobj)) <= {0, 1, 2, 3}


def test_monai_labels_own_bundle_task_loads_the_bundle_with_dropout(server):
    """MONAI Label's BundleInferTask, as its sample app builds it for epistemic scoring (dropout written into
    network_def, only inference.json read), runs the staged bundle."""
    from monai_onenet.label.app import OneNetInferTask

    task = OneNetInferTask(str(server["app"] / "model" / "onenet_heart"), {}, dropout=0.2)
    assert task.is_valid()
    path, _ = task({"image": str(server["studies"] / "la_002.nii.gz"), "device": "cpu"})
    label = nib.load(path)
    assert label.shape == (64, 64, 10) and set(np.unique(label.dataobj)) <= {0, 1}


def test_eight_concurrent_requests_all_get_the_same_answer(server):
    alone = concurrent_infer(server["url"], "onenet_heart", "la_002", requests=1, tmpdir=str(server["root"]))
    together = concurrent_infer(server["url"], "onenet_heart", "la_002", requests=8, tmpdir=str(server["root"]))
    assert len(together.labels) == 8
    for label in together.labels:
        np.testing.assert_array_equal(label, alone.labels[0])
    print(f"alone: {alone.summary()}; together: {together.summary()}")


@pytest.mark.parametrize(
    "model, image, status, message",
    [
        ("onenet_lung", "la_001", 404, "no model 'onenet_lung'"),
        ("onenet_heart", "la_999", 404, "no image 'la_999'"),
        ("onenet_heart", "broken", 422, "broken.nii.gz"),
        ("onenet_brain", "la_001", 422, "in_channels=4"),
    ],
)
def test_a_bad_request_gets_a_status_and_a_reason_and_the_server_keeps_serving(server, model, image, status, message):
    with pytest.raises(MONAILabelClientException) as error:
        client(server).infer(model, image, {})
    assert f"Status: {status}" in error.value.msg and message in error.value.msg, error.value.msg
    path, _ = client(server).infer("onenet_heart", "la_003", {})
    assert nib.load(path).shape == (64, 64, 10)


def test_training_from_the_studies_labels_replaces_the_served_model(server):
    model = server["app"] / "model" / "onenet_heart" / "models" / "model.pt"
    before = model.read_bytes()
    api = client(server)
    # As 3D Slicer sends it: every row of the trainer's config panel (lists as their first choice, run_id "").
    options = get_info(server["url"])["trainers"]["onenet_heart"]["config"]
    params = {key: value[0] if isinstance(value, list) and value else value for key, value in options.items()}
    assert params["run_id"] == "" and "multi_gpu" not in params
    params.update({"max_epochs": 2, "val_split": 0.34, "device": "cpu"})
    api.train_start("onenet_heart", params)
    deadline = time.time() + 600
    status = api.train_status()
    while status.get("status") in ("SUBMITTED", "RUNNING", "QUEUED") and time.time() < deadline:
        time.sleep(1)
        status = api.train_status()
    assert status["status"] == "DONE", "\n".join(status.get("details", [])[-40:])

    assert model.read_bytes() != before
    assert not get_info(server["url"])["models"]["onenet_heart"]["description"].startswith("UNTRAINED")
    path, _ = api.infer("onenet_heart", "la_001", {})
    assert nib.load(path).shape == (64, 64, 10)
