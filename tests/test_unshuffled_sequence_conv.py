from __future__ import annotations

import pytest
import torch

from monai_onenet.networks import OneNet
from monai_onenet.networks.blocks import OneNetEncoderLevel, SequenceConv, sequence_conv_reference, space_to_channels
from monai_onenet.networks.blocks.unshuffled_sequence_conv import fuses_unshuffle, unshuffled_sequence_conv

# (batch, channels, spatial, kernel_size): several rows of pixels (the filter wraps from one row's last pixel to
# the next row's first), odd and small channel counts (blocks of 4 values), one pixel only (both reflected ends in
# the same pixel), 1D, a shorter filter.
CASES = [
    (2, 8, (12, 10), 9),
    (1, 64, (16, 16), 9),
    (1, 3, (8, 6), 9),
    (2, 2, (2, 2), 9),
    (3, 6, (20,), 9),
    (1, 8, (4096,), 9),
    (2, 16, (8, 8), 5),
]


def _faithful(x: torch.Tensor, mixing: SequenceConv) -> torch.Tensor:
    return mixing.act(sequence_conv_reference(space_to_channels(x), mixing.conv.weight, mixing.conv.bias))


def _mixing(channels: int, spatial_dims: int, kernel_size: int) -> SequenceConv:
    mixing = SequenceConv(channels * 2**spatial_dims, kernel_size)
    with torch.no_grad():
        mixing.conv.weight.normal_()
        mixing.conv.bias.fill_(-0.3)  # the ReLU zeroes part of the output, at pixel edges too
    return mixing


@pytest.mark.parametrize("batch, channels, spatial, kernel_size", CASES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_equals_unshuffle_then_the_faithful_conv(batch, channels, spatial, kernel_size, channels_last):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, *spatial)
    if channels_last and len(spatial) == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    mixing = _mixing(channels, len(spatial), kernel_size)
    expected = _faithful(x, mixing)
    with torch.no_grad():
        assert fuses_unshuffle(mixing, x)
        out = unshuffled_sequence_conv(x, mixing)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    if len(spatial) == 2:
        assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("batch, channels, spatial, kernel_size", CASES[:5])
def test_gradients_equal_the_faithful_conv(batch, channels, spatial, kernel_size):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, *spatial, dtype=torch.float64, requires_grad=True)
    mixing = _mixing(channels, len(spatial), kernel_size).double()
    weight = torch.randn(batch, channels * 2 ** len(spatial), *[s // 2 for s in spatial], dtype=torch.float64)
    inputs = [x, mixing.conv.weight, mixing.conv.bias]
    fused = torch.autograd.grad((unshuffled_sequence_conv(x, mixing) * weight).sum(), inputs)
    faithful = torch.autograd.grad((_faithful(x, mixing) * weight).sum(), inputs)
    for a, b in zip(fused, faithful):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_gradients_after_a_first_call_in_inference_mode():
    mixing = SequenceConv(4 * 5, kernel_size=7)  # a size no other test uses: its index tables are built here
    x = torch.randn(2, 5, 6, 6)
    with torch.inference_mode():
        expected = _faithful(x, mixing)
        torch.testing.assert_close(unshuffled_sequence_conv(x, mixing), expected, rtol=0, atol=1e-5)
    x.requires_grad_()
    unshuffled_sequence_conv(x, mixing).sum().backward()
    assert x.grad is not None and mixing.conv.weight.grad is not None


def _hooked(mixing: SequenceConv) -> SequenceConv:
    mixing.register_forward_hook(lambda module, args, out: None)
    return mixing


@pytest.mark.parametrize(
    "why, mixing, shape",
    [
        ("3D would need a 4D convolution", SequenceConv(64), (1, 8, 4, 4, 4)),
        ("fast path off", SequenceConv(32), (1, 8, 4, 4)),
        ("a hook it would skip", _hooked(SequenceConv(32)), (1, 8, 4, 4)),
        ("one channel: a pixel shorter than two filter reaches", SequenceConv(4), (1, 1, 4, 4)),
        ("not the paper's conv", torch.nn.Identity(), (1, 8, 4, 4)),
        ("training: autograd on", SequenceConv(32), (1, 8, 4, 4)),
    ],
)
def test_runs_only_where_it_computes_the_same_faster(why, mixing, shape):
    if why == "fast path off":
        mixing.fast_path = False
    with torch.set_grad_enabled(why.startswith("training")):
        assert not fuses_unshuffle(mixing, torch.randn(*shape)), why
    with torch.no_grad():
        assert fuses_unshuffle(SequenceConv(32), torch.randn(1, 8, 4, 4))  # the same, where it does run


def test_traces_keep_the_authors_form():
    level = OneNetEncoderLevel(2, 8, 16, "sequence", 9, "relu", "batch").eval()
    seen = []
    level.register_forward_pre_hook(lambda module, args: seen.append(level.mixes_while_downsampling(args[0])))
    torch.jit.trace(level, torch.randn(1, 8, 8, 8), check_trace=False)
    assert seen == [False]


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 3, 32, 48)), (1, (2, 3, 64))])
def test_onenet_runs_its_encoder_through_it_with_the_same_output(monkeypatch, spatial_dims, shape):
    torch.manual_seed(0)
    net = OneNet(spatial_dims, 3, 2, channels=(4, 8, 16, 32)).eval()
    x = torch.randn(*shape)
    calls = []
    original = unshuffled_sequence_conv
    monkeypatch.setattr(
        "monai_onenet.networks.blocks.channel_levels.unshuffled_sequence_conv",
        lambda *args: calls.append(args[0].shape) or original(*args),
    )
    with torch.no_grad():
        out = net(x)
        for module in net.modules():
            if hasattr(module, "fast_path"):
                module.fast_path = False
        expected = net(x)
    assert len(calls) == len(net.encoder_levels)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
