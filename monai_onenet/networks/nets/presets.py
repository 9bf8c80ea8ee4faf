"""Named presets over :class:`OneNet`: the paper's variants, its U-Net baseline and the project's own."""

from __future__ import annotations

from functools import partial
from typing import Any, Dict

from monai_onenet.networks.nets.onenet import OneNet

__all__ = [
    "PRESETS",
    "create_onenet",
    "preset_depth",
    "onenet_e",
    "onenet_ed",
    "onenet_edge",
    "unet_paper",
    "paper_channels",
]


def paper_channels(depth: int, base: int = 64) -> tuple[int, ...]:
    """The paper's widths: ``base * 2^i`` for i = 0..depth (64..1024 at depth 4, 64..2048 at depth 5)."""
    return tuple(base * 2**i for i in range(depth + 1))


def _preset(
    encoder: str, decoder: str, depth: int, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
) -> OneNet:
    kwargs.setdefault("channels", paper_channels(depth))
    kwargs.setdefault("deep_supervision", True)
    return OneNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        encoder=encoder,
        decoder=decoder,
        **kwargs,
    )


def onenet_ed(
    depth: int = 4, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 4, **kwargs: Any
) -> OneNet:
    """The paper's OneNet_ed: 1D encoder and 1D decoder, heads at every decoder level.

    Defaults reproduce Table 2 (``onenet_ed(4)``: 9,081,056 parameters; ``onenet_ed(5)``: 36,382,968).
    Keyword arguments override any :class:`OneNet` argument (e.g. ``spatial_mixing="oriented"``).

    Example::

        >>> net = onenet_ed(4, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256))
    """
    return _preset("1d", "1d", depth, spatial_dims, in_channels, out_channels, **kwargs)


def onenet_e(
    depth: int = 4, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 4, **kwargs: Any
) -> OneNet:
    """The paper's OneNet_e: 1D encoder, U-Net (transposed conv + 3x3 conv) decoder.

    Defaults reproduce Table 2 (``onenet_e(4)``: 16,388,216 parameters; ``onenet_e(5)``: 65,727,622).
    """
    return _preset("1d", "conv", depth, spatial_dims, in_channels, out_channels, **kwargs)


def unet_paper(
    depth: int = 4, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 4, **kwargs: Any
) -> OneNet:
    """The paper's U-Net_L baseline (max-pool and 3x3 convs), as built by the OneNet authors.

    Defaults reproduce Table 2 (``unet_paper(4)``: 31,040,912 parameters; ``unet_paper(5)``: 124,420,500).
    """
    return _preset("conv", "conv", depth, spatial_dims, in_channels, out_channels, **kwargs)


EDGE_CHANNELS = (16, 32, 64, 128, 256)


def onenet_edge(
    depth: int = 4, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 4, **kwargs: Any
) -> OneNet:
    """The project's OneNet for small devices: OneNet_ed with oriented mixing and nothing at full resolution.

    Widths 16..256, oriented depthwise 1D spatial mixing (k=7) for a real receptive field, the paper's
    act -> norm order, and ``full_resolution=False``: the first level unshuffles the input itself and a sub-pixel
    head pixel-shuffles half-resolution logits up, so no layer runs on the full-size image. Why each choice, with
    its ablation: README "OneNet on the edge". The ``onenet_edge_lite_4`` preset adds ``level_convs=1`` (one
    channel-wise conv per level), which trains as fast as UNeXt on a CPU.

    Example::

        >>> import torch
        >>> net = onenet_edge(in_channels=1, out_channels=2)
        >>> net.eval()(torch.randn(1, 1, 96, 96)).shape
        torch.Size([1, 2, 96, 96])
    """
    kwargs.setdefault("channels", EDGE_CHANNELS)
    kwargs.setdefault("spatial_mixing", "oriented")
    kwargs.setdefault("mixing_kernel_size", 7)
    kwargs.setdefault("full_resolution", False)
    return _preset("1d", "1d", depth, spatial_dims, in_channels, out_channels, **kwargs)


PRESETS: Dict[str, partial] = {
    "unet_4": partial(unet_paper, 4),
    "unet_5": partial(unet_paper, 5),
    "onenet_e_4": partial(onenet_e, 4),
    "onenet_e_5": partial(onenet_e, 5),
    "onenet_ed_4": partial(onenet_ed, 4),
    "onenet_ed_5": partial(onenet_ed, 5),
    "onenet_ed_4_none": partial(onenet_ed, 4, spatial_mixing="none"),
    "onenet_ed_4_oriented": partial(onenet_ed, 4, spatial_mixing="oriented", mixing_kernel_size=7),
    "onenet_edge_4": partial(onenet_edge, 4),
    "onenet_edge_lite_4": partial(onenet_edge, 4, level_convs=1),
}
"""Preset name -> factory taking :class:`OneNet` keyword overrides (``spatial_dims``, ``in_channels``, ...)."""


def preset_depth(name: str) -> int:
    """Number of downsamplings of a preset, e.g. 4 for ``"onenet_ed_4_oriented"``."""
    return int(_lookup(name).args[0])


def _lookup(name: str) -> partial:
    if name not in PRESETS:
        raise ValueError(f"Unknown OneNet preset {name!r}; available: {', '.join(PRESETS)}.")
    return PRESETS[name]


def create_onenet(name: str, **kwargs: Any) -> OneNet:
    """Build a preset by name, e.g. ``create_onenet("onenet_ed_4", in_channels=1, out_channels=2)``.

    Bundle configs can use it as ``{"_target_": "monai_onenet.networks.create_onenet", "name": "onenet_ed_4", ...}``.
    """
    return _lookup(name)(**kwargs)
