"""OneNet networks for MONAI: ``from monai_onenet.networks import OneNet``."""

from __future__ import annotations

from monai_onenet.networks.export import check_onnx, export_onnx
from monai_onenet.networks.nets import (
    PRESETS,
    OneNet,
    create_onenet,
    onenet_e,
    onenet_ed,
    onenet_edge,
    paper_channels,
    preset_depth,
    unet_paper,
)

__all__ = [
    "check_onnx",
    "export_onnx",
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
