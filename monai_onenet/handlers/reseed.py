"""Make every epoch's randomness a function of the epoch number alone, so a resumed run repeats the original."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.utils import set_determinism

__all__ = ["ReseedEachEpoch"]


class ReseedEachEpoch:
    """At the start of each epoch, seed torch, numpy, Python and the dataset's random transforms with
    ``seed + epoch``.

    Shuffling (the sampler draws from torch's global generator when the epoch's iterator is made), data
    loader workers (seeded from it) and random transforms then depend only on the epoch, not on how many
    epochs ran in this process: training resumed from epoch ``k`` sees the same batches as an uninterrupted run.

    Args:
        seed: the base seed.
        dataset: the training dataset, whose random transforms are re-seeded (worker processes inherit the
            re-seeded state when the epoch's data loader iterator starts them).
    """

    def __init__(self, seed: int, dataset: Any = None) -> None:
        self.seed = seed
        self.dataset = dataset

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        epoch_seed = self.seed + engine.state.epoch
        set_determinism(seed=epoch_seed)
        if self.dataset is not None:
            # DecathlonDataset is itself Randomizable (for its validation split), and set_rnd stops at the first
            # object that has a random state, so seed the dataset's transform directly.
            set_rnd(getattr(self.dataset, "transform", self.dataset), epoch_seed)
