"""Per-case metrics, their summary and overlay pictures, written by an evaluator at the end of each run."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from ignite.engine import Engine, Events

from monai_onenet.metrics import aggregate_case_metrics, case_metrics
from monai_onenet.visualize import save_overlay

__all__ = ["SegmentationReport"]


def _case_name(item: Mapping) -> str:
    meta = getattr(item.get("image"), "meta", {}) or {}
    name = Path(str(meta.get("filename_or_obj", "case"))).name
    for suffix in (".nii.gz", ".nii"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


class SegmentationReport:
    """Attach to an evaluator whose post-processing leaves softmax probabilities under ``prob_key`` and the
    ground truth under ``label_key`` (indices or one-hot). At the end of each run it writes, in ``output_dir``:

    * ``metrics.json``: the summary (:func:`monai_onenet.metrics.aggregate_case_metrics`) and every case;
    * ``metrics.csv``: one row per case: cross-entropy, Dice and IoU per class and region;
    * ``overlays/<case>.png``: slices with ground truth and prediction, for the first ``overlays`` cases;

    and logs a one-line summary. The metric definitions are in :mod:`monai_onenet.metrics.segmentation`.

    Args:
        output_dir: where to write.
        class_names: the network's output classes, background first.
        regions: optional ``{name: class indices}`` scored as unions (e.g. the brain tumour regions).
        overlays: how many cases get an overlay picture.
        prob_key: key of the softmax probabilities ``(C, *spatial)``.
        label_key: key of the ground truth.
        image_key: key of the image (for the overlays and the case name).
        ignore_value: a label value no metric counts (e.g. VOC's 255 borders); needs index labels.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        regions: Optional[Mapping[str, Sequence[int]]] = None,
        overlays: int = 3,
        prob_key: str = "prob",
        label_key: str = "label",
        image_key: str = "image",
        ignore_value: Optional[int] = None,
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.regions = dict(regions or {})
        self.overlays = overlays
        self.prob_key, self.label_key, self.image_key = prob_key, label_key, image_key
        self.ignore_value = ignore_value
        self.cases: List[Dict[str, object]] = []
        self.summary: Dict[str, object] = {}
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.cases = []

    def _score(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            prob, label = item[self.prob_key], item[self.label_key]
            row: Dict[str, object] = {"case": _case_name(item)}
            row.update(case_metrics(prob, label, self.class_names, self.regions, self.ignore_value))
            self.cases.append(row)
            if len(self.cases) <= self.overlays:
                truth = label.argmax(0, keepdim=True) if label.shape[0] > 1 else label
                title = f"{row['case']}  Dice " + ", ".join(
                    f"{name} {row[f'dice/{name}']:.3f}" for name in self.class_names[1:]
                )
                save_overlay(
                    item[self.image_key],
                    truth,
                    prob.argmax(0, keepdim=True),
                    os.path.join(self.output_dir, "overlays", f"{row['case']}.png"),
                    self.class_names,
                    title=title,
                )

    def _write(self, engine: Engine) -> None:
        if not self.cases:
            return
        self.summary = aggregate_case_metrics(self.cases, self.class_names, self.regions)
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "metrics.json"), "w") as file:
            json.dump({"summary": self.summary, "cases": self.cases}, file, indent=1)
        columns = ["case", "cross_entropy"] + [k for k in self.cases[0] if k.startswith(("dice/", "iou/"))]
        with open(os.path.join(self.output_dir, "metrics.csv"), "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.cases)
        dice = ", ".join(f"{name} {value:.4f}" for name, value in self.summary["dice"].items())
        regions = self.summary.get("regions", {})
        region_text = "".join(f"; {name} Dice {v['dice']:.4f}" for name, v in regions.items())
        self.logger.info(
            f"{len(self.cases)} cases: mean Dice {self.summary['mean_dice']:.4f} ({dice}){region_text}; "
            f"mIoU {self.summary['miou']:.4f}; mAP@0.5 {self.summary['map50']:.4f}; "
            f"cross-entropy {self.summary['cross_entropy']:.4f}; written to {self.output_dir}"
        )
