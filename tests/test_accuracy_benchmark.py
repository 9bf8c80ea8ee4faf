from __future__ import annotations

import json
import sys

import pytest
import torch

from monai_onenet.benchmark.accuracy import ACCURACY_MODELS, main, train_one
from monai_onenet.benchmark.peers import UNeXt, unext, unext_s
from monai_onenet.benchmark.slices import load_slice_set
from monai_onenet.visualize import pareto_front

ROW_KEYS = {"model", "family", "params", "dice_mean", "dice_std", "latency_ms", "train_s_per_epoch"}


@pytest.mark.parametrize("build, params", [(unext, 1_471_650), (unext_s, 253_426)])
def test_unext_matches_the_papers_size(build, params):
    net = build(1, 2)
    assert sum(p.numel() for p in net.parameters()) == params  # paper: 1.47 M and 0.25 M
    assert net(torch.randn(2, 1, 64, 32)).shape == (2, 2, 64, 32)


def test_unext_rejects_sizes_it_cannot_take():
    with pytest.raises(ValueError, match="divisible by 32"):
        UNeXt(1, 2)(torch.randn(1, 1, 48, 64))
    with pytest.raises(ValueError, match="5 widths"):
        UNeXt(1, 2, channels=(8, 16, 32))


def test_unext_shift_moves_channel_groups_along_one_axis():
    from monai_onenet.benchmark.peers.unext import _shift

    x = torch.zeros(1, 5, 7, 7)
    x[:, :, 3, 3] = 1.0
    shifted = _shift(x, axis=2, groups=5)
    rows = [int(torch.nonzero(shifted[0, c])[0, 0]) for c in range(5)]
    assert rows == [1, 2, 3, 4, 5] and torch.equal(
        torch.nonzero(shifted[0, :, :, :].sum(1))[:, 1].unique(), torch.tensor([3])
    )


def test_pareto_front_keeps_only_undominated_models():
    rows = [
        {"model": "slow_good", "latency_ms": 50, "dice_mean": 0.9},
        {"model": "fast_bad", "latency_ms": 10, "dice_mean": 0.5},
        {"model": "dominated", "latency_ms": 60, "dice_mean": 0.8},
        {"model": "fast_ok", "latency_ms": 20, "dice_mean": 0.7},
    ]
    assert pareto_front(rows) == ["fast_bad", "fast_ok", "slow_good"]


@pytest.fixture(scope="module")
def heart_slices(demo_root):
    return load_slice_set(demo_root, "Task02_Heart", size=32, val_frac=0.34)


def test_slice_set_splits_by_case_and_keeps_foreground(heart_slices):
    assert len(heart_slices.val_cases) == 2  # 6 cases, a third held out, kept whole
    assert heart_slices.train_images.shape[1:] == (1, 32, 32)
    assert heart_slices.val_cases[0][0].shape[0] == 8  # every slice of a validation case
    has_foreground = heart_slices.train_labels.flatten(1).amax(1) > 0
    assert has_foreground.sum() >= (~has_foreground).sum() > 0  # background slices at most 1:1


def test_training_is_reproducible_per_seed(heart_slices):
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = ACCURACY_MODELS["onenet_ed_4_none"].build(1, 2)
        runs.append(train_one(model, heart_slices, epochs=2, seed=3, device=torch.device("cpu"), progress=False))
    assert runs[0]["curve"] == runs[1]["curve"]
    assert all(0.0 <= d <= 1.0 for d in runs[0]["curve"])


def test_deep_supervision_models_train_on_integer_labels(heart_slices):
    model = ACCURACY_MODELS["onenet_edge_4_ds"].build(1, 2)
    curve = train_one(model, heart_slices, epochs=1, seed=0, device=torch.device("cpu"), progress=False)["curve"]
    assert len(curve) == 1 and 0.0 <= curve[0] <= 1.0


def test_accuracy_command_writes_rows_table_and_plot(demo_root, tmp_path, monkeypatch):
    json_path = tmp_path / "rows.json"
    argv = ["accuracy", "--dataset_dir", str(demo_root), "--task", "Task02_Heart", "--models", "unext", "unet_4"]
    argv += ["--epochs", "1", "--seeds", "0", "1", "--size", "32", "--val_frac", "0.34", "--latency_size", "32"]
    argv += ["--latency_rounds", "1", "--output_dir", str(tmp_path / "out"), "--json", str(json_path), "--no_demo"]
    from monai_onenet.benchmark.__main__ import main as benchmark_main

    result = benchmark_main(argv)
    saved = json.loads(json_path.read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert [row["model"] for row in saved["rows"]] == ["unext", "unet_4"]
    assert [row["family"] for row in saved["rows"]] == ["peer", "peer"]
    for row in saved["rows"]:
        assert ROW_KEYS <= set(row)
        assert sorted(row["seeds"]) == ["0", "1"] and row["latency_ms"] > 0 and row["train_s_per_epoch"] > 0
        assert 0.0 <= row["dice_mean"] <= 1.0
    assert saved["rows"][0]["params"] == sum(p.numel() for p in unext(1, 2).parameters())
    assert not saved["demo_data"] or "synthetic demo" in (demo_root / "Task02_Heart" / "dataset.json").read_text()
    for name in ("accuracy.json", "accuracy.md", "pareto.png", "curves.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0

    # A rerun (e.g. after an interruption) reuses every finished (model, seed) run instead of training again.
    assert len((tmp_path / "out" / "finished_runs.jsonl").read_text().splitlines()) == 4

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("monai_onenet.benchmark.accuracy.train_one", no_training)
    again = benchmark_main(argv)
    assert [row["seeds"] for row in again["rows"]] == [row["seeds"] for row in saved["rows"]]
    with pytest.raises(AssertionError, match="trained again"):
        benchmark_main(argv + ["--fresh"])
    # The allocator changes epoch times, so runs under the other setting are not reused.
    assert saved["allocator"] == "settled"
    with pytest.raises(AssertionError, match="trained again"):
        benchmark_main(argv + ["--allocator", "default"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_settle_allocator_applies_the_latency_runs_thresholds_in_process():
    from monai_onenet.benchmark.measure import settle_allocator

    assert settle_allocator()


def test_accuracy_command_names_a_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="Task02_Heart"):
        main(["--dataset_dir", str(tmp_path), "--no_demo", "--models", "unext", "--output_dir", str(tmp_path)])


def test_accuracy_command_rejects_unknown_models(demo_root, tmp_path):
    with pytest.raises(SystemExit, match="unknown model"):
        main(["--dataset_dir", str(demo_root), "--models", "resnet", "--output_dir", str(tmp_path)])
