from __future__ import annotations

import pytest

from monai_onenet.data.demo_2d import write_demo_pet, write_demo_voc
from monai_onenet.data.demo_msd import write_demo_task


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Tiny MSD-layout copies of both tasks: 6 labelled and 2 test volumes each, 32x32x8 voxels."""
    root = tmp_path_factory.mktemp("msd")
    for task in ("Task02_Heart", "Task01_BrainTumour"):
        write_demo_task(task, root, num_training=6, num_test=2, shape=(32, 32, 8), progress=False)
    return root


@pytest.fixture(scope="session")
def demo_2d_root(tmp_path_factory):
    """Tiny Pet (2 images per breed: 37 trainval, 37 test) and VOC (8 images: 6 train, 2 val) trees, 48x48."""
    root = tmp_path_factory.mktemp("natural")
    write_demo_pet(root, images_per_breed=2, size=48)
    write_demo_voc(root, num_images=8, size=48)
    return root
