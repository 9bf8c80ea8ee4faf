"""A chain of layers that a caller can run one layer at a time, to free each layer's input early."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["SteppedSequential"]


class SteppedSequential(nn.Sequential):
    """``nn.Sequential`` with :meth:`step`, which runs one layer.

    ``chain(x)`` keeps the caller's ``x`` alive until the whole chain returns. A caller that writes
    ``for i in range(chain.steps): x = chain.step(x, i)`` frees each layer's input once the next layer has its
    output, which lowers the eval-mode memory peak of a wide, high-resolution level by one feature map.

    Example::

        >>> chain = SteppedSequential(nn.Linear(4, 3), nn.ReLU())
        >>> x = torch.randn(2, 4)
        >>> for index in range(chain.steps):
        ...     x = chain.step(x, index)
        >>> x.shape
        torch.Size([2, 3])
    """

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.steps = len(layers)  # TorchScript has no len() of a module with methods of its own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.steps):
            x = self.step(x, index)
        return x

    def step(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return self.plain_step(x, index)

    def plain_step(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Layer ``index`` as it is (subclasses that override :meth:`step` fall back to it; TorchScript has no
        ``super()``)."""
        for position, layer in enumerate(self):  # TorchScript indexes a module list by a constant only
            if position == index:
                x = layer(x)
        return x
