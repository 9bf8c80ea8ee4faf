"""The models the benchmark compares, with the input each one runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch.nn as nn
from monai.networks.nets import BasicUNet

from monai_onenet.benchmark.peers import UNeXt
from monai_onenet.networks import PRESETS, OneNet, create_onenet, preset_depth

__all__ = ["BenchmarkModel", "benchmark_models", "TABLE2"]

# The paper's Table 2 (parameters in M, FLOPs in G) for the rows it has.
TABLE2: Dict[str, Tuple[float, float]] = {
    "unet_4": (31.04, 104.72),
    "unet_5": (124.42, 130.80),
    "onenet_e_4": (16.39, 78.42),
    "onenet_e_5": (65.73, 98.82),
    "onenet_ed_4": (9.08, 23.08),
    "onenet_ed_5": (36.38, 39.00),
}


@dataclass(frozen=True)
class BenchmarkModel:
    """One benchmark row: a name, how to build the network, and its input shape."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    note: str = ""


def _build_2d(name: str, widths: Callable[..., tuple], channels_last: bool = True) -> OneNet:
    # The edge preset keeps its own small widths; every other row runs at the paper's.
    base = 16 if name.startswith("onenet_edge") else 64
    net = create_onenet(name, channels=widths(preset_depth(name), base))
    net.channels_last = channels_last
    return net


def _onenet_3d(preset: str, channels: tuple) -> OneNet:
    return create_onenet(
        preset, spatial_dims=3, in_channels=1, out_channels=2, channels=channels, deep_supervision=False
    )


def benchmark_models(quick: bool = False) -> List[BenchmarkModel]:
    """The 2D Table 2 rows (plus the spatial-mixing variants) and the 3D rows against MONAI's BasicUNet.

    ``quick`` shrinks widths 16x and inputs to 64^2 / 32^3 so the whole run takes seconds.
    """
    shrink = 16 if quick else 1
    size2d, size3d = (64, 32) if quick else (256, 64)

    def widths(depth: int, base: int = 64) -> tuple:
        return tuple(max(base // shrink, 2) * 2**i for i in range(depth + 1))

    shape2d = (1, 3, size2d, size2d)
    rows: List[BenchmarkModel] = []
    for name in PRESETS:
        # The U-Net baselines run as PyTorch and MONAI run a U-Net, in the default NCHW layout; OneNet channels-last.
        is_unet = name.startswith("unet")
        rows.append(
            BenchmarkModel(
                name,
                lambda n=name, cl=not is_unet: _build_2d(n, widths, cl),
                shape2d,
                "NCHW, PyTorch's default layout" if is_unet else "",
            )
        )
    rows.insert(
        1,
        BenchmarkModel(
            "unet_4_channels_last",
            lambda: _build_2d("unet_4", widths),
            shape2d,
            "U-Net_4 in the channels-last layout OneNet uses",
        ),
    )
    features2d = tuple(max(f // shrink, 2) for f in (32, 32, 64, 128, 256, 32))
    rows += [
        BenchmarkModel("basicunet", lambda: BasicUNet(2, 3, 4, features=features2d), shape2d, "MONAI BasicUNet"),
        BenchmarkModel(
            "unext",
            lambda: UNeXt(3, 4, tuple(max(f // shrink, 2) for f in (16, 32, 128, 160, 256))),
            shape2d,
            "UNeXt (MICCAI 2022), the paper's widths",
        ),
    ]
    features3d = tuple(max(f // shrink, 2) for f in (32, 32, 64, 128, 256, 32))
    shape3d = (1, 1, size3d, size3d, size3d)
    rows += [
        BenchmarkModel("basicunet_3d", lambda: BasicUNet(3, 1, 2, features=features3d), shape3d, "MONAI BasicUNet"),
        *(
            BenchmarkModel(f"{preset}_3d", lambda p=preset: _onenet_3d(p, widths(4, 32)), shape3d)
            for preset in ("onenet_ed_4", "onenet_ed_4_oriented")
        ),
    ]
    return rows
