"""Phase-folded feature maps: the layout in which OneNet's pixel-(un)shuffles are reshapes.

A map of spatial size ``s0 * 2^r`` is stored *phase-folded* as its ``P = 2^(d r)`` sub-maps of size ``s0`` stacked
along the first spatial axis, ``(B, C, P * s0_1, s0_2, ..., s0_d)``. Sub-map ``p`` holds the pixels whose ``r``
lowest bits of each coordinate are the digits of ``p``, the finest bit most significant: ``p = q_0 * 2^(d (r - 1))
+ q_1 * 2^(d (r - 2)) + ...``, where ``q_j`` numbers the ``2^d`` values of bit ``j`` over the dimensions in
row-major order, as pixel-unshuffle numbers the offsets of a block. Pixel-unshuffle then takes the most significant
digit from the sub-map index into the channel index (channel ``c * 2^d + q_0``) and pixel-shuffle gives it back:
both are reshapes, where on ordinary maps both are element-by-element copies (the slowest operators of OneNet in
ONNX Runtime). Channel-wise operations (1x1 convolutions, norms, activations) run on folded maps unchanged, and each
batch item stays one image whose channels are its outermost axis, so the paper's spatial conv reads every pixel's
channel sequence as a column of it. Only the input is folded and the output unfolded, once each.
"""

from __future__ import annotations

import functools
import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "fold_phases",
    "unfold_phases",
    "phase_unshuffle",
    "phase_shuffle",
    "sequence_neighbour_sources",
    "DENSE_MAX_CHANNELS",
    "FoldedSequenceConv",
]


def _digit_axes(spatial_dims: int, levels: int) -> Tuple[List[int], List[int]]:
    """Axes of ``(B, C, s0_1, 2, ..., 2, s0_2, 2, ...)`` (``levels`` twos per dimension, coarsest bit first):
    the phase digits in folded order (finest bit first, each over the dimensions) and the ``s0`` axes."""
    bases = [2 + i * (levels + 1) for i in range(spatial_dims)]
    digits = [base + bit for bit in range(levels, 0, -1) for base in bases]
    return digits, bases


def _space_to_depth(x: torch.Tensor, block: int) -> torch.Tensor:
    """ONNX's ``SpaceToDepth`` in torch: ``(B, C, H, W)`` -> ``(B, b^2 C, H / b, W / b)``, channel ``(row offset * b
    + column offset) * C + c``."""
    batch, channels, height, width = (int(s) for s in x.shape)
    blocks = x.reshape(batch, channels, height // block, block, width // block, block).permute(0, 3, 5, 1, 2, 4)
    return blocks.reshape(batch, block * block * channels, height // block, width // block)


class _SpaceToDepth(torch.autograd.Function):
    """:func:`_space_to_depth` as the one ONNX node it is (no torch operator exports as ``SpaceToDepth``). ONNX
    Runtime runs it 3-4x faster than the transpose that the permute form exports as. Used only inside an ONNX export:
    elsewhere the plain form keeps forward-mode AD, ``vmap`` and saved traces working."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: int) -> torch.Tensor:  # type: ignore[override]
        ctx.block = block
        return _space_to_depth(x, block)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:  # type: ignore[override]
        block = ctx.block
        batch, depth, height, width = (int(s) for s in grad.shape)
        channels = depth // (block * block)
        spread = grad.reshape(batch, block, block, channels, height, width).permute(0, 3, 4, 1, 5, 2)
        return spread.reshape(batch, channels, height * block, width * block), None

    @staticmethod
    def symbolic(g: Any, x: Any, block: int) -> Any:  # the node the TorchScript-based exporter writes
        return g.op("SpaceToDepth", x, blocksize_i=block)


def _fold_by_permute(x: torch.Tensor, levels: int) -> torch.Tensor:
    """:func:`fold_phases` of any map as one permute of its ``2 + d (levels + 1)`` axes."""
    spatial_dims = x.dim() - 2
    factor = 2**levels
    reduced = [int(s) // factor for s in x.shape[2:]]
    channels = int(x.shape[1])
    split: List[int] = [-1, channels]
    for size in reduced:
        split += [size] + [2] * levels
    digits, bases = _digit_axes(spatial_dims, levels)
    folded = x.reshape(split).permute([0, 1] + digits + bases)
    return folded.reshape([-1, channels, 2 ** (spatial_dims * levels) * reduced[0]] + reduced[1:])


@functools.cache
def _phase_offsets(levels: int) -> Tuple[int, ...]:
    """For each phase of a 2D map folded ``levels`` times, the offset ``row * 2^levels + column`` in its block of
    the pixels it holds. Plain integers: a cached tensor would keep whatever mode made it (fake, meta, inference)."""
    offsets = []
    for phase in range(4**levels):
        row = column = 0
        for bit in range(levels):  # the finest bit's digit is the most significant
            digit = (phase >> (2 * (levels - 1 - bit))) & 3
            row |= (digit >> 1) << bit
            column |= (digit & 1) << bit
        offsets.append(row * 2**levels + column)
    return tuple(offsets)


def fold_phases(x: torch.Tensor, levels: int) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B, C, 2^(d levels) * S_1 / 2^levels, S_2 / 2^levels, ...)``, phase-folded ``levels``
    times.

    A 2D map is cut into its ``2^levels``-pixel blocks' sub-maps (ONNX ``SpaceToDepth``) and those are put in phase
    order (a ``Gather`` of whole sub-maps): in ONNX Runtime 3-4x faster than one transpose of ``2 + 2 (levels + 1)``
    axes, which moves each value on its own. Other maps take that transpose.

    Example::

        >>> fold_phases(torch.arange(16).view(1, 1, 4, 4), 1)[0, 0]
        tensor([[ 0,  2],
                [ 8, 10],
                [ 1,  3],
                [ 9, 11],
                [ 4,  6],
                [12, 14],
                [ 5,  7],
                [13, 15]])
    """
    if x.dim() != 4 or levels == 0:
        return _fold_by_permute(x, levels)
    block = 2**levels
    channels, height, width = (int(s) for s in x.shape[1:])
    # sub-map c * P + p of the result is channel c of block offset offsets[p], which SpaceToDepth puts at
    # offsets[p] * C + c
    offsets = _phase_offsets(levels)
    source = torch.tensor([o * channels + c for c in range(channels) for o in offsets], device=x.device)
    blocks = _SpaceToDepth.apply(x, block) if torch.onnx.is_in_onnx_export() else _space_to_depth(x, block)
    return blocks.index_select(1, source).reshape(-1, channels, block * block * (height // block), width // block)


def unfold_phases(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The inverse of :func:`fold_phases`: ``(B, C, P * s0_1, s0_2, ...)`` -> ``(B, C, *s0 * 2^levels)``.

    A 2D map puts its sub-maps in block-offset order (a ``Gather``) and then pixel-shuffles them (ONNX
    ``DepthToSpace``), as :func:`fold_phases` does the reverse."""
    spatial_dims = x.dim() - 2
    reduced = [int(x.shape[2]) // 2 ** (spatial_dims * levels)] + [int(s) for s in x.shape[3:]]
    channels = int(x.shape[1])
    if spatial_dims == 2 and levels > 0:
        phases = 4**levels
        offsets = _phase_offsets(levels)
        by_offset = torch.tensor(sorted(range(phases), key=offsets.__getitem__), device=x.device)
        sub_maps = x.reshape([-1, channels, phases] + reduced).index_select(2, by_offset)
        return F.pixel_shuffle(sub_maps.reshape([-1, channels * phases] + reduced), 2**levels)
    digits, bases = _digit_axes(spatial_dims, levels)
    folded_order = [0, 1] + digits + bases
    inverse = [folded_order.index(axis) for axis in range(len(folded_order))]
    unfolded = x.reshape([-1, channels] + [2] * (spatial_dims * levels) + reduced).permute(inverse)
    return unfolded.reshape([-1, channels] + [size * 2**levels for size in reduced])


def phase_unshuffle(x: torch.Tensor) -> torch.Tensor:
    """Pixel-unshuffle by 2 of a phase-folded map (folded at least once; the result is folded once less), in
    :func:`monai.networks.utils.pixelunshuffle`'s channel order (channel ``c * 2^d + offset``): a reshape, since the
    digit it moves is the most significant of the sub-map number."""
    block = 2 ** (x.dim() - 2)
    return x.reshape([-1, int(x.shape[1]) * block, int(x.shape[2]) // block] + [int(s) for s in x.shape[3:]])


def phase_shuffle(x: torch.Tensor) -> torch.Tensor:
    """Pixel-shuffle by 2 of a phase-folded map (the result is folded once more), the inverse of
    :func:`phase_unshuffle`: a reshape."""
    block = 2 ** (x.dim() - 2)
    return x.reshape([-1, int(x.shape[1]) // block, int(x.shape[2]) * block] + [int(s) for s in x.shape[3:]])


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
        ``(before, after)``, each ``(pad, pixels)``: flat indices into one batch item of the folded map (``channels``
        planes of ``pixels`` values) of the values sequence positions ``p * channels - pad + j`` and
        ``(p + 1) * channels + j`` hold, for the pixel ``p`` at each folded position.
    """
    pixels = math.prod(spatial_shape)
    length = pixels * channels
    if length <= pad:
        raise ValueError(f"A map of {length} values is too short for a reflect padding of {pad}.")
    pixel_at = fold_phases(torch.arange(pixels).reshape([1, 1] + list(spatial_shape)), levels).reshape(-1)
    stored_at = torch.empty_like(pixel_at)
    stored_at[pixel_at] = torch.arange(pixels)

    def source(index: torch.Tensor) -> torch.Tensor:
        index = torch.where(index < 0, -index, index)
        index = torch.where(index > length - 1, 2 * (length - 1) - index, index)
        return stored_at[index // channels] + (index % channels) * pixels

    offsets = torch.arange(pad)[:, None]
    return source(pixel_at * channels - pad + offsets), source((pixel_at + 1) * channels + offsets)


def _tap_slots(tap: torch.Tensor, size: int) -> torch.Tensor:
    """Which of a ``size``-tap filter's taps each slot of a kernel holds: ``tap`` where it is one, else ``size``
    (the zero appended after the taps)."""
    return torch.where((tap >= 0) & (tap < size), tap, size)


DENSE_MAX_CHANNELS = 64
"""Widest map without a skip that :class:`FoldedSequenceConv` filters in dense form by default (measured at 64, the
top level of OneNet_ed,4; wider maps cost it more multiply-adds than the polyphase form). Narrower networks also get
it at their encoder levels, where it was not timed."""


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

    A decoder level filters its skip and its upsampled input put one after the other: called with ``skip``, it
    filters ``cat([skip, x])`` without making that copy of the map, gathering the neighbouring values from the
    ``pad + 1`` first channels of ``skip`` and the ``pad + 1`` last of ``x``, the only ones they come from.

    A narrow map without a skip (OneNet_ed,4's top decoder level, 64 channels at full resolution) is filtered in
    *dense* form instead: the ``2 pad`` values beyond each pixel, gathered as above, are put after its channels, and
    one 1x1 convolution with a banded ``C x (C + 2 pad)`` weight computes the filter, its ReLU fused. ONNX Runtime runs
    it in its blocked layout, which it cannot do for the polyphase convolution: at that level the convolution took
    2.8 against 5.0 ms (its profiler), and the whole network 0.98x. It costs ``C + 2 pad`` multiply-adds per output
    against the polyphase form's ``m + k - 1``, so only narrow maps gain.

    Args:
        conv: the :class:`~monai_onenet.networks.blocks.SequenceConv` to compute; its weights are used, not copied.
        spatial_shape: spatial size of the unfolded map it sees.
        levels: how many times that map is phase-folded.
        channels: channels of that map (the skip's and ``x``'s together).
        polyphase_order: leave the output channels in the order the polyphase conv makes them (see
            :meth:`channel_order`) instead of the map's.
        skip_channels: channels of the skip it will be called with; 0 (default) for none.
        dense: use the dense form (its output is in the map's channel order; ``polyphase_order`` is ignored). None
            (default): for maps without a skip of at most :data:`DENSE_MAX_CHANNELS` channels.
    """

    def __init__(
        self,
        conv: nn.Module,
        spatial_shape: Sequence[int],
        levels: int,
        channels: int,
        polyphase_order: bool = False,
        skip_channels: int = 0,
        dense: Optional[bool] = None,
    ):
        super().__init__()
        if dense is None:
            dense = skip_channels == 0 and channels <= DENSE_MAX_CHANNELS
        if dense and skip_channels != 0:
            raise ValueError("FoldedSequenceConv's dense form filters maps without a skip.")
        self.dense = dense
        self.sequence_conv = conv
        self.polyphase_order = polyphase_order and not dense
        self.pad = conv.pad
        self.phases = _phase_count(channels)
        self.channels = channels
        self.skip_channels = skip_channels
        # With the parts too thin for the edges to lie in one each, they are put together first.
        self.edge_width = self.pad + 1 if min(skip_channels, channels - skip_channels) > self.pad else 0
        before, after = sequence_neighbour_sources(spatial_shape, levels, channels, self.pad)
        if self.edge_width > 0:
            before, after = self._in_edges(before), self._in_edges(after)
        # int32 halves the indices an ONNX file stores (they grow with the map: 6.6 MB as int64 at 256²)
        index_type = torch.int32 if math.prod(spatial_shape) * channels < 2**31 else torch.int64
        self.register_buffer("before", before.to(index_type), persistent=False)
        self.register_buffer("after", after.to(index_type), persistent=False)
        size = conv.conv.weight.numel()
        if dense:
            # Slot (out, in) of the dense weight holds tap `in - out + pad`: the pixel's own channels, then the values
            # beyond it, which sit at sequence positions j - pad (before) and channels + j (after) from its first.
            position = torch.cat(
                [torch.arange(channels), torch.arange(self.pad) - self.pad, torch.arange(self.pad) + channels]
            )
            tap = position[None, :] - torch.arange(channels)[:, None] + self.pad
            self.register_buffer("dense_index", _tap_slots(tap, size), persistent=False)
        else:
            # Slot (phase, offset) of the polyphase kernel holds tap `offset - phase`.
            tap = torch.arange(self.phases + size - 1)[None, :] - torch.arange(self.phases)[:, None]
            self.register_buffer("tap_index", _tap_slots(tap, size), persistent=False)

    def _in_edges(self, index: torch.Tensor) -> torch.Tensor:
        """Indices into the map -> indices into its ``edge_width`` first and ``edge_width`` last channels."""
        pixels = int(index.shape[1])
        channel, pixel = index // pixels, index % pixels
        tail = channel >= self.channels - self.edge_width
        assert bool(((channel < self.edge_width) | tail).all()), "the filter reaches beyond the edge channels"
        return torch.where(tail, channel - self.channels + 2 * self.edge_width, channel) * pixels + pixel

    def _taps_at(self, slots: torch.Tensor) -> torch.Tensor:
        """The filter's taps placed at ``slots`` (see :func:`_tap_slots`), zero where a slot holds none."""
        taps = self.sequence_conv.conv.weight.reshape(-1)
        return torch.cat([taps, taps.new_zeros(1)])[slots]

    def _beyond(self, source: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``pad`` sequence values before and after each pixel, ``(B, pad * pixels)`` each, gathered from
        ``source`` (the map, or its edge channels)."""
        items = source.reshape(-1, int(source.shape[1]) * int(self.before.shape[1]))
        return items[:, self.before.reshape(-1)], items[:, self.after.reshape(-1)]

    def polyphase_kernel(self) -> torch.Tensor:
        """``(m, 1, 1, m + k - 1, 1)``: output phase ``r`` applies the ``k`` taps from offset ``r``."""
        return self._taps_at(self.tap_index).reshape(self.phases, 1, 1, int(self.tap_index.shape[1]), 1)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        given = (0 if skip is None else int(skip.shape[1]), int(x.shape[1]))
        if given != (self.skip_channels, self.channels - self.skip_channels):
            raise ValueError(
                f"FoldedSequenceConv was built for a skip of {self.skip_channels} channels and an input of "
                f"{self.channels - self.skip_channels}, got {given[0]} and {given[1]}."
            )
        if self.dense:
            return self._dense_forward(x)
        parts = [x] if skip is None else [skip, x]
        if skip is not None and self.edge_width == 0:
            parts = [torch.cat(parts, dim=1)]
        source = parts[0] if len(parts) == 1 else torch.cat([skip[:, : self.edge_width], x[:, -self.edge_width :]], 1)
        pixels = int(self.before.shape[1])
        before, after = (values.reshape(-1, 1, self.pad, pixels) for values in self._beyond(source))
        # Each item one image, its channel sequences as columns: output row i of phase r is sequence position
        # i * m + r, so the output is the map in polyphase channel order as it lies. A 3D conv (over a unit axis)
        # because ONNX Runtime would run a 2D one in its blocked layout, then copy it back (3 ms at the top level).
        columns = [part.reshape(-1, 1, int(part.shape[1]), pixels) for part in parts]
        sequence = torch.cat([before] + columns + [after], dim=2).unsqueeze(2)
        bias = self.sequence_conv.conv.bias
        out = F.conv3d(sequence, self.polyphase_kernel(), bias.expand(self.phases), stride=(1, self.phases, 1))
        out = self.sequence_conv.act(out)  # (B, m, 1, channels / m, pixels)
        if not self.polyphase_order:
            out = out.transpose(1, 3)
        return out.reshape([-1, self.channels] + [int(s) for s in x.shape[2:]])

    def _dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._taps_at(self.dense_index)
        weight = weight.reshape([self.channels, self.channels + 2 * self.pad] + [1] * (x.dim() - 2))
        spatial = [int(s) for s in x.shape[2:]]
        outside = [values.reshape([-1, self.pad] + spatial) for values in self._beyond(x)]
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        bias = self.sequence_conv.conv.bias.expand(self.channels)
        return self.sequence_conv.act(conv(torch.cat([x] + outside, 1), weight, bias))

    def channel_order(self) -> torch.Tensor:
        """With ``polyphase_order``, the channel of the conv's output that each output channel holds: phase by
        phase (``r * channels / m + i`` holds ``i * m + r``), which spares the copy into channel order when the
        consumer reads its input channels in any order (see
        :meth:`~monai_onenet.networks.blocks.ChannelConvStack.step_reordered`)."""
        if not self.polyphase_order:
            return torch.arange(self.channels)
        return torch.arange(self.channels).reshape(-1, self.phases).t().reshape(-1)
