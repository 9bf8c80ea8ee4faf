"""The paper's spatial convolution ("SP"): one shared 1D filter over the channels-last flattened feature map."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer

from monai_onenet.networks.blocks.fused_conv import onednn_conv, runs_fused_relu
from monai_onenet.networks.blocks.layout import channels_first_view, channels_last_view

__all__ = ["SequenceConv", "sequence_conv_reference", "sequence_conv_shifted_add"]


def _flatten(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` -> the channels-last sequence ``(B, 1, prod(S) * C)``."""
    return channels_last_view(x).reshape(x.shape[0], 1, -1)


def _unflatten(sequence: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_flatten`, back to the shape of ``like``."""
    shape: List[int] = [like.shape[0]] + [int(s) for s in like.shape[2:]] + [like.shape[1]]
    return channels_first_view(sequence.reshape(shape))


def sequence_conv_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """The straightforward form of the paper's spatial conv, kept as the ground truth.

    Flattens ``(B, C, *S)`` channels-last into one sequence ``(B, 1, prod(S) * C)``, reflect-pads it by
    ``k // 2`` at its two ends only, runs ``Conv1d(1, 1, k)`` with ``weight`` ``(1, 1, k)`` and ``bias`` and
    restores the shape.
    """
    pad = weight.shape[-1] // 2
    return _unflatten(F.conv1d(F.pad(_flatten(x), [pad, pad], mode="reflect"), weight, bias), x)


def sequence_conv_shifted_add(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """The same filter as :func:`sequence_conv_reference`, written as ``k`` shifted multiply-adds of the sequence.

    Kept as the yardstick the block form of :class:`SequenceConv` is timed against
    (``python -m monai_onenet.benchmark sequence_conv``).
    """
    sequence = _flatten(x)
    kernel_size = weight.shape[-1]
    pad = kernel_size // 2
    padded = F.pad(sequence, [pad, pad], mode="reflect")
    length = sequence.shape[-1]
    taps = weight.reshape(-1)
    out = padded[..., :length] * taps[0]
    for tap in range(1, kernel_size):
        out = out.add_(padded[..., tap : tap + length], alpha=float(taps[tap]))
    if bias is not None:
        out = out.add_(bias)
    return _unflatten(out, x)


def _block_size(channels: int, pad: int) -> int:
    """Largest of 8 / 4 / 16 / ... that divides ``channels`` and covers the filter's reach; 0 if none."""
    for block in (8, 16, 4, 32, 64):
        if block >= pad and channels % block == 0:
            return block
    return 0


class SequenceConv(nn.Module):
    """Spatial conv of OneNet's 1D blocks, faithful to the authors' code, then an activation.

    One ``Conv1d(1, 1, kernel_size)`` (``kernel_size + 1`` parameters) slides over the channels-last flattening of
    the whole feature map, reflect-padded at the two ends of that sequence only. It mostly filters across
    neighbouring channels of one pixel and leaks into the previous / next pixel in row-major order.

    Run as written (permute, pad, ``Conv1d`` with one channel) it dominates OneNet's run time: oneDNN has no
    fast kernel for a one-channel convolution over a sequence of millions. Here the same filter runs in
    polyphase form: the sequence is cut into blocks of ``b`` values (``b`` divides the channel count) and the
    9-tap filter becomes a ``b -> b`` convolution of kernel 3 over blocks, on a channels-last view of the input
    (no copy), followed by an exact fix of the ``k // 2`` reflect-padded values at each end. Outputs match
    :func:`sequence_conv_reference` to float rounding. In an encoder level's inference it runs together with the
    pixel-unshuffle before it, as one strided convolution of the level's input
    (:func:`~monai_onenet.networks.blocks.unshuffled_sequence_conv.unshuffled_sequence_conv`). Set
    ``fast_path = False`` to run the straightforward form
    (the FLOP counter does, so that it counts the model's arithmetic, not the block form's zero taps). Traces record
    the straightforward form (ONNX Runtime runs its one-channel ``Conv1d`` 3x faster than the block form); the ONNX
    export of OneNet_ed runs it on phase-folded maps instead
    (:class:`~monai_onenet.networks.blocks.phase_folding.FoldedSequenceConv`).

    Args:
        channels: channels of the input; fixes the block size of the fast form.
        kernel_size: filter length (odd). Defaults to 9, the paper's.
        act: activation after the filter. Defaults to ReLU.

    Example::

        >>> sp = SequenceConv(channels=64)
        >>> sp(torch.randn(2, 64, 32, 32)).shape
        torch.Size([2, 64, 32, 32])
    """

    def __init__(self, channels: int, kernel_size: int = 9, act: str | tuple | None = ("relu", {"inplace": True})):
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 3:
            raise ValueError(f"SequenceConv needs an odd kernel_size of at least 3, got {kernel_size}.")
        self.conv = nn.Conv1d(1, 1, kernel_size)
        self.pad = kernel_size // 2
        self.block = _block_size(channels, self.pad)
        self.fast_path = True
        self.act = nn.Identity() if act is None else get_act_layer(act)
        # Slot (out, in, shift) of the block-form kernel holds tap `tap_index` of the filter (index k: a zero).
        index = torch.full((max(self.block, 1), max(self.block, 1), 3), kernel_size, dtype=torch.long)
        for out_pos in range(self.block):
            for tap in range(kernel_size):
                shift, in_pos = divmod(out_pos + tap - self.pad, self.block)
                index[out_pos, in_pos, shift + 1] = tap
        self.register_buffer("tap_index", index, persistent=False)

    def _block_form(self, x: torch.Tensor, fuse_relu: bool = False) -> torch.Tensor:
        """The polyphase form; with ``fuse_relu`` (see :func:`runs_fused_relu`) the ReLU runs inside the
        convolution and on the fixed end values."""
        batch = x.shape[0]
        sequence = _flatten(x).reshape(batch, -1)
        length = sequence.shape[1]
        taps = torch.cat([self.conv.weight.reshape(-1), self.conv.weight.new_zeros(1)])
        kernel = taps[self.tap_index].unsqueeze(-2)
        bias = self.conv.bias
        assert bias is not None
        # (B, L) -> (B, 1, L/b, b) -> (B, b, 1, L/b): channels-last view, no copy when `sequence` is contiguous. (The
        # blocks along the width: oneDNN ran this 15-20% faster than the same blocks along the height.)
        blocks = sequence.reshape(batch, 1, length // self.block, self.block).permute(0, 3, 1, 2)
        # is_scripting() stays last in these conditions: it drops the branches, which TorchScript cannot compile.
        if fuse_relu and not torch.jit.is_scripting():
            relu_bias = bias.expand(self.block).contiguous()
            filtered = onednn_conv(blocks, kernel, relu_bias, [0, 1], [1, 1], [1, 1], activation="relu")
        else:
            filtered = F.conv2d(blocks, kernel, bias.expand(self.block), padding=(0, 1))
        out = filtered.permute(0, 2, 3, 1).reshape(batch, length)
        edge = 2 * self.pad
        head = F.conv1d(F.pad(sequence[:, None, :edge], [self.pad, self.pad], mode="reflect"), self.conv.weight, bias)
        tail = F.conv1d(F.pad(sequence[:, None, -edge:], [self.pad, self.pad], mode="reflect"), self.conv.weight, bias)
        if fuse_relu and not torch.jit.is_scripting():
            head, tail = torch.relu(head), torch.relu(tail)
        out[:, : self.pad] = head[:, 0, : self.pad]
        out[:, length - self.pad :] = tail[:, 0, self.pad :]
        return _unflatten(out, x)

    @torch.jit.unused
    def _fuses_relu(self, x: torch.Tensor) -> bool:
        return runs_fused_relu(x, self.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Traced graphs keep the authors' form: ONNX Runtime runs the one-channel Conv1d fast and the block form
        # 3x slower.
        fast = self.fast_path and not torch.jit.is_tracing() and self.block > 0 and x.shape[1] % self.block == 0
        if fast and x[0].numel() >= 2 * self.pad + self.block:
            # is_scripting() stays last in this condition: it drops the branch, which TorchScript cannot compile.
            if x.device.type == "cpu" and not torch.jit.is_scripting():
                if self._fuses_relu(x):  # one pass less over the output
                    return self._block_form(x, fuse_relu=True)
            return self.act(self._block_form(x))
        # The authors' form, through the Conv1d module itself so that module hooks (torchinfo) see it.
        return self.act(_unflatten(self.conv(F.pad(_flatten(x), [self.pad, self.pad], mode="reflect")), x))
