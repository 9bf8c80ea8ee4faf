"""Helpers shared by the bundle tests: tiny MSD-layout data and `python -m monai.bundle` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

REPO = Path(__file__).resolve().parents[1]
BUNDLES = {name: REPO / "bundles" / f"onenet_{name}" for name in ("heart", "brain", "pet", "voc")}
TASKS = {"heart": "Task02_Heart", "brain": "Task01_BrainTumour"}
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"
# Small enough for CI: 32x32 slices, a narrow OneNet; the wiring is what these tests check.
TINY = ["--roi_size", "[32,32]", "--network_def#channels", "[8,16,32,64,128]", "--samples_per_volume", "4"]


def configs(bundle: str, *names: str) -> str:
    files = [str(BUNDLES[bundle] / "configs" / name) for name in names]
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def bundle_command(run_id: str, config_file: str, overrides: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_file, *overrides]


def run_bundle_on_two_processes(config_file: str, overrides: Sequence[str]) -> subprocess.CompletedProcess:
    """Train with ``torchrun --nproc_per_node 2`` (gloo on CPU); on failure the assertion shows its output."""
    command = ["torchrun", "--standalone", "--nproc_per_node", "2"]  # standalone: a free port, not a fixed 29500
    command += ["-m", "monai.bundle", "run", "training", "--config_file", config_file, *overrides]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def run_bundle(
    run_id: str, config_file: str, overrides: Sequence[str], check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run a bundle workflow; on failure the assertion shows the end of its output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        bundle_command(run_id, config_file, overrides),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def overrides(dataset_dir: Path, output_dir: Path, tiny: Sequence[str], *extra: str) -> List[str]:
    """The command-line overrides every bundle test passes: data, output folder, a tiny network and input."""
    return ["--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir), *tiny, *extra]


def train_two_epochs(
    bundle: str, dataset_dir: Path, output_dir: Path, tiny: Sequence[str]
) -> subprocess.CompletedProcess:
    """Train ``bundle`` for two epochs, validating after each: the run the bundle test modules share."""
    args = overrides(dataset_dir, output_dir, tiny, "--epochs", "2", "--val_interval", "1")
    return run_bundle("training", configs(bundle, "train.json"), args)


def check_two_epochs_written(output_dir: Path, key_metric: str) -> List[dict]:
    """The checkpoints and history a two-epoch run leaves; returns the history."""
    assert (output_dir / "models" / "model.pt").is_file()
    assert (output_dir / "models" / "checkpoint_epoch=2.pt").is_file()
    history = json.loads((output_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all(key_metric in h for h in history)
    return history
