"""Record the training loss and the validation metric per epoch; write ``history.json`` and ``curves.png``."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

from ignite.engine import Engine, Events

from monai_onenet.visualize import save_curves

__all__ = ["TrainingCurves"]


class TrainingCurves:
    """Attach to the trainer; ``history.json`` and ``curves.png`` in ``output_dir`` are updated every epoch.

    On a resumed run the history written before the interruption is kept up to the resumed epoch.

    Args:
        output_dir: where to write.
        validator: the evaluator run by ``ValidationHandler``; its key metric is recorded after each validation.
        metric_name: the validator metric to plot (default: its key metric).
    """

    def __init__(self, output_dir: str, validator: Optional[Engine] = None, metric_name: Optional[str] = None):
        self.output_dir = output_dir
        self.validator = validator
        self.metric_name = metric_name
        self.history: List[Dict[str, float]] = []
        self._losses: List[float] = []
        self._metric: Optional[float] = None

    @property
    def history_path(self) -> str:
        return os.path.join(self.output_dir, "history.json")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._load)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record_loss)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)
        if self.validator is not None:
            self.validator.add_event_handler(Events.COMPLETED, self._record_metric)

    def _load(self, engine: Engine) -> None:
        if os.path.isfile(self.history_path):
            with open(self.history_path) as file:
                self.history = [h for h in json.load(file) if h["epoch"] <= engine.state.epoch]

    def _record_loss(self, engine: Engine) -> None:
        output = engine.state.output
        item = output[0] if isinstance(output, list) else output
        self._losses.append(float(item["loss"]))

    def _record_metric(self, validator: Engine) -> None:
        name = self.metric_name or getattr(validator.state, "key_metric_name", None)
        if name is None and validator.state.metrics:
            name = next(iter(validator.state.metrics))
        self.metric_name = name
        self._metric = float(validator.state.metrics[name]) if name in validator.state.metrics else None

    def _write(self, engine: Engine) -> None:
        entry: Dict[str, float] = {"epoch": engine.state.epoch}
        if self._losses:
            entry["train_loss"] = sum(self._losses) / len(self._losses)
        if self._metric is not None:
            entry[self.metric_name] = self._metric
        self.history.append(entry)
        self._losses, self._metric = [], None
        os.makedirs(self.output_dir, exist_ok=True)
        with open(self.history_path, "w") as file:
            json.dump(self.history, file, indent=1)
        save_curves(self.history, os.path.join(self.output_dir, "curves.png"), self.metric_name or "val_mean_dice")
