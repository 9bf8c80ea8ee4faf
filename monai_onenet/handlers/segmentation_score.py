"""One summary number of :mod:`monai_onenet.metrics` as an ignite metric, for an evaluator's key metric."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import ignite.distributed as idist
import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from monai_onenet.metrics import aggregate_case_metrics, case_metrics

__all__ = ["SegmentationScore"]

SUMMARY_KEYS = ("mean_dice", "miou", "map50", "cross_entropy")


class SegmentationScore(Metric):
    """``mean_dice``, ``miou``, ``map50`` or ``cross_entropy`` over the evaluated cases, honouring an ignore value.

    MONAI's ``MeanDice`` / ``MeanIoUHandler`` take one-hot labels, which a label with VOC's 255 borders cannot
    become; this scores index labels with :func:`monai_onenet.metrics.case_metrics`, the definitions the reports
    use, so the key metric that picks the best checkpoint is the number the report prints. Under
    ``torch.distributed`` every rank's cases are gathered before the summary, so each rank computes the score of
    the whole validation set, as MONAI's metric handlers do.

    Args:
        metric: which summary number.
        class_names: the network's output classes, background first.
        ignore_value: a label value that no metric counts.
        pooled: dataset-level (VOC) rather than per-case means; see :mod:`monai_onenet.metrics.segmentation`.
        output_transform: from the engine output to ``(probabilities, labels)``, lists of ``(C, *spatial)`` and
            ``(1, *spatial)`` tensors (e.g. ``monai.handlers.from_engine(["prob", "label"])``).

    Example:
        >>> import torch
        >>> score = SegmentationScore("miou", ["background", "object"])
        >>> prob = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]])
        >>> score.update(([prob], [torch.tensor([[[0, 1]]])]))
        >>> score.compute()
        1.0
    """

    def __init__(
        self,
        metric: str,
        class_names: Sequence[str],
        ignore_value: Optional[int] = None,
        pooled: bool = False,
        output_transform: Callable = lambda x: x,
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        if metric not in SUMMARY_KEYS:
            raise ValueError(f"metric must be one of {SUMMARY_KEYS}, got {metric!r}")
        self.metric, self.class_names, self.ignore_value = metric, list(class_names), ignore_value
        self.pooled = pooled
        self._cases: List[Dict[str, float]] = []
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._cases = []

    @reinit__is_reduced
    def update(self, output: Tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]) -> None:
        probs, labels = output
        for prob, label in zip(probs, labels):
            self._cases.append(case_metrics(prob, label, self.class_names, ignore_value=self.ignore_value))

    def compute(self) -> float:
        cases = self._cases
        if idist.get_world_size() > 1:
            cases = [case for rank_cases in idist.all_gather(cases) for case in rank_cases]
        if not cases:
            raise RuntimeError("SegmentationScore has no cases: the evaluator ran no iteration.")
        return float(aggregate_case_metrics(cases, self.class_names, pooled=self.pooled)[self.metric])
