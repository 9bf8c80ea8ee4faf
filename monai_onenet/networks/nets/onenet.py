"""OneNet: a U-Net whose encoder and decoder use only channel-wise 1D convolutions and pixel-(un)shuffle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from monai.data import MetaTensor
from monai.networks.layers.factories import Conv

from monai_onenet.networks.blocks import (
    SPATIAL_MIXING,
    ChannelConvStack,
    OneNetClassifier,
    OneNetDecoderLevel,
    OneNetEncoderLevel,
    SubpixelHead,
    UNetDecoderLevel,
    UNetEncoderLevel,
    channels_to_space,
    conv_after_affine,
    double_conv,
    give_adn_orders_their_classes,
    has_forward_hooks,
)

__all__ = ["OneNet"]

ENCODERS = ("1d", "conv")
DECODERS = ("1d", "conv")
SegmentationOutput = Union[torch.Tensor, List[torch.Tensor]]


class OneNet(nn.Module):
    """OneNet, a channel-wise 1D convolutional U-Net, 1D / 2D / 3D.

    Based on: Byun, Shah, Gang, Apton, "OneNet: A Channel-Wise 1D Convolutional U-Net for Unified Image
    Classification and Segmentation" (2024). The settings the paper leaves out follow its authors' code; with the
    presets in :mod:`monai_onenet.networks.nets.presets` the parameter counts of the paper's Table 2 come out
    exactly.

    The encoder folds each ``2^d`` block into channels with pixel-unshuffle, mixes spatially (see
    ``spatial_mixing``) and applies two channel-wise (1x1) convolutions per level (``level_convs``). The ``"1d"``
    decoder mirrors it with pixel-shuffle (OneNet_ed); the ``"conv"`` decoder is the authors' U-Net decoder
    (OneNet_e). A ``"conv"`` encoder (max-pool and 3x3 convolutions) with a ``"conv"`` decoder gives the paper's
    U-Net baseline.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of segmentation output channels (logits). Defaults to 2.
        channels: widths of the stem and of each encoder level; ``len(channels) - 1`` is the depth (number of
            downsamplings). Defaults to ``(64, 128, 256, 512, 1024)``, the paper's depth-4 widths.
        encoder: ``"1d"`` (pixel-unshuffle and channel-wise convs) or ``"conv"`` (U-Net). Defaults to ``"1d"``.
        decoder: ``"1d"`` (pixel-shuffle and channel-wise convs) or ``"conv"`` (U-Net). Defaults to ``"1d"``.
        spatial_mixing: spatial step of every 1D block: ``"sequence"`` (the paper's shared 9-tap conv over the
            channels-last flattened map), ``"oriented"`` (residual depthwise 1D convs along each axis, the
            project's own; real spatial context) or ``"none"``. Defaults to ``"sequence"``.
        mixing_kernel_size: kernel length of the spatial mixing. Defaults to 9 (the paper's).
        deep_supervision: build a segmentation head at every decoder level. In training mode forward then
            returns the list of all heads' logits, finest first (for ``monai.losses.DeepSupervisionLoss``); in
            eval mode it returns only the top logits. Defaults to False.
        num_classes: if > 0, add an image-level classification head on the deepest encoder features; forward
            then returns ``(segmentation, class_logits)``. Defaults to 0.
        act: activation type and arguments. Defaults to in-place ReLU.
        norm: feature normalisation type and arguments. Defaults to batch norm (after the activation in 1D
            blocks, as in the authors' code).
        dropout: dropout ratio. Defaults to no dropout.
        bias: whether convolutions have a bias. Defaults to True.
        input_normalization: apply the authors' hard-coded ``(x - 0.45) / 0.225`` first. Defaults to False
            (MONAI normalises in transforms).
        adn_ordering: order of activation (A), dropout (D) and normalisation (N) after each channel-wise conv of
            the 1D blocks. Defaults to ``"ADN"``, the authors' (norm after the activation); ``"NDA"`` normalises
            first, as most networks do.
        full_resolution: run the stem and the top decoder level at full resolution, as the paper does. Defaults
            to True. With False (OneNet_ed only) no layer runs at full resolution: the first level unshuffles the
            input itself and a :class:`~monai_onenet.networks.blocks.SubpixelHead` pixel-shuffles half-resolution
            logits up from ``2^d * channels[0]`` half-resolution features.
        level_convs: channel-wise convolutions per level of the 1D encoder and decoder. Defaults to 2 (the
            paper's); 1 halves the layers, the cheaper choice for training on a CPU.

    Input size:
        Every spatial size must be divisible by ``2 ** depth`` (16 at depth 4). Pad with
        ``monai.transforms.DivisiblePadd(keys, k=16)`` or crop; other sizes raise a ``ValueError`` that names the
        nearest valid sizes.

    Examples::

        # 2D, the paper's OneNet_ed at depth 4
        >>> net = OneNet(spatial_dims=2, in_channels=3, out_channels=4)
        >>> net(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 4, 64, 64])

        # 3D, small widths, oriented spatial mixing
        >>> net = OneNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32, 64),
        ...              spatial_mixing="oriented", mixing_kernel_size=5)
        >>> net(torch.randn(1, 1, 32, 32, 32)).shape
        torch.Size([1, 2, 32, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (64, 128, 256, 512, 1024),
        encoder: str = "1d",
        decoder: str = "1d",
        spatial_mixing: str = "sequence",
        mixing_kernel_size: int = 9,
        deep_supervision: bool = False,
        num_classes: int = 0,
        act: str | tuple | None = ("relu", {"inplace": True}),
        norm: str | tuple | None = "batch",
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
        input_normalization: bool = False,
        adn_ordering: str = "ADN",
        full_resolution: bool = True,
        level_convs: int = 2,
    ):
        super().__init__()
        _check_arguments(spatial_dims, in_channels, out_channels, channels, encoder, decoder, spatial_mixing)
        if not full_resolution and (encoder, decoder) != ("1d", "1d"):
            raise ValueError("full_resolution=False needs the 1D encoder and decoder (OneNet_ed).")
        if not full_resolution and len(channels) < 3:
            raise ValueError(
                f"full_resolution=False needs at least two levels (its top level is the sub-pixel head), got "
                f"channels={tuple(channels)}."
            )
        widths = [int(c) for c in channels]
        depth = len(widths) - 1
        block = 2**spatial_dims
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.depth = depth
        self.divisor = 2**depth
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision
        self.input_normalization = input_normalization
        # Channels-last activations: the 1x1 convs run as GEMMs and the 1D blocks' flattening is a free view.
        self.channels_last = True
        common = {"act": act, "norm": norm, "dropout": dropout, "bias": bias}
        mixing = {"spatial_mixing": spatial_mixing, "mixing_kernel_size": mixing_kernel_size}
        common1d = {**common, "adn_ordering": adn_ordering}
        levels1d = {**common1d, "level_convs": level_convs}

        if encoder == "1d":
            stem_widths = (in_channels, widths[0], widths[0], widths[0]) if full_resolution else (in_channels,)
            self.stem = ChannelConvStack(spatial_dims, stem_widths, **common1d)
            level_inputs = [stem_widths[-1]] + widths[1:depth]
            self.encoder_levels = nn.ModuleList(
                OneNetEncoderLevel(spatial_dims, level_inputs[i], widths[i + 1], **mixing, **levels1d)
                for i in range(depth)
            )
        else:
            self.stem = double_conv(spatial_dims, in_channels, widths[0], **common)
            self.encoder_levels = nn.ModuleList(
                UNetEncoderLevel(spatial_dims, widths[i], widths[i + 1], **common) for i in range(depth)
            )

        # Decoder level j (0 = deepest) upsamples to the resolution of encoder output depth - 1 - j.
        decoder_levels: List[nn.Module] = []
        if decoder == "1d":
            # Each level outputs block * (width of the next skip), so that pixel-shuffle yields exactly that width.
            self.bottleneck: nn.Module = ChannelConvStack(
                spatial_dims, (widths[depth], block * widths[depth - 1]), **common1d
            )
            for level in range(depth, 1, -1):
                decoder_levels.append(
                    OneNetDecoderLevel(
                        spatial_dims,
                        block * widths[level - 1],
                        widths[level - 1],
                        block * widths[level - 2],
                        **mixing,
                        **levels1d,
                    )
                )
            if full_resolution:
                decoder_levels.append(
                    OneNetDecoderLevel(spatial_dims, block * widths[0], 0, widths[0], **mixing, **levels1d)
                )
            head_kernel = 1
        else:
            self.bottleneck = nn.Identity()
            for level in range(depth, 1, -1):
                decoder_levels.append(
                    UNetDecoderLevel(spatial_dims, widths[level], widths[level - 1], widths[level - 1], **common)
                )
            decoder_levels.append(UNetDecoderLevel(spatial_dims, widths[1], 0, widths[0], **common))
            head_kernel = 3
        self.decoder_levels = nn.ModuleList(decoder_levels)

        def head(width: int) -> nn.Module:
            return Conv[Conv.CONV, spatial_dims](width, out_channels, kernel_size=head_kernel, padding=head_kernel // 2)

        level_widths = [_out_channels(level) for level in decoder_levels]
        self.head = (
            head(level_widths[-1]) if full_resolution else SubpixelHead(spatial_dims, level_widths[-1], out_channels)
        )
        # Finest first, as the list forward returns in training.
        self.auxiliary_heads = nn.ModuleList(head(w) for w in reversed(level_widths[:-1])) if deep_supervision else None
        self.classifier = (
            OneNetClassifier(spatial_dims, widths[depth], num_classes, act, norm) if num_classes > 0 else None
        )

    def __setstate__(self, state):
        super().__setstate__(state)
        give_adn_orders_their_classes(self)  # a whole model pickled before each order had its own class

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` that names the problem and the fix if ``x`` cannot go through the network."""
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"OneNet(spatial_dims={self.spatial_dims}) expects input (batch, channels, {self.spatial_dims} "
                f"spatial sizes), i.e. {self.spatial_dims + 2} dimensions, got shape {list(x.shape)}. "
                "Add a batch / channel dimension or set spatial_dims to match the data."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"OneNet expects {self.in_channels} input channels (in_channels={self.in_channels}), got "
                f"{x.shape[1]} in input of shape {list(x.shape)}."
            )
        for size in x.shape[2:]:
            if size % self.divisor != 0:
                lower = size // self.divisor * self.divisor
                upper = lower + self.divisor
                raise ValueError(
                    f"OneNet of depth {self.depth} needs every spatial size divisible by {self.divisor}; got spatial "
                    f"shape {list(x.shape[2:])}, where {size} is not (nearest valid: {lower} or {upper}). Pad with "
                    f"monai.transforms.DivisiblePadd(keys, k={self.divisor}) or crop / resize to a multiple of "
                    f"{self.divisor}."
                )

    def forward(
        self, x: torch.Tensor
    ) -> Union[torch.Tensor, List[torch.Tensor], Tuple[SegmentationOutput, torch.Tensor]]:
        """
        Args:
            x: ``(batch, in_channels, *spatial)`` with every spatial size divisible by ``2 ** depth``.

        Returns:
            Logits ``(batch, out_channels, *spatial)``, no activation. In training mode with
            ``deep_supervision``, the list of every head's logits, finest first (coarser ones at their own
            resolution). With ``num_classes > 0``, a tuple ``(segmentation, class_logits (batch, num_classes))``.
            A MONAI ``MetaTensor`` input gives MetaTensor outputs that carry its metadata.
        """
        if not torch.jit.is_scripting():
            if isinstance(x, MetaTensor):
                # Through MetaTensor's torch-function layer the in-place ReLUs land on views of the graph, and
                # backward runs generic CopySlices / AsStrided copies: a training step took 1.4x as long.
                return _with_meta_of(OneNet.forward(self, x.as_tensor()), x)  # not a subclass's forward again
        if not torch.jit.is_tracing():
            self.check_input(x)
        if self.input_normalization:
            x = (x - 0.45) / 0.225
        if self.channels_last and self.spatial_dims == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        elif self.channels_last and self.spatial_dims == 3 and not torch.jit.is_tracing():
            # ONNX export (a trace) cannot express channels_last_3d; the layout is a speed choice only.
            x = x.contiguous(memory_format=torch.channels_last_3d)

        # Levels run stage by stage, one statement each: rebinding x frees every stage's input as soon as the next
        # stage has its output, instead of when the whole level returns. This sets the eval-mode peak memory.
        skips: List[torch.Tensor] = []
        x = self.stem(x)
        for level in self.encoder_levels:
            # One step where unshuffle and spatial conv run as one convolution (it reads the input to the end);
            # else two statements, the second of which no longer holds the level's input.
            one_step = False
            if not torch.jit.is_scripting():
                one_step = level.mixes_while_downsampling(x)
            if one_step:
                x = level.downsample_and_mix(x)
            else:
                x = level.downsample(x)
                x = level.mixing(x)
            for index in range(level.convs.steps):
                x = level.convs.step(x, index)
            skips.append(x)
        class_logits: Optional[torch.Tensor] = None
        if self.classifier is not None:
            class_logits = self.classifier(x)

        skips.pop()  # the deepest features are x itself, not a skip; each skip is dropped once used
        x = self.bottleneck(x)
        supervise = self.training and self.auxiliary_heads is not None
        features: List[torch.Tensor] = []
        head_affine: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        for position, level in enumerate(self.decoder_levels):
            skip: Optional[torch.Tensor] = skips.pop() if len(skips) > 0 else None
            x = level.upsample(x)  # merge in two statements: the low-resolution input is freed before the concat
            x = level.concat(x, skip)
            skip = None
            x = level.mixing(x)
            last = level.convs.steps - 1
            for index in range(last):
                x = level.convs.step(x, index)
            if position == len(self.decoder_levels) - 1 and not torch.jit.is_scripting():
                x, head_affine = self._top_step(level.convs, x)
            else:
                x = level.convs.step(x, last)
            if supervise:
                features.append(x)

        if head_affine is not None and not torch.jit.is_scripting():
            top = self._head_after_affine(x, head_affine)
        else:
            top = self.head(x)
        segmentation: SegmentationOutput = top
        if supervise and self.auxiliary_heads is not None:
            outputs: List[torch.Tensor] = [top]
            for j, aux_head in enumerate(self.auxiliary_heads):
                outputs.append(aux_head(features[len(features) - 2 - j]))
            segmentation = outputs
        if class_logits is not None:
            return segmentation, class_logits
        return segmentation

    @torch.jit.unused
    def _top_step(
        self, convs: nn.Module, x: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[Tuple[torch.Tensor, torch.Tensor]]]:
        """The top level's last conv. In eval mode its folded output norm is left to the head, which is linear
        per pixel: one pass less over the largest feature map. (The 1D decoder's heads are 1x1 convolutions.)"""
        affine = convs.output_affine() if isinstance(convs, ChannelConvStack) and self._head_takes_affine() else None
        if affine is None:
            return convs.step(x, convs.steps - 1), None
        return convs.step(x, convs.steps - 1, output_norm=False), affine

    @torch.jit.unused
    def _head_takes_affine(self) -> bool:
        """Whether the head is still the 1x1 convolution (or sub-pixel head) built here, with no hooks to bypass."""
        conv = self.head.conv if type(self.head) is SubpixelHead else self.head
        if type(conv) not in (nn.Conv1d, nn.Conv2d, nn.Conv3d) or any(k != 1 for k in conv.kernel_size):
            return False
        return not has_forward_hooks({self.head, conv})

    @torch.jit.unused
    def _head_after_affine(self, x: torch.Tensor, affine: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``self.head(scale * x + shift)``, with the affine map folded into the head's 1x1 convolution."""
        if type(self.head) is SubpixelHead:
            return channels_to_space(conv_after_affine(self.head.conv, x, *affine), 2)
        return conv_after_affine(self.head, x, *affine)


def _with_meta_of(output: Any, image: MetaTensor) -> Any:
    """Every tensor of ``output`` as a MetaTensor with ``image``'s metadata, as MetaTensor ops would return it."""
    if isinstance(output, torch.Tensor):
        wrapped = MetaTensor(output)  # shares memory and stays in the autograd graph
        wrapped.copy_meta_from(image)
        return wrapped
    if isinstance(output, (list, tuple)):
        return type(output)(_with_meta_of(item, image) for item in output)
    return output


def _out_channels(level: nn.Module) -> int:
    return int(level.convs[-1].conv.out_channels)  # type: ignore[union-attr,index]


def _check_arguments(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    encoder: str,
    decoder: str,
    spatial_mixing: str,
) -> None:
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}.")
    if len(channels) < 2 or any(int(c) < 1 for c in channels):
        raise ValueError(
            f"channels needs the stem width and at least one level width, all >= 1, got {tuple(channels)}."
        )
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}.")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    if spatial_mixing not in SPATIAL_MIXING:
        raise ValueError(f"spatial_mixing must be one of {SPATIAL_MIXING}, got {spatial_mixing!r}.")
