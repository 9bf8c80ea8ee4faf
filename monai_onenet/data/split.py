"""A reproducible train / validation split of a datalist, optionally stratified by an image-level label."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Sequence, TypeVar

import numpy as np

__all__ = ["holdout"]

Item = TypeVar("Item", bound=Dict)


def holdout(
    items: Sequence[Item],
    section: str,
    val_fraction: float = 0.1,
    seed: int = 0,
    stratify_key: Optional[str] = None,
) -> List[Item]:
    """The ``"training"`` or ``"validation"`` part of ``items``, as ``DecathlonDataset`` splits ``imagesTr``.

    The split is a pure function of ``items``, ``val_fraction`` and ``seed``; with ``stratify_key`` every value of
    that key (e.g. each Pet breed) keeps ``val_fraction`` of its items for validation (at least one, when it has
    two or more), so a rare class is never missing from either side. Validation always gets at least
    ``round(len(items) * val_fraction)`` items (and one), drawn from anywhere when the groups are too small.

    Example:
        >>> items = [{"name": i, "breed": i % 2} for i in range(10)]
        >>> val = holdout(items, "validation", 0.2, stratify_key="breed")
        >>> sorted(item["breed"] for item in val), len(holdout(items, "training", 0.2))
        ([0, 1], 8)
    """
    if section not in ("training", "validation"):
        raise ValueError(f"section must be 'training' or 'validation', got {section!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups: Dict[object, List[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[item[stratify_key] if stratify_key else None].append(index)
    rng = np.random.default_rng(seed)
    validation = set()
    for key in sorted(groups, key=str):
        members = groups[key]
        count = int(round(len(members) * val_fraction))
        if stratify_key and val_fraction > 0 and len(members) > 1:
            count = max(count, 1)
        validation.update(rng.permutation(members)[:count].tolist())
    # Groups too small to give up an item (one picture per breed) still leave the split its share overall.
    target = max(1, int(round(len(items) * val_fraction))) if val_fraction > 0 and len(items) > 1 else 0
    rest = [int(i) for i in rng.permutation(len(items)) if int(i) not in validation]
    validation.update(rest[: max(0, target - len(validation))])
    keep = (lambda i: i in validation) if section == "validation" else (lambda i: i not in validation)
    return [item for index, item in enumerate(items) if keep(index)]
