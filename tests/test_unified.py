"""Unified segmentation + classification, the 2D chains and the pooled (VOC) metrics, unit by unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.transforms import Compose
from PIL import Image

from monai_onenet.data import holdout
from monai_onenet.data.folder import image_inputs
from monai_onenet.data.pet import pet_class_names
from monai_onenet.engines import PrepareUnifiedBatch, end_distributed
from monai_onenet.handlers import SegmentationReport, SegmentationScore
from monai_onenet.losses import IgnoreValueDiceCELoss, UnifiedLoss
from monai_onenet.metrics import aggregate_case_metrics, case_metrics
from monai_onenet.networks import create_onenet
from monai_onenet.transforms import (
    CheckSegmentationPaird,
    SplitUnifiedOutputd,
    image_2d_loading,
    image_2d_resize,
    image_2d_training_augmentation,
)
from monai_onenet.visualize import save_confusion

SEG_LOSS = DiceCELoss(to_onehot_y=True, softmax=True)


def test_unified_loss_adds_weighted_cross_entropy():
    torch.manual_seed(0)
    seg, logits = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
    label, classes = torch.randint(0, 3, (2, 1, 8, 8)).float(), torch.tensor([1, 4])
    loss = UnifiedLoss(SEG_LOSS, classification_weight=0.25)
    expected = SEG_LOSS(seg, label) + 0.25 * F.cross_entropy(logits, classes)
    torch.testing.assert_close(loss((seg, logits), (label, classes)), expected)


def test_unified_loss_without_a_head_is_the_segmentation_loss():
    seg, label = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8)).float()
    loss = UnifiedLoss(SEG_LOSS)
    torch.testing.assert_close(loss(seg, (label, torch.tensor([0, 1]))), SEG_LOSS(seg, label))
    torch.testing.assert_close(loss(seg, label), SEG_LOSS(seg, label))


def test_unified_loss_handles_deep_supervision_lists():
    deep = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)]
    label, classes = torch.randint(0, 3, (2, 1, 16, 16)).float(), torch.tensor([0, 2])
    loss = UnifiedLoss(DeepSupervisionLoss(SEG_LOSS), classification_weight=1.0)
    value = loss((deep, torch.randn(2, 3)), (label, classes))
    assert value.ndim == 0 and torch.isfinite(value)


@pytest.mark.parametrize(
    "target, message",
    [(None, "PrepareUnifiedBatch"), (torch.tensor([[0], [1]]), "one index per image")],
)
def test_unified_loss_bad_class_labels(target, message):
    seg, label = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8)).float()
    with pytest.raises(ValueError, match=message):
        UnifiedLoss(SEG_LOSS)((seg, torch.randn(2, 4)), label if target is None else (label, target))


def test_unified_training_step_reaches_every_parameter():
    net = create_onenet("onenet_edge_4", spatial_dims=2, in_channels=3, out_channels=4, num_classes=5)
    net.train()
    image, (label, classes) = PrepareUnifiedBatch("breed")(
        {"image": torch.rand(2, 3, 32, 32), "label": torch.randint(0, 4, (2, 1, 32, 32)).float(), "breed": [1, 3]}
    )
    output = net(image)
    assert isinstance(output, tuple) and output[1].shape == (2, 5)
    loss = UnifiedLoss(DeepSupervisionLoss(IgnoreValueDiceCELoss()), 0.5)(output, (label, classes))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_prepare_unified_batch_names_a_missing_key():
    with pytest.raises(KeyError, match=r"batch has no \['breed'\]"):
        PrepareUnifiedBatch("breed")({"image": torch.zeros(1), "label": torch.zeros(1)})


def test_split_unified_output_splits_and_passes_plain_segmentation_through():
    seg = torch.randn(3, 4, 4)
    split = SplitUnifiedOutputd("pred")({"pred": [seg, torch.tensor([2.0, 0.0])]})
    assert split["pred"] is seg and torch.allclose(split["class_prob"].sum(), torch.tensor(1.0))
    assert split["class_prob"].argmax() == 0
    plain = SplitUnifiedOutputd("pred")({"pred": seg})
    assert plain["pred"] is seg and "class_prob" not in plain


@pytest.mark.parametrize("stratify", [None, "breed"])
def test_holdout_is_a_reproducible_partition(stratify):
    items = [{"name": i, "breed": i % 7} for i in range(70)]
    train = holdout(items, "training", 0.2, seed=3, stratify_key=stratify)
    val = holdout(items, "validation", 0.2, seed=3, stratify_key=stratify)
    assert sorted(i["name"] for i in train + val) == list(range(70)) and len(val) == 14
    assert val == holdout(items, "validation", 0.2, seed=3, stratify_key=stratify)
    assert val != holdout(items, "validation", 0.2, seed=4, stratify_key=stratify)
    if stratify:
        assert sorted(i["breed"] for i in val) == sorted(list(range(7)) * 2)


def test_holdout_still_validates_when_every_group_has_one_item():
    items = [{"name": i, "breed": i} for i in range(37)]
    val = holdout(items, "validation", 0.1, stratify_key="breed")
    assert len(val) == 4 and len(holdout(items, "training", 0.1, stratify_key="breed")) == 33


@pytest.mark.parametrize("kwargs, message", [({"section": "test"}, "section"), ({"val_fraction": 1.0}, "val_fraction")])
def test_holdout_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        holdout([{"name": 0}], **{"section": "training", **kwargs})


def test_pooled_metrics_do_not_count_absent_classes_as_perfect():
    """Two pictures of 4 classes, each holding one: per-case means call every absent class a success."""
    names = ["background", "a", "b", "c"]
    label_one = torch.zeros(1, 4, 4)
    label_one[0, :2] = 1
    label_two = torch.zeros(1, 4, 4)
    label_two[0, :, :2] = 2
    prob_one = F.one_hot(torch.zeros(4, 4, dtype=torch.long), 4).permute(2, 0, 1).float()  # predicts background only
    prob_two = F.one_hot(label_two[0].long(), 4).permute(2, 0, 1).float()  # perfect
    cases = [case_metrics(prob_one, label_one, names), case_metrics(prob_two, label_two, names)]
    per_case = aggregate_case_metrics(cases, names)
    pooled = aggregate_case_metrics(cases, names, pooled=True)
    assert per_case["iou"]["c"] == 1.0  # never present anywhere, yet "perfect"
    assert pooled["iou"] == {"a": 0.0, "b": 1.0, "c": pytest.approx(float("nan"), nan_ok=True)}
    assert pooled["miou"] == 0.5 and per_case["miou"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert pooled["dice"]["b"] == 1.0 and pooled["pooled"] is True
    # background: intersection 8 + 8, union 16 (picture one predicts all 16 pixels background) + 8
    assert pooled["miou_with_background"] == pytest.approx((16 / 24 + 0.0 + 1.0) / 3)


@pytest.mark.parametrize("pooled", [False, True])
def test_segmentation_score_matches_the_report_summary(pooled):
    torch.manual_seed(1)
    names = ["background", "x", "y"]
    probs = [torch.softmax(torch.randn(3, 8, 8), 0) for _ in range(3)]
    labels = [torch.randint(0, 3, (1, 8, 8)) for _ in range(3)]
    labels[0][0, 0, :4] = 255
    score = SegmentationScore("miou", names, ignore_value=255, pooled=pooled)
    score.reset()
    score.update((probs, labels))
    cases = [case_metrics(p, t, names, ignore_value=255) for p, t in zip(probs, labels)]
    assert score.compute() == pytest.approx(aggregate_case_metrics(cases, names, pooled=pooled)["miou"])


def test_segmentation_score_rejects_an_unknown_metric():
    with pytest.raises(ValueError, match="metric must be one of"):
        SegmentationScore("accuracy", ["background", "x"])


def test_report_with_image_classes_needs_class_outputs(tmp_path):
    report = SegmentationReport(str(tmp_path), ["background", "x"], image_classes=["cat", "dog"])
    engine = type("Engine", (), {})()
    engine.state = type("State", (), {"output": [{"prob": torch.rand(2, 4, 4), "label": torch.zeros(1, 4, 4)}]})()
    with pytest.raises(KeyError, match="SplitUnifiedOutputd"):
        report._score(engine)


def test_report_writes_top1_and_confusion(tmp_path):
    report = SegmentationReport(str(tmp_path), ["background", "x"], image_classes=["cat", "dog"], overlays=0)
    engine = type("Engine", (), {})()
    outputs = []
    for true, predicted in ((0, 0), (1, 0), (1, 1)):
        image = torch.rand(3, 4, 4)
        outputs.append(
            {
                "image": image,
                "prob": torch.rand(2, 4, 4),
                "label": torch.zeros(1, 4, 4),
                "class_prob": F.one_hot(torch.tensor(predicted), 2).float(),
                "class_label": torch.tensor(true),
            }
        )
    engine.state = type("State", (), {"output": outputs})()
    report._reset(engine)
    report._score(engine)
    report._write(engine)
    classification = report.summary["classification"]
    assert classification["confusion"] == [[1, 0], [1, 1]] and classification["top1"] == pytest.approx(2 / 3)
    assert (tmp_path / "confusion.png").stat().st_size > 0
    assert "class_true,class_predicted" in (tmp_path / "metrics.csv").read_text().splitlines()[0]


def test_save_confusion_checks_the_shape(tmp_path):
    with pytest.raises(ValueError, match="3 class names"):
        save_confusion([[1, 0], [0, 1]], ["a", "b", "c"], str(tmp_path / "c.png"))


@pytest.fixture
def odd_picture(tmp_path):
    """A 20 x 30 (H x W) picture whose top-left quarter is bright, as a grey JPEG, and a matching palette mask."""
    pixels = np.full((20, 30), 40, np.uint8)
    pixels[:10, :15] = 220
    Image.fromarray(pixels, mode="L").save(tmp_path / "odd.jpg", quality=95)
    mask = Image.fromarray((pixels > 128).astype(np.uint8) * 3, mode="P")
    mask.putpalette([0, 0, 0] * 256)
    mask.save(tmp_path / "odd.png")
    return {"image": str(tmp_path / "odd.jpg"), "label": str(tmp_path / "odd.png")}


def test_image_loading_keeps_row_major_order_and_converts_grey_to_rgb(odd_picture):
    item = Compose(image_2d_loading(3, 4))(odd_picture)
    assert tuple(item["image"].shape) == (3, 20, 30) and tuple(item["label"].shape) == (1, 20, 30)
    assert item["image"][:, 2, 2].min() > 0.8 and item["image"][:, 15, 25].max() < 0.3
    assert item["label"][0, 2, 2] == 3 and item["label"][0, 15, 25] == 0


def test_image_loading_names_a_mask_value_outside_the_classes(odd_picture):
    data = dict(odd_picture)
    with pytest.raises(ValueError, match=r"odd.png: label values \[3\] are not classes of this task \(0..1 or 255\)"):
        for transform in image_2d_loading(3, 2, ignore_value=255):
            data = transform(data)


def test_image_loading_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="in_channels=4"):
        image_2d_loading(4, 2)


def test_resize_for_evaluation_is_inverted_back_to_the_original_size(odd_picture):
    from monai.transforms import Invertd

    chain = Compose(image_2d_loading(3, 4) + image_2d_resize([16, 16]))
    item = chain(odd_picture)
    assert tuple(item["image"].shape) == (3, 16, 16) and tuple(item["label"].shape) == (1, 20, 30)
    item["pred"] = item["image"][:1].clone()
    restored = Invertd("pred", transform=chain, orig_keys="image", nearest_interp=False)(item)["pred"]
    assert tuple(restored.shape) == (1, 20, 30) and restored[0, 2, 2] > restored[0, 15, 25]


def test_training_augmentation_keeps_image_and_mask_aligned(odd_picture):
    chain = Compose(image_2d_loading(1, 4) + image_2d_training_augmentation([32, 32]))
    chain.set_random_state(0)
    for _ in range(4):
        item = chain(odd_picture)
        bright = item["image"][0] > 0.6
        labelled = item["label"][0] == 3
        assert (bright == labelled).float().mean() > 0.9


def test_check_allows_the_ignore_value_only():
    check = CheckSegmentationPaird("image", "label", 3, 2, ignore_value=255)
    check({"image": torch.zeros(3, 2, 2), "label": torch.tensor([[[0, 1], [255, 0]]]).float()})
    with pytest.raises(ValueError, match=r"\[7\]"):
        check({"image": torch.zeros(3, 2, 2), "label": torch.tensor([[[0, 7], [255, 0]]]).float()})


def test_image_inputs_reads_a_file_a_folder_or_the_default(odd_picture, tmp_path):
    assert image_inputs(odd_picture["image"]) == [{"image": odd_picture["image"], "name": "odd"}]
    assert [i["name"] for i in image_inputs(str(tmp_path))] == ["odd"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        image_inputs(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="give --input"):
        image_inputs("")
    volume = tmp_path / "scan.nii.gz"
    volume.write_bytes(b"")
    with pytest.raises(ValueError, match="not a picture this bundle reads"):
        image_inputs(str(volume))


def test_pet_class_names():
    assert pet_class_names("trimap") == ["background", "pet", "border"]
    assert len(pet_class_names("breed")) == 38
    with pytest.raises(ValueError, match="target"):
        pet_class_names("species")


def _score_on_rank(rank: int, port: int, probs, labels, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        score = SegmentationScore("miou", ["background", "x", "y"], pooled=True)
        score.reset()
        score.update((probs[rank::2], labels[rank::2]))  # each rank sees every other case, as DistributedSampler
        results[rank] = score.compute()
    finally:
        end_distributed()


def test_segmentation_score_gathers_every_ranks_cases():
    import socket

    import torch.multiprocessing as mp

    torch.manual_seed(2)
    probs = [torch.softmax(torch.randn(3, 8, 8), 0) for _ in range(5)]
    labels = [torch.randint(0, 3, (1, 8, 8)) for _ in range(5)]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_score_on_rank, args=(port, probs, labels, results), nprocs=2)
    whole = SegmentationScore("miou", ["background", "x", "y"], pooled=True)
    whole.update((probs, labels))
    assert results[0] == results[1] == pytest.approx(whole.compute())
