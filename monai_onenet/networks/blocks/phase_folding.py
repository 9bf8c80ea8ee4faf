"""Phase-folded feature maps: the layout in which OneNet's pixel-(un)shuffles become block copies.

A map of spatial size ``s0 * 2^r`` is stored *phase-folded* as ``2^(d r)`` maps of size ``s0`` stacked on the batch
axis, ``(B * 2^(d r), C, *s0)``: the map of phase ``(q_1, ..., q_r)`` holds the pixels whose ``r`` lowest bits of
each coordinate are those digits (``q_1`` the coarsest, ``q_r`` the finest; each ``q_s`` numbers the ``2^d``
offsets of a block in row-major order, as pixel-unshuffle does). Pixel-unshuffle then moves the finest digit from
the batch axis to the channel axis and pixel-shuffle moves it back: each is a copy of contiguous blocks of
``prod(s0)`` values, where on ordinary maps both are element-by-element gathers (the slowest operators of OneNet in
ONNX Runtime). Channel-wise operations (1x1 convolutions, norms, activations) run on folded maps unchanged.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "fold_phases",
    "unfold_phases",
    "phase_unshuffle",
    "phase_shuffle",
    "sequence_neighbour_sources",
    "FoldedSequenceConv",
]


def _digit_axes(spatial_dims: int, levels: int) -> Tuple[List[int], List[int]]:
    """Axes of ``(B, C, s0_1, 2, ..., 2, s0_2, 2, ...)`` (``levels`` twos per dimension, coarsest bit first):
    the phase digits in folded order (digit by digit, each over the dimensions) and the ``s0`` axes."""
    bases = [2 + i * (levels + 1) for i in range(spatial_dims)]
    digits = [base + s for s in range(1, levels + 1) for base in bases]
    return digits, bases


def fold_phases(x: torch.Tensor, levels: int) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B * 2^(d levels), C, *S / 2^levels)``, phase-folded ``levels`` times.

    Example::

        >>> fold_phases(torch.arange(16).view(1, 1, 4, 4), 1)[:, 0]
        tensor([[[ 0,  2],
                 [ 8, 10]],
        <BLANKLINE>
                [[ 1,  3],
                 [ 9, 11]],
        <BLANKLINE>
                [[ 4,  6],
                 [12, 14]],
        <BLANKLINE>
                [[ 5,  7],
                 [13, 15]]])
    """
    spatial_dims = x.dim() - 2
    factor = 2**levels
    reduced = [int(s) // factor for s in x.shape[2:]]
    split: List[int] = [-1, int(x.shape[1])]
    for size in reduced:
        split += [size] + [2] * levels
    digits, bases = _digit_axes(spatial_dims, levels)
    return x.reshape(split).permute([0] + digits + [1] + bases).reshape([-1, int(x.shape[1])] + reduced)


def unfold_phases(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The inverse of :func:`fold_phases`: ``(B * 2^(d levels), C, *s0)`` -> ``(B, C, *s0 * 2^levels)``."""
    spatial_dims = x.dim() - 2
    reduced = [int(s) for s in x.shape[2:]]
    channels = int(x.shape[1])
    digits, bases = _digit_axes(spatial_dims, levels)
    folded_order = [0] + digits + [1] + bases
    inverse = [folded_order.index(axis) for axis in range(len(folded_order))]
    unfolded = x.reshape([-1] + [2] * (spatial_dims * levels) + [channels] + reduced).permute(inverse)
    return unfolded.reshape([-1, channels] + [size * 2**levels for size in reduced])


def phase_unshuffle(x: torch.Tensor) -> torch.Tensor:
    """Pixel-unshuffle by 2 of a phase-folded map: ``(B * P, C, *s0)`` -> ``(B * P / 2^d, C * 2^d, *s0)``, in
    :func:`monai.networks.utils.pixelunshuffle`'s channel order (channel ``c * 2^d + offset``)."""
    block = 2 ** (x.dim() - 2)
    channels = int(x.shape[1])
    reduced = [int(s) for s in x.shape[2:]]
    moved = x.reshape(-1, block, channels, math.prod(reduced)).permute(0, 2, 1, 3)
    return moved.reshape([-1, channels * block] + reduced)


def phase_shuffle(x: torch.Tensor) -> torch.Tensor:
    """Pixel-shuffle by 2 of a phase-folded map, the inverse of :func:`phase_unshuffle`."""
    block = 2 ** (x.dim() - 2)
    channels = int(x.shape[1]) // block
    reduced = [int(s) for s in x.shape[2:]]
    moved = x.reshape(-1, channels, block, math.prod(reduced)).permute(0, 2, 1, 3)
    return moved.reshape([-1, channels] + reduced)


def sequence_neighbour_sources(
    spatial_shape: Sequence[int], levels: int, channels: int, pad: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Where the values the paper's spatial conv reads beyond each pixel's own channels lie in a folded map.

    The conv slides over the channels-last flattening of the whole map, reflect-padded by ``pad`` at its two ends:
    at pixel ``p`` its window reaches the ``pad`` values before channel 0 and the ``pad`` values after the last
    channel (the neighbouring pixels' channels, or reflected values at the two ends).

    Args:
        spatial_shape: spatial size of the (unfolded) map.
        levels: how many times the map is phase-folded.
        channels: channels per pixel.
        pad: the conv's reach on each side (``kernel_size // 2``).

    Returns:
        ``(before, after)``, each ``(2^(d levels), pad, *s0)``: flat indices into one batch item of the folded map
        ``(2^(d levels), channels, *s0)`` of the values sequence positions ``p * channels - pad + j`` and
        ``(p + 1) * channels + j`` hold, for the pixel ``p`` at each folded position.
    """
    spatial_dims = len(spatial_shape)
    pixels = math.prod(spatial_shape)
    length = pixels * channels
    if length <= pad:
        raise ValueError(f"A map of {length} values is too short for a reflect padding of {pad}.")
    pixel_at = fold_phases(torch.arange(pixels).reshape([1, 1] + list(spatial_shape)), levels).reshape(-1)
    block = pixel_at.numel() // 2 ** (spatial_dims * levels)
    position = torch.arange(pixel_at.numel())
    start = torch.empty_like(position)
    start[pixel_at] = (position // block) * channels * block + position % block

    def source(index: torch.Tensor) -> torch.Tensor:
        index = torch.where(index < 0, -index, index)
        index = torch.where(index > length - 1, 2 * (length - 1) - index, index)
        return start[index // channels] + (index % channels) * block

    offsets = torch.arange(pad)
    before = source(pixel_at[:, None] * channels - pad + offsets)
    after = source((pixel_at[:, None] + 1) * channels + offsets)
    shape = [-1, block, pad]
    folded_shape = [-1, pad] + [int(s) // 2**levels for s in spatial_shape]
    return (
        before.reshape(shape).permute(0, 2, 1).reshape(folded_shape),
        after.reshape(shape).permute(0, 2, 1).reshape(folded_shape),
    )


def _phase_count(channels: int) -> int:
    """Output channels of the polyphase form: the largest of 8, 4, 2, 1 that divides ``channels`` (8 ran fastest in
    ONNX Runtime on OneNet_ed,4: 0.8-0.9x eager torch, against 0.85-1.0x with 4 and 0.9-1.1x with 1)."""
    return next(count for count in (8, 4, 2, 1) if channels % count == 0)


class FoldedSequenceConv(nn.Module):
    """The paper's spatial conv (:class:`~monai_onenet.networks.blocks.SequenceConv`) on a phase-folded map.

    Each pixel's channels are put between the ``pad`` values before them and the ``pad`` after them in the
    flattened sequence (gathered from wherever the neighbouring pixels lie in the folded map), and one strided
    convolution along that channel axis computes ``m`` neighbouring outputs at once (polyphase form, ``m`` output
    channels; ONNX Runtime runs it as one small matrix product per pixel block instead of a one-channel filter over
    millions of values). The result is the faithful conv, reflect padding included, to float rounding.

    Args:
        conv: the :class:`~monai_onenet.networks.blocks.SequenceConv` to compute; its weights are used, not copied.
        spatial_shape: spatial size of the unfolded map it sees.
        levels: how many times that map is phase-folded.
        channels: channels of that map.
        polyphase_order: leave the output channels in the order the polyphase conv makes them (see
            :meth:`channel_order`) instead of the map's.
    """

    def __init__(
        self, conv: nn.Module, spatial_shape: Sequence[int], levels: int, channels: int, polyphase_order: bool = False
    ):
        super().__init__()
        self.sequence_conv = conv
        self.polyphase_order = polyphase_order
        self.pad = conv.pad
        self.phases = _phase_count(channels)
        before, after = sequence_neighbour_sources(spatial_shape, levels, channels, self.pad)
        # int32 halves the indices an ONNX file stores (they grow with the map: 6.6 MB as int64 at 256²)
        index_type = torch.int32 if math.prod(spatial_shape) * channels < 2**31 else torch.int64
        self.register_buffer("before", before.to(index_type), persistent=False)
        self.register_buffer("after", after.to(index_type), persistent=False)
        # Slot (phase, offset) of the polyphase kernel holds tap `offset - phase` (index k: a zero).
        size = conv.conv.weight.numel()
        offset = torch.arange(self.phases + size - 1)
        tap = offset[None, :] - torch.arange(self.phases)[:, None]
        self.register_buffer("tap_index", torch.where((tap >= 0) & (tap < size), tap, size), persistent=False)

    def polyphase_kernel(self) -> torch.Tensor:
        """``(m, 1, 1, m + k - 1, 1)``: output phase ``r`` applies the ``k`` taps from offset ``r``."""
        taps = self.sequence_conv.conv.weight.reshape(-1)
        kernel = torch.cat([taps, taps.new_zeros(1)])[self.tap_index]
        return kernel.reshape(self.phases, 1, 1, int(self.tap_index.shape[1]), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = int(x.shape[1])
        reduced = [int(s) for s in x.shape[2:]]
        items = x.reshape(-1, self.before.numel() // self.pad * channels)
        before = items[:, self.before].reshape([-1, self.pad] + reduced)
        after = items[:, self.after].reshape([-1, self.pad] + reduced)
        # Batch 1, the folded maps along a depth axis of kernel 1: ONNX Runtime convolves batch items one by one.
        sequence = torch.cat([before, x, after], dim=1).reshape(1, 1, -1, channels + 2 * self.pad, math.prod(reduced))
        bias = self.sequence_conv.conv.bias
        out = F.conv3d(sequence, self.polyphase_kernel(), bias.expand(self.phases), stride=(1, self.phases, 1))
        out = self.sequence_conv.act(out)  # (1, m, B', channels / m, ...)
        if not self.polyphase_order:
            return out.permute(2, 3, 1, 0, 4).reshape([-1, channels] + reduced)
        return out.permute(2, 1, 3, 0, 4).reshape([-1, channels] + reduced)

    def channel_order(self, channels: int) -> torch.Tensor:
        """With ``polyphase_order``, the channel of the conv's output that each output channel holds: phase by
        phase (``r * channels / m + i`` holds ``i * m + r``), which spares the copy into channel order when the
        consumer reads its input channels in any order (see
        :meth:`~monai_onenet.networks.blocks.ChannelConvStack.step_reordered`)."""
        if not self.polyphase_order:
            return torch.arange(channels)
        return torch.arange(channels).reshape(-1, self.phases).t().reshape(-1)
