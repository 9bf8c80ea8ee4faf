from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.networks.utils import pixelshuffle, pixelunshuffle

from monai_onenet.networks import OneNet
from monai_onenet.networks.blocks import SequenceConv, phase_folding, sequence_conv_reference
from monai_onenet.networks.blocks.phase_folding import (
    DENSE_MAX_CHANNELS,
    FoldedSequenceConv,
    _fold_by_permute,
    _space_to_depth,
    _SpaceToDepth,
    fold_phases,
    phase_shuffle,
    phase_unshuffle,
    sequence_neighbour_sources,
    unfold_phases,
)
from monai_onenet.networks.nets.phase_folded import PhaseFoldedOneNet, phase_folding_unsupported

FOLD_CASES = [((16,), 3), ((8, 12), 2), ((8, 4), 1), ((4, 8, 4), 2), ((6, 10), 0)]


def _trained_norms(net: nn.Module) -> nn.Module:
    """Batch norms far from identity, so that a norm applied in the wrong place shows; spatial convs with positive
    taps, so that their ReLU passes signal on post-ReLU inputs (a dead map would hide a wrong channel order)."""
    for module in net.modules():
        if isinstance(module, SequenceConv):
            module.conv.weight.data.abs_()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(-1.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


@pytest.mark.parametrize("spatial, levels", FOLD_CASES)
def test_folded_pixel_unshuffle_and_shuffle_are_monais(spatial, levels):
    spatial_dims = len(spatial)
    x = torch.randn(2, 3, *spatial)
    folded = fold_phases(x, levels)
    reduced = [s // 2**levels for s in spatial]
    assert folded.shape == (2, 3, 2 ** (spatial_dims * levels) * reduced[0], *reduced[1:])
    torch.testing.assert_close(unfold_phases(folded, levels), x, rtol=0, atol=0)
    if levels > 0:
        unshuffled = phase_unshuffle(folded)
        assert unshuffled.data_ptr() == folded.data_ptr()  # a view: reshapes, no copy
        assert phase_shuffle(unshuffled).data_ptr() == folded.data_ptr()
        torch.testing.assert_close(
            unfold_phases(unshuffled, levels - 1), pixelunshuffle(x, spatial_dims, 2), rtol=0, atol=0
        )
        torch.testing.assert_close(
            unfold_phases(phase_shuffle(unshuffled), levels),
            pixelshuffle(pixelunshuffle(x, spatial_dims, 2), spatial_dims, 2),
            rtol=0,
            atol=0,
        )


@pytest.mark.parametrize("spatial, levels", FOLD_CASES)
@pytest.mark.parametrize("channels", [1, 3, 8, 12])
@pytest.mark.parametrize("kernel_size", [3, 9])
@pytest.mark.parametrize("dense", [False, True])
def test_folded_sequence_conv_is_the_authors_conv(spatial, levels, channels, kernel_size, dense):
    torch.manual_seed(0)
    conv = SequenceConv(channels, kernel_size)
    x = torch.randn(2, channels, *spatial)
    expected = torch.relu(sequence_conv_reference(x, conv.conv.weight, conv.conv.bias))
    folded = FoldedSequenceConv(conv, spatial, levels, channels, polyphase_order=True, dense=dense)
    out = folded(fold_phases(x, levels))
    out = out.index_select(1, torch.argsort(folded.channel_order()))  # dense: the map's own order already
    torch.testing.assert_close(unfold_phases(out, levels), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "channels, skip_channels, dense", [(64, 0, True), (8, 0, True), (65, 0, False), (256, 0, False), (16, 8, False)]
)
def test_dense_form_is_the_default_for_narrow_maps_without_a_skip(channels, skip_channels, dense):
    folded = FoldedSequenceConv(SequenceConv(channels), (16, 16), 2, channels, True, skip_channels)
    assert folded.dense is dense
    assert folded.polyphase_order is not dense  # the dense form leaves the map's channel order
    if skip_channels:
        with pytest.raises(ValueError, match="without a skip"):
            FoldedSequenceConv(SequenceConv(channels), (16, 16), 2, channels, skip_channels=skip_channels, dense=True)


@pytest.mark.parametrize("spatial, levels", FOLD_CASES)
@pytest.mark.parametrize("skip_channels, channels", [(8, 16), (5, 6), (16, 8), (3, 16), (16, 2)])
def test_folded_sequence_conv_filters_a_skip_and_its_input_as_one(spatial, levels, skip_channels, channels):
    # thin parts (3 or 2 channels, under the reach of 4 plus one) are put together first; the others are read apart
    torch.manual_seed(0)
    conv = SequenceConv(skip_channels + channels, 9)
    skip, x = torch.randn(2, skip_channels, *spatial), torch.randn(2, channels, *spatial)
    expected = torch.relu(sequence_conv_reference(torch.cat([skip, x], 1), conv.conv.weight, conv.conv.bias))
    folded = FoldedSequenceConv(conv, spatial, levels, skip_channels + channels, skip_channels=skip_channels)
    assert folded.edge_width == (5 if min(skip_channels, channels) > 4 else 0)
    out = unfold_phases(folded(fold_phases(x, levels), fold_phases(skip, levels)), levels)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="built for a skip of"):
        folded(fold_phases(x, levels))
    if skip_channels != channels:
        with pytest.raises(ValueError, match="built for a skip of"):
            folded(fold_phases(skip, levels), fold_phases(x, levels))  # the parts swapped


def test_neighbour_sources_reflect_at_the_two_ends():
    # one pixel row of 2 channels, unfolded: sequence a0 a1 b0 b1 c0 c1, reach 3
    before, after = sequence_neighbour_sources((3,), 0, 2, 3)
    # storage of one item: channel-major, (channel, pixel) -> channel * 3 + pixel
    a0, a1, b0, b1, c0, c1 = 0, 3, 1, 4, 2, 5
    assert before[:, 0].tolist() == [b1, b0, a1]  # positions -3, -2, -1 reflect to 3, 2, 1
    assert before[:, 1].tolist() == [a1, a0, a1]  # position -1 reflects to 1
    assert before[:, 2].tolist() == [a1, b0, b1]
    assert after[:, 0].tolist() == [b0, b1, c0]
    assert after[:, 1].tolist() == [c0, c1, c0]  # position 6 reflects to 4
    assert after[:, 2].tolist() == [c0, b1, b0]  # positions 6, 7, 8 reflect to 4, 3, 2


def test_neighbour_sources_refuse_a_map_shorter_than_the_reach():
    with pytest.raises(ValueError, match="too short"):
        sequence_neighbour_sources((2,), 0, 2, 4)


NETWORK_CASES = [
    (2, (32, 16), {}),
    (3, (16, 8, 8), {}),
    (1, (64,), {}),
    (2, (32, 32), {"full_resolution": False}),
    (2, (32, 32), {"num_classes": 3}),
    (2, (32, 32), {"spatial_mixing": "none"}),
    (2, (32, 32), {"adn_ordering": "NDA", "level_convs": 1}),
    (2, (32, 32), {"input_normalization": True, "mixing_kernel_size": 5}),
    (2, (32, 32), {"norm": None, "level_convs": 1}),  # no norms to fold: channels put back in order
    (2, (32, 32), {"level_convs": 1, "full_resolution": False}),
    (2, (32, 32), {"mixing_kernel_size": 33}),  # a reach of 16: the decoder puts its 16-channel parts together
]


@pytest.mark.parametrize("spatial_dims, spatial, kwargs", NETWORK_CASES)
@pytest.mark.parametrize("dense_max_channels", [DENSE_MAX_CHANNELS, 0])  # dense wherever allowed, or nowhere
def test_phase_folded_onenet_computes_the_network(spatial_dims, spatial, kwargs, dense_max_channels, monkeypatch):
    monkeypatch.setattr(phase_folding, "DENSE_MAX_CHANNELS", dense_max_channels)
    torch.manual_seed(0)
    net = _trained_norms(OneNet(spatial_dims, 2, 3, channels=(8, 16, 32), **kwargs))
    folded = PhaseFoldedOneNet(net, spatial)
    x = torch.randn(2, 2, *spatial)
    with torch.no_grad():
        expected, out = net(x), folded(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"spatial_mixing": "oriented"}, "spatial axes"),
        ({"decoder": "conv"}, "not the 1D one"),
        ({"encoder": "conv", "decoder": "conv"}, "not the 1D one"),
        ({"norm": "instance"}, "statistics over the image"),
    ],
)
def test_phase_folding_refuses_spatial_filters_and_image_statistics(kwargs, reason):
    net = OneNet(2, 1, 2, channels=(8, 16), **kwargs).eval()
    assert reason in phase_folding_unsupported(net)
    with pytest.raises(ValueError, match=reason):
        PhaseFoldedOneNet(net, (16, 16))


def test_phase_folding_refuses_what_it_would_skip():
    class Softmaxed(OneNet):
        def forward(self, x):
            return torch.softmax(super().forward(x), 1)

    assert "overrides OneNet.forward" in phase_folding_unsupported(Softmaxed(2, 1, 2, channels=(8, 16)).eval())
    net = OneNet(2, 1, 2, channels=(8, 16)).eval()
    handle = net.encoder_levels[0].mixing.register_forward_hook(lambda module, args, out: out * 2)
    assert "hooks" in phase_folding_unsupported(net)
    handle.remove()
    handle = net.register_forward_pre_hook(lambda module, args: None)
    assert "hooks" in phase_folding_unsupported(net)
    handle.remove()
    assert phase_folding_unsupported(net) is None


def test_phase_folding_refuses_a_replaced_head_and_training_mode():
    net = OneNet(2, 1, 2, channels=(8, 16))
    assert "training mode" in phase_folding_unsupported(net)
    net.eval()
    assert phase_folding_unsupported(net) is None
    net.head = nn.Conv2d(8, 2, kernel_size=3, padding=1)
    assert "1x1" in phase_folding_unsupported(net)


def test_phase_folded_onenet_checks_its_input():
    net = OneNet(2, 1, 2, channels=(8, 16, 32)).eval()
    with pytest.raises(ValueError, match="divisible by 4"):
        PhaseFoldedOneNet(net, (30, 32))
    folded = PhaseFoldedOneNet(net, (32, 32))
    with pytest.raises(ValueError, match=r"built for spatial size \[32, 32\], got \[16, 16\]"):
        folded(torch.randn(1, 1, 16, 16))
    net.train()
    with pytest.raises(RuntimeError, match="eval"):
        folded(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_2d_fold_is_the_permute_fold(levels, channels):
    # the 2D fold cuts blocks (SpaceToDepth) and gathers sub-maps; it must put every value where the permute does
    x = torch.randn(2, channels, 2**levels * 3, 2**levels * 2).contiguous(memory_format=torch.channels_last)
    assert torch.equal(fold_phases(x, levels), _fold_by_permute(x, levels))
    assert torch.equal(unfold_phases(_fold_by_permute(x, levels), levels), x)


def test_onnx_space_to_depth_passes_gradients_back():
    # the export's SpaceToDepth node is an autograd function: its backward must be the inverse rearrangement
    x = torch.randn(2, 3, 8, 12, dtype=torch.double, requires_grad=True)
    assert torch.equal(_SpaceToDepth.apply(x, 4), _space_to_depth(x, 4))
    assert torch.autograd.gradcheck(lambda t: _SpaceToDepth.apply(t, 4), (x,))


def test_fold_on_meta_tensors_leaves_later_folds_intact():
    # a first call under another mode (meta here; torch.export's fake tensors alike) must not leave a cached tensor
    # of that mode for later calls
    with torch.device("meta"):
        assert fold_phases(torch.empty(1, 2, 8, 8), 3).shape == (1, 2, 64, 1)
    x = torch.arange(2 * 64.0).reshape(1, 2, 8, 8)
    assert torch.equal(unfold_phases(fold_phases(x, 3), 3), x)
