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
from monai_onenet.visualize import save_confusion, save_overlay

__all__ = ["SegmentationReport"]


def _case_name(item: Mapping) -> str:
    meta = getattr(item.get("image"), "meta", {}) or {}
    name = Path(str(meta.get("filename_or_obj", "case"))).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem


def _mean(row: Mapping, metric: str, names: Sequence[str]) -> float:
    return sum(row[f"{metric}/{n}"] for n in names) / len(names) if names else float("nan")


class SegmentationReport:
    """Attach to an evaluator whose post-processing leaves softmax probabilities under ``prob_key`` and the
    ground truth under ``label_key`` (indices or one-hot). At the end of each run it writes, in ``output_dir``:

    * ``metrics.json``: the summary (:func:`monai_onenet.metrics.aggregate_case_metrics`) and every case;
    * ``metrics.csv``: one row per case: cross-entropy, Dice and IoU per class and region;
    * ``overlays/<case>.png``: slices with ground truth and prediction, for the first ``overlays`` cases;
    * with ``image_classes`` (a unified network): the image-level top-1 accuracy and confusion matrix in
      ``metrics.json`` (``summary["classification"]``), each case's true and predicted class in ``metrics.csv``,
      and ``confusion.png``;

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
        pooled: dataset-level (VOC) rather than per-case means; see :mod:`monai_onenet.metrics.segmentation`.
        photo: the images are 2D pictures (Pet, VOC): overlays drawn as photos (see :func:`save_overlay`).
        image_classes: names of the image-level classes of a unified network; items then carry class
            probabilities under ``class_prob_key`` and the true class index under ``class_label_key``.
        class_prob_key: key of the class probabilities ``(K,)``.
        class_label_key: key of the true class index.
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
        pooled: bool = False,
        photo: bool = False,
        image_classes: Sequence[str] = (),
        class_prob_key: str = "class_prob",
        class_label_key: str = "class_label",
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.regions = dict(regions or {})
        self.overlays = overlays
        self.prob_key, self.label_key, self.image_key = prob_key, label_key, image_key
        self.ignore_value = ignore_value
        self.pooled = pooled
        self.photo = photo
        self.image_classes = list(image_classes)
        self.class_prob_key, self.class_label_key = class_prob_key, class_label_key
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
            if self.image_classes:
                row.update(self._classification(item))
            self.cases.append(row)
            if len(self.cases) <= self.overlays:
                truth = label.argmax(0, keepdim=True) if label.shape[0] > 1 else label
                if self.ignore_value is not None:
                    truth = truth.masked_fill(truth == self.ignore_value, 0)
                title = f"{row['case']}  " + self._scores_text(row)
                save_overlay(
                    item[self.image_key],
                    truth,
                    prob.argmax(0, keepdim=True),
                    os.path.join(self.output_dir, "overlays", f"{row['case']}.png"),
                    self.class_names,
                    title=title,
                    photo=self.photo,
                )

    def _classification(self, item: Mapping) -> Dict[str, object]:
        if self.class_prob_key not in item or self.class_label_key not in item:
            raise KeyError(
                f"SegmentationReport has image_classes but the evaluator output has no {self.class_prob_key!r} / "
                f"{self.class_label_key!r}: is the network built with num_classes, and does the post-processing "
                "run SplitUnifiedOutputd and copy the class label?"
            )
        predicted = int(item[self.class_prob_key].argmax())
        true = int(item[self.class_label_key])
        return {"class_true": self.image_classes[true], "class_predicted": self.image_classes[predicted]}

    def _scores_text(self, row: Mapping) -> str:
        names = self.class_names[1:]
        if len(names) > 4:
            present = [n for n in names if row[f"present/{n}"]]
            text = f"mean IoU of the {len(present)} classes present {_mean(row, 'iou', present):.3f}"
        else:
            text = "Dice " + ", ".join(f"{name} {row[f'dice/{name}']:.3f}" for name in names)
        if "class_true" in row:
            text += f"\ntrue {row['class_true']}, predicted {row['class_predicted']}"
        return text

    def _classification_summary(self) -> Dict[str, object]:
        index = {name: i for i, name in enumerate(self.image_classes)}
        matrix = [[0] * len(self.image_classes) for _ in self.image_classes]
        for case in self.cases:
            matrix[index[case["class_true"]]][index[case["class_predicted"]]] += 1
        correct = sum(matrix[i][i] for i in range(len(matrix)))
        return {"top1": correct / len(self.cases), "classes": self.image_classes, "confusion": matrix}

    def _write(self, engine: Engine) -> None:
        if not self.cases:
            return
        self.summary = aggregate_case_metrics(self.cases, self.class_names, self.regions, self.pooled)
        os.makedirs(self.output_dir, exist_ok=True)
        if self.image_classes:
            self.summary["classification"] = self._classification_summary()
            save_confusion(
                self.summary["classification"]["confusion"],
                self.image_classes,
                os.path.join(self.output_dir, "confusion.png"),
                title=f"{len(self.cases)} images",
            )
        with open(os.path.join(self.output_dir, "metrics.json"), "w") as file:
            json.dump({"summary": self.summary, "cases": self.cases}, file, indent=1)
        columns = ["case", "cross_entropy"] + [k for k in self.cases[0] if k.startswith(("dice/", "iou/"))]
        columns += ["class_true", "class_predicted"] if self.image_classes else []
        with open(os.path.join(self.output_dir, "metrics.csv"), "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.cases)
        dice = ", ".join(f"{name} {value:.4f}" for name, value in self.summary["dice"].items())
        regions = self.summary.get("regions", {})
        region_text = "".join(f"; {name} Dice {v['dice']:.4f}" for name, v in regions.items())
        if len(self.summary["dice"]) > 4:
            dice = f"{len(self.summary['dice'])} classes"
        if self.image_classes:
            region_text += f"; classification top-1 {self.summary['classification']['top1']:.4f}"
        self.logger.info(
            f"{len(self.cases)} cases: mean Dice {self.summary['mean_dice']:.4f} ({dice}){region_text}; "
            f"mIoU {self.summary['miou']:.4f}"
            + (f" ({self.summary['miou_with_background']:.4f} with background)" if self.pooled else "")
            + f"; mAP@0.5 {self.summary['map50']:.4f}; "
            f"cross-entropy {self.summary['cross_entropy']:.4f}; written to {self.output_dir}"
        )
