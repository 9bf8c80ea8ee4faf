from __future__ import annotations

from monai_onenet.networks.nets.onenet import OneNet
from monai_onenet.networks.nets.presets import (
    PRESETS,
    create_onenet,
    onenet_e,
    onenet_ed,
    onenet_edge,
    paper_channels,
    preset_depth,
    unet_paper,
)

__all__ = [
    "OneNet",
    "PRESETS",
    "create_onenet",
    "onenet_e",
    "onenet_ed",
    "onenet_edge",
    "paper_channels",
    "preset_depth",
    "unet_paper",
]
