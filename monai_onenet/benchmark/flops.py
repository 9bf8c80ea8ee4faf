"""FLOP counts two ways: the paper's convention (torchinfo-style mult-adds x 2) and a real operation counter."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["module_by_module", "paper_flops", "real_flops"]


@contextlib.contextmanager
def module_by_module(model: nn.Module) -> Iterator[None]:
    """Switch off every block's ``fast_path`` while the context is open.

    The fast paths compute the same function differently: the spatial conv in block form (with zero taps) and
    eval-mode norms folded into the next convolution (so those modules are never called). Counting runs the
    model as written, module by module: the spatial conv as the authors' ``Conv1d``, every norm as itself.
    """
    blocks = [m for m in model.modules() if hasattr(m, "fast_path")]
    previous = [b.fast_path for b in blocks]
    for block in blocks:
        block.fast_path = False
    try:
        yield
    finally:
        for block, flag in zip(blocks, previous):
            block.fast_path = flag


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
        with torch.no_grad(), module_by_module(model):
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * total


def real_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one eval-mode forward counted by ``torch.utils.flop_counter`` (2 per multiply-add).

    Counts convolutions and matrix products as they are executed, transposed convolutions at their true cost;
    the model runs module by module (:func:`module_by_module`), so the spatial conv counts 9 taps per value, the
    model's arithmetic, not the zero taps of its block form.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), module_by_module(model), counter:
        model.eval()(x)
    return float(counter.get_total_flops())
