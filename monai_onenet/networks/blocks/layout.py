"""Moving the channel axis last and back, with explicit non-negative permutations (ONNX opset 17 needs them)."""

from __future__ import annotations

from typing import List

import torch

__all__ = ["channels_last_view", "channels_first_view"]


def channels_last_view(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B, *S, C)``; a view, contiguous when ``x`` is stored channels-last."""
    order: List[int] = [0] + list(range(2, x.dim())) + [1]
    return x.permute(order)


def channels_first_view(x: torch.Tensor) -> torch.Tensor:
    """``(B, *S, C)`` -> ``(B, C, *S)``; a view, stored channels-last when ``x`` is contiguous."""
    order: List[int] = [0, x.dim() - 1] + list(range(1, x.dim() - 1))
    return x.permute(order)
