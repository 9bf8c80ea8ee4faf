"""The paper's Table 2, reproduced exactly by the presets (input 1x3x256x256, 4 output channels)."""

from __future__ import annotations

import pytest
import torch

from monai_onenet.benchmark.flops import paper_flops, real_flops
from monai_onenet.networks import PRESETS, OneNet, create_onenet, paper_channels, preset_depth

# preset, exact parameters (spec), paper-convention GFLOPs (spec's rebuild)
TABLE2 = [
    ("unet_4", 31_040_912, 104.76),
    ("unet_5", 124_420_500, 130.80),
    ("onenet_e_4", 16_388_216, 78.42),
    ("onenet_e_5", 65_727_622, 98.82),
    ("onenet_ed_4", 9_081_056, 23.08),
    ("onenet_ed_5", 36_382_968, 29.01),
]


@pytest.mark.parametrize("name, params, _", TABLE2)
def test_parameter_count_is_exact(name, params, _):
    assert sum(p.numel() for p in create_onenet(name).parameters()) == params


@pytest.mark.parametrize("name, _, gflops", [row for row in TABLE2 if row[0].endswith("_4")])
def test_paper_convention_flops(name, _, gflops):
    net = create_onenet(name)
    assert abs(paper_flops(net, torch.randn(1, 3, 256, 256)) / 1e9 - gflops) < 0.1


@pytest.mark.parametrize("name, gflops", [("unet_4", 91.80), ("onenet_ed_4", 22.96)])
def test_real_flop_counter(name, gflops):
    net = create_onenet(name)
    assert abs(real_flops(net, torch.randn(1, 3, 256, 256)) / 1e9 - gflops) < 0.01


@pytest.mark.parametrize("mixing", ["sequence", "none"])
def test_paper_flops_agree_with_torchinfo(mixing):
    torchinfo = pytest.importorskip("torchinfo")
    net = OneNet(
        2, 3, 4, channels=(8, 16, 32, 64), spatial_mixing=mixing, deep_supervision=True, encoder="1d", decoder="conv"
    )
    x = torch.randn(1, 3, 64, 64)
    from monai_onenet.benchmark.flops import module_by_module

    with module_by_module(net):
        stats = torchinfo.summary(net.eval(), input_data=x, verbose=0)
    assert paper_flops(net, x) == 2 * stats.total_mult_adds


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: unet_4"):
        create_onenet("onenet_x")


def test_every_preset_takes_overrides():
    for name in PRESETS:
        net = create_onenet(
            name,
            in_channels=1,
            out_channels=2,
            channels=paper_channels(preset_depth(name), base=4),
        )
        with torch.no_grad():
            assert net.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_edge_preset_is_oriented_onenet_with_nothing_at_full_resolution():
    from monai_onenet.networks.blocks import OrientedConv, SubpixelHead

    net = create_onenet("onenet_edge_4", in_channels=1, out_channels=2)
    assert len(net.stem) == 0 and isinstance(net.head, SubpixelHead)
    assert all(isinstance(level.mixing, OrientedConv) for level in [*net.encoder_levels, *net.decoder_levels])
    assert net.encoder_levels[0].convs[0].conv.in_channels == 4  # the unshuffled 1-channel input itself
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 1, 96, 96)).shape == (1, 2, 96, 96)


def test_lite_edge_preset_is_the_edge_preset_with_one_channel_conv_per_level():
    edge = create_onenet("onenet_edge_4", in_channels=1, out_channels=2, deep_supervision=False)
    lite = create_onenet("onenet_edge_lite_4", in_channels=1, out_channels=2, deep_supervision=False)
    levels = [*lite.encoder_levels, *lite.decoder_levels]
    assert all(len(level.convs) == 1 for level in levels)
    assert sum(p.numel() for p in lite.parameters()) == 415_656
    assert sum(p.numel() for p in edge.parameters()) == 591_496
