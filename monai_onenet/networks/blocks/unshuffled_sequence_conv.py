"""Pixel-unshuffle and the paper's spatial conv as one strided convolution (the 1D encoder level's first two steps)."""

from __future__ import annotations

import functools
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_onenet.networks.blocks.fused_conv import onednn_conv, runs_onednn_conv
from monai_onenet.networks.blocks.hooks import has_forward_hooks
from monai_onenet.networks.blocks.layout import channels_first_view, channels_last_view
from monai_onenet.networks.blocks.pixel_shuffle import space_to_channels
from monai_onenet.networks.blocks.sequence_conv import SequenceConv

__all__ = ["fuses_unshuffle", "unshuffled_sequence_conv"]


@functools.cache
def _tap_index(spatial_dims: int, group: int, kernel_size: int) -> torch.Tensor:
    """Which filter tap each slot ``(out, in, *block offset, shift)`` of the strided kernel holds (``kernel_size``
    for a zero). Output ``out = o * phases + k`` is channel ``o`` of a block at unshuffle offset ``k``; input ``in``
    is channel ``in`` of the block ``shift - 1`` blocks away, read at that block offset."""
    phases = 2**spatial_dims
    pad = kernel_size // 2
    slots = {}
    for out_channel in range(group):
        for out_phase in range(phases):
            for shift in (-1, 0, 1):
                for in_channel in range(group):
                    for in_phase in range(phases):
                        offset = ((group * shift + in_channel) * phases + in_phase) - (out_channel * phases + out_phase)
                        if -pad <= offset <= pad:
                            digits = [(in_phase >> (spatial_dims - 1 - i)) & 1 for i in range(spatial_dims)]
                            slots[(out_channel * phases + out_phase, in_channel, *digits, shift + 1)] = offset + pad
    with torch.inference_mode(False):  # a cached inference tensor could not be saved for a later backward
        index = torch.full([group * phases, group] + [2] * spatial_dims + [3], kernel_size, dtype=torch.long)
        for slot, tap in slots.items():
            index[slot] = tap
    return index


def fuses_unshuffle(mixing: nn.Module, x: torch.Tensor) -> bool:
    """Whether an encoder level runs ``mixing(space_to_channels(x))`` as :func:`unshuffled_sequence_conv`: the paper's
    spatial conv with its fast path on; a 1D or 2D input (3D would need a 4D convolution) whose pixels hold at least
    two filter reaches of values; inference on the CPU in float32 (oneDNN's kernel; torch's own strided 3D kernel
    made it slower, and training steps ran slower with it); no trace (traces keep the authors' form) and no forward
    hooks it would skip."""
    if not isinstance(mixing, SequenceConv) or not mixing.fast_path or not runs_onednn_conv(x):
        return False
    spatial_dims = x.dim() - 2
    if spatial_dims not in (1, 2):
        return False
    phases = 2**spatial_dims
    length = int(x.shape[1]) * phases  # of each unshuffled pixel's sequence
    # the conv's own block size (at least its reach) must cut each pixel's sequence into whole blocks of channels
    if mixing.block == 0 or mixing.block % phases != 0 or length % mixing.block != 0 or length < 2 * mixing.pad:
        return False
    return not has_forward_hooks([mixing, mixing.conv, mixing.act])


def _edge_values(x: torch.Tensor, count: int, last: bool) -> torch.Tensor:
    """The first (or ``last``) ``count`` values of every unshuffled pixel's channel sequence, ``(B, pixels, count)``,
    from the few channels that hold them."""
    phases = 2 ** (x.dim() - 2)
    channels_needed = -(-count // phases)
    part = x[:, -channels_needed:] if last else x[:, :channels_needed]
    values = channels_last_view(space_to_channels(part, 2)).reshape(x.shape[0], -1, channels_needed * phases)
    return values[..., -count:] if last else values[..., :count]


@functools.cache
def _reach_index(kernel_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which tap links value ``i`` of the ``k // 2`` values beyond a pixel's sequence to its output ``u`` among the
    first (``before``) and the last (``after``) ``k // 2`` outputs (``kernel_size``: none)."""
    pad = kernel_size // 2
    with torch.inference_mode(False):  # cached, as in _tap_index
        value, output = torch.meshgrid(torch.arange(pad), torch.arange(pad), indexing="ij")
        before = torch.where(value >= output, value - output, kernel_size)  # value i sits at i - pad
        after = torch.where(value <= output, value - output + 2 * pad, kernel_size)  # at (length) + i
    return before, after


def _add_reach_beyond_pixels(sequence: torch.Tensor, x: torch.Tensor, taps_and_zero: torch.Tensor) -> None:
    """Add to ``sequence`` (``(B, pixels, C 2^d)``, the strided conv's output before its activation, zero-padded at
    each pixel's ends) what the filter reads beyond each pixel's own values: the ``k // 2`` values before it (the
    previous pixel's last ones; reflected ones for the map's first pixel) and after it (the next pixel's first; the
    map's last pixel reflects). Each is a ``(k//2) x (k//2)`` product per pixel, on values from the few edge channels:
    the scratch stays a small fraction of the output. ``taps_and_zero``: the filter's ``k`` taps, then a zero."""
    kernel_size = int(taps_and_zero.shape[0]) - 1
    pad = kernel_size // 2
    before_index, after_index = _reach_index(kernel_size)
    length = int(sequence.shape[2])

    def pixel_sequence(block: slice) -> torch.Tensor:  # one corner pixel's sequence, (B, 1, length)
        corner = x[(slice(None), slice(None)) + (block,) * (x.dim() - 2)]
        return channels_last_view(space_to_channels(corner)).reshape(x.shape[0], 1, length)

    # the values reflected before the map's first pixel and after its last
    reflected_before = pixel_sequence(slice(0, 2))[..., 1 : pad + 1].flip(-1)
    reflected_after = pixel_sequence(slice(-2, None))[..., length - 1 - pad : length - 1].flip(-1)

    reach = taps_and_zero[before_index.to(taps_and_zero.device)]
    sequence[:, 1:, :pad] += _edge_values(x, pad, last=True)[:, :-1] @ reach
    sequence[:, :1, :pad] += reflected_before @ reach
    reach = taps_and_zero[after_index.to(taps_and_zero.device)]
    sequence[:, :-1, length - pad :] += _edge_values(x, pad, last=False)[:, 1:] @ reach
    sequence[:, -1:, length - pad :] += reflected_after @ reach


def unshuffled_sequence_conv(x: torch.Tensor, mixing: SequenceConv) -> torch.Tensor:
    """``mixing(space_to_channels(x))`` without the unshuffled copy; check :func:`fuses_unshuffle` first.

    The paper's spatial conv reads each unshuffled pixel's channels in the order pixel-unshuffle gives them (channel
    ``c``'s ``2^d`` block offsets, then channel ``c + 1``'s). Cut that sequence into blocks of ``g`` channels:
    every output block reads its own block and its two neighbours, which in ``x`` are ``3g`` consecutive channels of
    one ``2^d`` pixel block. Viewing ``x``'s channel axis as ``C / g`` positions of ``g`` channels makes that a
    convolution over ``(*S, C / g)`` with stride 2 and kernel 2 along the spatial axes and 3 along the new one, from
    ``g`` to ``g 2^d`` channels, on a view of ``x`` (oneDNN's kernel in inference). Its output, stored channels-last,
    is the unshuffled map's sequence in place. That convolution zero-pads each pixel's sequence, where the paper's
    filter reads on into the previous and the next pixel (reflected values at the two ends of the map): what those
    ``k // 2`` values on each side add to the first and last ``k // 2`` outputs of every pixel is a small matrix
    product per pixel, added before the activation. On OneNet_ed,4's four encoder levels this took 11 ms in place of
    24 (unshuffle 14, spatial conv 10), profiled inside the network; the inference peak is unchanged.

    Args:
        x: ``(B, C, *S)``, 1D or 2D, spatial sizes even; fastest stored channels-last.
        mixing: the encoder level's :class:`~monai_onenet.networks.blocks.SequenceConv`.

    Returns:
        ``(B, C 2^d, *S / 2)``, stored channels-last; equal to ``mixing(space_to_channels(x))`` to float rounding.

    Example::

        >>> x = torch.randn(1, 8, 16, 16)
        >>> mixing = SequenceConv(channels=32)
        >>> bool(torch.allclose(unshuffled_sequence_conv(x, mixing), mixing(space_to_channels(x)), atol=1e-5))
        True
    """
    spatial_dims = x.dim() - 2
    phases = 2**spatial_dims
    batch = int(x.shape[0])
    channels = int(x.shape[1])
    reduced: List[int] = [int(s) // 2 for s in x.shape[2:]]
    group = mixing.block // phases  # channels per block of the sequence
    weight = mixing.conv.weight
    bias = mixing.conv.bias
    assert bias is not None

    # (B, C, *S) -> (B, *S, C / g, g) -> (B, g, *S, C / g): channels-last, a view when x is stored channels-last.
    grouped = channels_last_view(x).reshape([batch] + [int(s) for s in x.shape[2:]] + [channels // group, group])
    grouped = grouped.movedim(-1, 1)
    taps_and_zero = torch.cat([weight.reshape(-1), weight.new_zeros(1)])
    kernel = taps_and_zero[_tap_index(spatial_dims, group, weight.shape[-1]).to(weight.device)]
    stride = [2] * spatial_dims + [1]
    padding = [0] * spatial_dims + [1]
    # The activation cannot be fused here as in the rest of OneNet: it waits for the values each pixel's neighbours add.
    if runs_onednn_conv(grouped):
        out = onednn_conv(grouped, kernel, bias.expand(group * phases).contiguous(), padding, stride, [1] * len(stride))
    elif spatial_dims == 1:
        out = F.conv2d(grouped, kernel, bias.expand(group * phases), stride, padding)
    else:
        out = F.conv3d(grouped, kernel, bias.expand(group * phases), stride, padding)
    # (B, g 2^d, *S / 2, C / g) -> the unshuffled pixels' sequences (B, pixels, C 2^d); a view of a channels-last out.
    sequence = out.movedim(1, -1).reshape(batch, -1, channels * phases)
    _add_reach_beyond_pixels(sequence, x, taps_and_zero)  # SequenceConv's reach is at least 1
    return mixing.act(channels_first_view(sequence.reshape([batch] + reduced + [channels * phases])))
