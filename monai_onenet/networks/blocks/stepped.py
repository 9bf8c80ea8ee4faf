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

    def __init__(self, *args):
        super().__init__(*args)
        # TorchScript has no len() of a module with methods of its own. The chain is fixed once built: to change
        # it, build a new one (append / insert / del would leave this count behind, and step() then raises).
        self.steps = len(self)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "steps" not in self.__dict__:  # a whole model pickled before chains were stepped
            self.steps = len(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.steps):
            x = self.step(x, index)
        return x

    def step(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Run layer ``index`` alone.

        Args:
            x: the output of step ``index - 1`` (the chain's input for ``index == 0``).
            index: which layer, ``0 <= index < steps``.
        """
        return self.plain_step(x, index)

    def plain_step(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Layer ``index`` as it is (subclasses that override :meth:`step` fall back to it; TorchScript has no
        ``super()``)."""
        if not torch.jit.is_scripting():
            self._check_unchanged()
        if index < 0 or index >= self.steps:
            raise IndexError(f"Step {index} of a chain of {self.steps} layers.")
        for position, layer in enumerate(self):  # TorchScript indexes a module list by a constant only
            if position == index:
                x = layer(x)
        return x

    @torch.jit.unused
    def _check_unchanged(self) -> None:
        if len(self) != self.steps:
            raise RuntimeError(
                f"This chain was built with {self.steps} layers and now has {len(self)}; build a new one."
            )
