"""FLOP counts two ways: the paper's convention (torchinfo-style mult-adds x 2) and a real operation counter."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from monai_onenet.networks.blocks import SequenceConv

__all__ = ["paper_flops", "real_flops", "reference_sequence_conv"]


@contextlib.contextmanager
def reference_sequence_conv(model: nn.Module) -> Iterator[None]:
    """Run every :class:`SequenceConv` in its straightforward ``Conv1d`` form while the context is open."""
    blocks = [m for m in model.modules() if isinstance(m, SequenceConv)]
    previous = [b.reference for b in blocks]
    for block in blocks:
        block.reference = True
    try:
        yield
    finally:
        for block, flag in zip(blocks, previous):
            block.reference = flag


def _torchinfo_mult_adds(module: nn.Module, output: torch.Tensor) -> int:
    """Mult-adds of one leaf module as torchinfo (1.8) counts them.

    torchinfo charges a convolution ``parameters x batch x output spatial size``. That is right for a convolution
    but ~``2^d`` times too high for a transposed one (its work scales with the *input* size), which is why the
    paper's Table 2 overstates the U-Net and OneNet_e rows. Other layers with parameters cost ``batch x params``.
    """
    params = sum(p.numel() for p in module.parameters(recurse=False))
    if params == 0:
        return 0
    if "Conv" in type(module).__name__:
        return params * output.shape[0] * math.prod(output.shape[2:])
    return params * output.shape[0]


def paper_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs in the paper's convention: 2 x torchinfo-style mult-adds of one eval-mode forward (top head only).

    The spatial conv runs in the authors' ``Conv1d`` form, whose output ``(B, 1, prod(S) * C)`` torchinfo charges
    10 mult-adds per value. Reproduces Table 2 of the paper (e.g. OneNet_ed,4: 23.08 G at 1x3x256x256).
    """
    total = 0

    def hook(module: nn.Module, _: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _torchinfo_mult_adds(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad(), reference_sequence_conv(model):
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * total


def real_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one eval-mode forward counted by ``torch.utils.flop_counter`` (2 per multiply-add).

    Counts convolutions and matrix products as they are executed, transposed convolutions at their true cost;
    the spatial conv is counted in its ``Conv1d`` form (9 taps per value), the model's arithmetic, not the
    zero-padded block form that the fast kernel executes.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), reference_sequence_conv(model), counter:
        model.eval()(x)
    return float(counter.get_total_flops())
