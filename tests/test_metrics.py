"""The Table 1 metrics, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from monai_onenet.metrics import aggregate_case_metrics, case_metrics

NAMES = ["background", "a", "b"]


def _one_hot_prob(index: torch.Tensor, classes: int, confidence: float = 0.8) -> torch.Tensor:
    other = (1 - confidence) / (classes - 1)
    prob = torch.full((classes, *index.shape), other)
    prob.scatter_(0, index[None], confidence)
    return prob


def test_cross_entropy_is_the_voxel_mean_negative_log_probability_of_the_truth():
    truth = torch.tensor([[0, 1], [2, 2]])
    metrics = case_metrics(_one_hot_prob(truth, 3, 0.8), truth[None], NAMES)
    assert metrics["cross_entropy"] == pytest.approx(-math.log(0.8), rel=1e-5)
    assert metrics["dice/a"] == metrics["dice/b"] == 1.0


@pytest.mark.parametrize(
    "pred, truth, dice, iou",
    [
        ([[1, 1], [0, 0]], [[1, 0], [0, 0]], 2 / 3, 1 / 2),
        ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0, 1.0),  # both empty: a correct "absent"
        ([[1, 0], [0, 0]], [[0, 0], [0, 0]], 0.0, 0.0),  # a false positive on an empty case
    ],
)
def test_dice_and_iou_per_class(pred, truth, dice, iou):
    metrics = case_metrics(_one_hot_prob(torch.tensor(pred), 3), torch.tensor(truth)[None], NAMES)
    assert metrics["dice/a"] == pytest.approx(dice) and metrics["iou/a"] == pytest.approx(iou)


def test_one_hot_labels_give_the_same_metrics_as_indices():
    truth = torch.tensor([[0, 1], [2, 1]])
    prob = _one_hot_prob(torch.tensor([[0, 1], [1, 1]]), 3)
    one_hot = torch.nn.functional.one_hot(truth, 3).permute(2, 0, 1).float()
    assert case_metrics(prob, truth[None], NAMES) == case_metrics(prob, one_hot, NAMES)


def test_regions_are_unions_of_classes():
    truth = torch.tensor([[1, 2], [0, 0]])
    pred = torch.tensor([[2, 1], [0, 0]])  # classes swapped: each class wrong, their union right
    metrics = case_metrics(_one_hot_prob(pred, 3), truth[None], NAMES, regions={"a+b": (1, 2)})
    assert metrics["dice/a"] == 0.0 and metrics["dice/a+b"] == 1.0


def test_map50_counts_cases_whose_iou_exceeds_one_half_among_cases_where_the_class_appears():
    cases = [
        {"cross_entropy": 0.1, "dice/a": 0.9, "iou/a": 0.8, "present/a": 1.0},
        {"cross_entropy": 0.1, "dice/a": 0.5, "iou/a": 0.4, "present/a": 1.0},
        {"cross_entropy": 0.1, "dice/a": 1.0, "iou/a": 1.0, "present/a": 0.0},  # absent: not a decision
    ]
    summary = aggregate_case_metrics(cases, ["background", "a"])
    assert summary["map50"] == 0.5 and summary["ap50"] == {"a": 0.5}
    assert summary["miou"] == pytest.approx((0.8 + 0.4 + 1.0) / 3)


def test_case_metrics_rejects_names_that_do_not_match_the_channels():
    with pytest.raises(ValueError, match="2 class names for 3 output channels"):
        case_metrics(torch.rand(3, 2, 2), torch.zeros(1, 2, 2), ["background", "a"])


def test_ignored_voxels_count_in_no_metric():
    truth = torch.tensor([[1, 1, 255], [0, 0, 255]])
    pred = torch.tensor([[1, 1, 2], [0, 0, 1]])  # wrong only where the truth says "ignore"
    metrics = case_metrics(_one_hot_prob(pred, 3, 0.9), truth[None], NAMES, ignore_value=255)
    assert metrics["dice/a"] == 1.0 and metrics["iou/a"] == 1.0 and metrics["present/b"] == 0.0
    assert metrics["cross_entropy"] == pytest.approx(-math.log(0.9), rel=1e-5)
