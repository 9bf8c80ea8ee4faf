"""OneNet_ed computed on phase-folded maps: the form its ONNX export takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

from monai_onenet.networks.blocks import (
    ChannelConvStack,
    OneNetDecoderLevel,
    OneNetEncoderLevel,
    SequenceConv,
    SubpixelHead,
    conv_after_affine,
    has_forward_hooks,
)
from monai_onenet.networks.blocks.phase_folding import (
    FoldedSequenceConv,
    fold_phases,
    phase_shuffle,
    phase_unshuffle,
    unfold_phases,
)
from monai_onenet.networks.nets.onenet import OneNet, _out_channels

__all__ = ["PhaseFoldedOneNet", "phase_folding_unsupported"]


def phase_folding_unsupported(net: nn.Module) -> Optional[str]:
    """Why :class:`PhaseFoldedOneNet` cannot compute ``net``, or None when it can.

    It computes eval-mode OneNet_ed (1D encoder and decoder) with the paper's spatial conv or none, batch norm or
    none, and the 1x1 convolution or sub-pixel head the network built: every other step is per pixel or a
    pixel-(un)shuffle. Spatial filters (the oriented mixing, the U-Net decoder, a replaced head) and norms over the
    image (instance, group) need the unfolded map; a subclass's own ``forward`` and forward hooks on the modules it
    runs differently would be skipped.
    """
    if not isinstance(net, OneNet):
        return f"{type(net).__name__} is not a OneNet"
    if type(net).forward is not OneNet.forward:
        return f"{type(net).__name__} overrides OneNet.forward"
    levels = list(net.encoder_levels) + list(net.decoder_levels)
    if not all(isinstance(level, (OneNetEncoderLevel, OneNetDecoderLevel)) for level in levels):
        return "its encoder or decoder is not the 1D one (OneNet_ed)"
    if not all(isinstance(level.mixing, (SequenceConv, nn.Identity)) for level in levels):
        return "its spatial mixing filters along the spatial axes"
    stacks = [net.stem, net.bottleneck] + [level.convs for level in levels]
    if not all(isinstance(stack, ChannelConvStack) for stack in stacks):
        return "its stem or bottleneck is not a chain of channel-wise convolutions"
    norms = [layer.adn._modules.get("N") for stack in stacks for layer in stack]
    if not all(n is None or (isinstance(n, nn.modules.batchnorm._BatchNorm) and n.track_running_stats) for n in norms):
        return "its norms take statistics over the image (only batch norm with running statistics is per pixel)"
    if not net._head_takes_affine():  # also False under global forward hooks
        return "its head is not the 1x1 convolution or sub-pixel head it built, or has forward hooks"
    bypassed = [net] + [m for m in net.modules() if isinstance(m, SequenceConv)]
    if has_forward_hooks(bypassed):
        return "it has forward hooks that the folded form would skip"
    if net.training:
        return "it is in training mode"
    return None


def _folded_mixing(level: nn.Module, spatial_shape: List[int], levels: int, skip_channels: int = 0) -> nn.Module:
    """A level's spatial mixing for its map folded ``levels`` times (the paper's conv needs to know where each
    pixel's neighbours lie; no mixing stays none)."""
    if isinstance(level.mixing, SequenceConv):
        channels = level.convs[0].conv.in_channels
        return FoldedSequenceConv(level.mixing, spatial_shape, levels, channels, True, skip_channels)
    return nn.Identity()


def _first_step(convs: ChannelConvStack, mixing: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A level's first conv, reading the mixing's output channels in the order the mixing leaves them (one copy of
    the map less)."""
    if isinstance(mixing, FoldedSequenceConv) and mixing.polyphase_order:
        return convs.step_reordered(x, 0, mixing.channel_order().to(x.device))
    return convs.step(x, 0)


class PhaseFoldedOneNet(nn.Module):
    """An eval-mode :class:`OneNet` (OneNet_ed) run on phase-folded maps (see
    :mod:`~monai_onenet.networks.blocks.phase_folding`); it computes the same outputs to float rounding.

    The input is folded down to the deepest level's size once, the network runs on the folded maps (its
    pixel-(un)shuffles become reshapes, the paper's spatial conv a gather of each pixel's neighbouring values
    and one strided convolution) and the logits are unfolded once at the end. On ordinary maps the
    pixel-(un)shuffles and the spatial conv's layout changes are element-by-element transposes, which ONNX Runtime
    runs several times slower than torch's own kernels; this is the form :func:`~monai_onenet.networks.export_onnx`
    exports OneNet_ed in. It shares ``net``'s parameters; spatial sizes are fixed at construction.

    Args:
        net: an eval-mode OneNet_ed (see :func:`phase_folding_unsupported`).
        spatial_shape: spatial size of the inputs it will see.

    Raises:
        ValueError: if ``net`` cannot be run this way, or ``spatial_shape`` does not fit it.

    Example::

        >>> from monai_onenet.networks import OneNet
        >>> net = OneNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32)).eval()
        >>> folded = PhaseFoldedOneNet(net, (32, 32))
        >>> x = torch.randn(1, 1, 32, 32)
        >>> bool((folded(x) - net(x)).abs().max() < 1e-5)
        True
    """

    def __init__(self, net: OneNet, spatial_shape: Sequence[int]):
        super().__init__()
        reason = phase_folding_unsupported(net)
        if reason is not None:
            raise ValueError(f"PhaseFoldedOneNet cannot run this network: {reason}.")
        self.spatial_shape = [int(s) for s in spatial_shape]
        net.check_input(torch.empty([1, net.in_channels] + self.spatial_shape, device="meta"))
        self.net = net
        self.levels = net.depth
        # Each pixel-unshuffle takes one fold off, each pixel-shuffle puts one back.
        shape = self.spatial_shape
        encoder_mixing = []
        for index, level in enumerate(net.encoder_levels):
            shape = [s // 2 for s in shape]
            encoder_mixing.append(_folded_mixing(level, shape, self.levels - index - 1))
        # The decoder's skips: each encoder level's output but the deepest, deepest first.
        skip_widths = [_out_channels(level) for level in net.encoder_levels][-2::-1]
        decoder_mixing = []
        for index, level in enumerate(net.decoder_levels):
            shape = [s * 2 for s in shape]
            skip = skip_widths[index] if index < len(skip_widths) else 0
            decoder_mixing.append(_folded_mixing(level, shape, index + 1, skip))
        self.encoder_mixing = nn.ModuleList(encoder_mixing)
        self.decoder_mixing = nn.ModuleList(decoder_mixing)
        self.subpixel_head = type(net.head) is SubpixelHead
        self.eval()  # as net is; a wrapper left in training mode would put net back in it when something restores it

    def index_bytes(self) -> int:
        """Bytes of the spatial convs' neighbour indices, which an ONNX export stores as constants."""
        return sum(
            b.numel() * b.element_size() for name, b in self.named_buffers() if name.endswith(("before", "after"))
        )

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        net = self.net
        if net.training:
            raise RuntimeError("PhaseFoldedOneNet computes the eval-mode network; call net.eval() first.")
        if not torch.jit.is_tracing():
            net.check_input(x)
            if list(x.shape[2:]) != self.spatial_shape:
                raise ValueError(
                    f"PhaseFoldedOneNet was built for spatial size {self.spatial_shape}, got {list(x.shape[2:])}."
                )
        if net.input_normalization:
            x = (x - 0.45) / 0.225
        x = net.stem(fold_phases(x, self.levels))
        skips: List[torch.Tensor] = []
        for level, mixing in zip(net.encoder_levels, self.encoder_mixing):
            x = _first_step(level.convs, mixing, mixing(phase_unshuffle(x)))
            for index in range(1, level.convs.steps):
                x = level.convs.step(x, index)
            skips.append(x)
        class_logits = net.classifier(x) if net.classifier is not None else None  # deepest level: not folded

        skips.pop()
        x = net.bottleneck(x)
        head_affine: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        for position, (level, mixing) in enumerate(zip(net.decoder_levels, self.decoder_mixing)):
            x, skip = phase_shuffle(x), skips.pop() if len(skips) > 0 else None
            # the paper's conv reads the skip and x where they lie; no mixing needs them put together
            x = mixing(x, skip) if isinstance(mixing, FoldedSequenceConv) else level.concat(x, skip)
            top = position == len(net.decoder_levels) - 1
            last = level.convs.steps - 1
            if not (top and last == 0):
                x = _first_step(level.convs, mixing, x)
            elif isinstance(mixing, FoldedSequenceConv) and mixing.polyphase_order:  # the head reads them in order
                x = x.index_select(1, torch.argsort(mixing.channel_order().to(x.device)))
            for index in range(1, last):
                x = level.convs.step(x, index)
            if top:
                x, head_affine = net._top_step(level.convs, x)
            elif last > 0:
                x = level.convs.step(x, last)

        conv = net.head.conv if self.subpixel_head else net.head
        x = conv(x) if head_affine is None else conv_after_affine(conv, x, *head_affine)
        if self.subpixel_head:
            x = phase_shuffle(x)
        logits = unfold_phases(x, self.levels)
        return logits if class_logits is None else (logits, class_logits)
