from __future__ import annotations

import pytest

from monai_onenet.data.demo_msd import write_demo_task


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Tiny MSD-layout copies of both tasks: 6 labelled and 2 test volumes each, 32x32x8 voxels."""
    root = tmp_path_factory.mktemp("msd")
    for task in ("Task02_Heart", "Task01_BrainTumour"):
        write_demo_task(task, root, num_training=6, num_test=2, shape=(32, 32, 8), progress=False)
    return root
