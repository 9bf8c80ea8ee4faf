from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.utils import pixelshuffle, pixelunshuffle

from monai_onenet.networks.blocks import (
    ChannelConvStack,
    OrientedConv,
    SequenceConv,
    SubpixelHead,
    cached_weight_bytes,
    channels_to_space,
    clear_folded_weights,
    get_spatial_mixing,
    sequence_conv_reference,
    sequence_conv_shifted_add,
    space_to_channels,
)

SHUFFLE_CASES = [(1, 3, (8,)), (2, 3, (8, 12)), (3, 2, (4, 6, 8))]


@pytest.mark.parametrize("spatial_dims, channels, spatial", SHUFFLE_CASES)
def test_space_to_channels_matches_monai(spatial_dims, channels, spatial):
    x = torch.randn(2, channels, *spatial)
    expected = pixelunshuffle(x, spatial_dims, 2)
    out = space_to_channels(x, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(channels_to_space(out, 2), x, rtol=0, atol=0)
    torch.testing.assert_close(channels_to_space(expected, 2), pixelshuffle(expected, spatial_dims, 2), rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "channel_slice", "batch_of_two"])
def test_space_to_channels_2d_takes_any_memory_layout(layout):
    x = torch.randn(2, 6, 8, 12)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "channel_slice":  # strided inside channels-last storage, as the pixel-edge values are read
        x = x.contiguous(memory_format=torch.channels_last)[:, 1:4]
    elif layout == "batch_of_two":
        x = x[:1].expand(2, -1, -1, -1)
    out = space_to_channels(x, 2)
    torch.testing.assert_close(out, pixelunshuffle(x, 2, 2), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_space_to_channels_returns_channels_last():
    out = space_to_channels(torch.randn(1, 4, 8, 8), 2)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_channels_to_space_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible by 4"):
        channels_to_space(torch.randn(1, 6, 4, 4), 2)


SEQUENCE_CASES = [
    ((2, 64, 16, 16), 9),
    ((1, 256, 8, 8), 9),
    ((1, 24, 4, 4, 4), 9),
    ((2, 8, 32), 5),
    ((1, 12, 6, 6), 9),  # 12 channels: block form with blocks of 4
    ((1, 7, 8, 8), 9),  # odd channels: falls back to the reference form
    ((1, 16, 1, 1), 9),  # shorter than the filter's edge window
]


@pytest.mark.parametrize("shape, kernel_size", SEQUENCE_CASES)
def test_sequence_conv_fast_form_equals_reference(shape, kernel_size):
    torch.manual_seed(0)
    sp = SequenceConv(shape[1], kernel_size, act=None)
    x = torch.randn(*shape, requires_grad=True)
    fast = sp(x)
    slow = sequence_conv_reference(x, sp.conv.weight, sp.conv.bias)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    shifted = sequence_conv_shifted_add(x.detach(), sp.conv.weight.detach(), sp.conv.bias.detach())
    torch.testing.assert_close(shifted, slow.detach(), rtol=0, atol=1e-5)
    grad_fast = torch.autograd.grad(fast.square().sum(), [x, sp.conv.weight])
    grad_slow = torch.autograd.grad(slow.square().sum(), [x, sp.conv.weight])
    for a, b in zip(grad_fast, grad_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 64, 16, 16), (1, 12, 6, 6), (1, 24, 4, 4, 4)])
def test_sequence_conv_inference_runs_its_relu_inside_the_conv(monkeypatch, shape):
    from monai_onenet.networks.blocks import sequence_conv
    from monai_onenet.networks.blocks.fused_conv import FUSED_CONV_RELU

    torch.manual_seed(0)
    sp = SequenceConv(shape[1])
    sp.conv.bias.data.fill_(-0.2)  # the ReLU has work to do, at the two fixed ends too
    x = torch.randn(*shape)
    fused = []
    monkeypatch.setattr(
        sequence_conv,
        "onednn_conv",
        lambda *a, activation: fused.append(activation) or torch.relu(F.conv2d(a[0], a[1], a[2], padding=a[3])),
    )
    with torch.no_grad():
        out = sp(x)
    expected = torch.relu(sequence_conv_reference(x, sp.conv.weight, sp.conv.bias))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert fused == (["relu"] if FUSED_CONV_RELU else [])
    monkeypatch.undo()
    with torch.no_grad():
        torch.testing.assert_close(sp(x), expected, rtol=0, atol=1e-5)  # the real fused kernel


def test_sequence_conv_reference_is_the_authors_flattened_conv():
    # One pixel, channels 0..C-1: the filter runs across channels, reflect-padded at the sequence ends only.
    conv = torch.nn.Conv1d(1, 1, 3, bias=False)
    conv.weight.data = torch.tensor([[[1.0, 0.0, 0.0]]])  # picks the previous element of the sequence
    x = torch.arange(8.0).view(1, 2, 2, 2)  # 2 channels on a 2x2 map
    out = sequence_conv_reference(x, conv.weight, None)
    sequence = x.permute(0, 2, 3, 1).reshape(-1)  # channels-last flattening
    shifted = torch.cat([sequence[1:2], sequence[:-1]])  # reflect pad by one, then shift right
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(-1), shifted)


def test_sequence_conv_has_ten_parameters():
    assert sum(p.numel() for p in SequenceConv(64).parameters()) == 10


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_oriented_conv_sees_along_every_axis_only(spatial_dims):
    torch.manual_seed(0)
    mix = OrientedConv(spatial_dims, channels=4, kernel_size=3)
    size = [7] * spatial_dims
    x = torch.zeros(1, 4, *size, requires_grad=True)
    centre = (0, 0) + tuple(s // 2 for s in size)
    mix(x)[centre].backward()
    support = x.grad[0].abs().sum(0) > 0
    # Separable 3-tap kernels along each axis: the support is the 3^d cube around the centre.
    expected = torch.zeros(size, dtype=torch.bool)
    expected[tuple(slice(s // 2 - 1, s // 2 + 2) for s in size)] = True
    assert torch.equal(support, expected)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 6, 9, 7)), (3, (2, 5, 4, 6, 7))])
@pytest.mark.parametrize("channels_last", [True, False])
def test_oriented_conv_folded_last_axis_equals_the_plain_convs(spatial_dims, shape, channels_last):
    """The last axis runs on a folded view (speed); outputs, gradients and the memory layout are the plain ones."""
    torch.manual_seed(0)
    mix = OrientedConv(spatial_dims, channels=shape[1], kernel_size=5)
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last if spatial_dims == 2 else torch.channels_last_3d)
    x.requires_grad_(True)
    folded, plain = mix(x), x + mix.convs(x)
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), [x, *mix.parameters()]) for out in (folded, plain)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    layout = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    assert folded.is_contiguous(memory_format=layout) == x.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("last_axis, folds", [(7, True), (5, True), (4, False)])
def test_oriented_conv_folds_only_axes_as_long_as_its_kernel(monkeypatch, last_axis, folds):
    """Folding speeds a long axis up; with a kernel longer than the axis, oneDNN's backward is 3x slower folded."""
    from monai_onenet.networks.blocks import oriented_conv

    calls = []
    fold = oriented_conv._along_last_axis
    monkeypatch.setattr(oriented_conv, "_along_last_axis", lambda *args: calls.append(1) or fold(*args))
    mix = OrientedConv(2, channels=4, kernel_size=5)
    x = torch.randn(2, 4, 6, last_axis).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(mix(x), x + mix.convs(x), rtol=1e-5, atol=1e-5)
    assert bool(calls) == folds


def test_module_by_module_runs_every_conv_module():
    """FLOP counters hook the modules: with the fast paths off, no convolution may run around its module."""
    from monai_onenet.benchmark.flops import module_by_module
    from monai_onenet.networks import OneNet

    net = OneNet(2, 1, 2, channels=(4, 8, 16), spatial_mixing="oriented").eval()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    called = set()
    for conv in convs:
        conv.register_forward_hook(lambda module, inputs, output: called.add(module))
    with torch.no_grad(), module_by_module(net):
        net(torch.randn(1, 1, 16, 16).contiguous(memory_format=torch.channels_last))
    assert len(called) == len(convs)


def test_get_spatial_mixing_rejects_unknown_name():
    with pytest.raises(ValueError, match="spatial_mixing must be one of"):
        get_spatial_mixing("diagonal", 2, 8, 9)


@pytest.mark.parametrize("kernel_size", [4, 8])
def test_even_kernel_is_rejected(kernel_size):
    with pytest.raises(ValueError, match="odd kernel_size"):
        SequenceConv(8, kernel_size)
    with pytest.raises(ValueError, match="odd kernel_size"):
        OrientedConv(2, 8, kernel_size)


@pytest.mark.parametrize("spatial_dims, widths", [(2, (3, 8, 8)), (3, (4, 8, 16, 8)), (1, (5, 6))])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("adn_ordering", ["ADN", "NDA"])
def test_channel_conv_stack_folds_norms_exactly_in_eval(spatial_dims, widths, grad, adn_ordering):
    torch.manual_seed(0)
    stack = ChannelConvStack(
        spatial_dims, widths, act=("relu", {"inplace": True}), norm="batch", adn_ordering=adn_ordering
    )
    assert stack.norm_after_act == (adn_ordering == "ADN")
    for module in stack.modules():  # trained-looking statistics, so that folding has something to fold
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    stack.eval()
    x = torch.randn(2, widths[0], *([8] * spatial_dims))
    with torch.set_grad_enabled(grad):
        folded = stack(x.clone())
        stack.fast_path = False
        plain = stack(x.clone())
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)


def _trained_stack(widths=(8, 16, 16), adn_ordering: str = "ADN") -> ChannelConvStack:
    stack = ChannelConvStack(2, widths, act=("relu", {"inplace": True}), norm="batch", adn_ordering=adn_ordering)
    for module in stack.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    return stack.eval()


def _as_written(stack: ChannelConvStack, x: torch.Tensor) -> torch.Tensor:
    stack.fast_path = False
    try:
        return stack(x.clone())
    finally:
        stack.fast_path = True


def test_eval_stack_folds_once_and_refolds_when_its_weights_change(monkeypatch):
    from monai_onenet.networks.blocks.fused_conv import FUSED_CONV_RELU

    torch.manual_seed(0)
    stack = _trained_stack()
    x = torch.randn(1, 8, 8, 8).contiguous(memory_format=torch.channels_last)
    folds = []
    original = ChannelConvStack._folded_weights
    monkeypatch.setattr(ChannelConvStack, "_folded_weights", lambda self, i: folds.append(i) or original(self, i))
    with torch.no_grad():
        first = stack(x.clone())
        torch.testing.assert_close(stack(x.clone()), first, rtol=0, atol=0)
        assert folds == [0, 1]  # the second pass reused both convs' folded weights
        # an in-place update, as load_state_dict and optimizers make
        other = _trained_stack()
        stack.load_state_dict(other.state_dict())
        torch.testing.assert_close(stack(x.clone()), other(x.clone()), rtol=1e-5, atol=1e-5)
        # new storage under the same parameter
        stack[1].conv.weight.data = torch.randn_like(stack[1].conv.weight)
        torch.testing.assert_close(stack(x.clone()), _as_written(stack, x), rtol=1e-5, atol=1e-5)
    # running statistics moved by the norm alone, in train mode (its running_mean keeps its version counter)
    norm = stack[0].adn.N
    norm.train()
    norm(torch.randn(4, 16, 8, 8))
    norm.eval()
    with torch.no_grad():
        torch.testing.assert_close(stack(x.clone()), _as_written(stack, x), rtol=1e-5, atol=1e-5)
    # running statistics moved by a training pass
    stack.train()
    stack(torch.randn(4, 8, 8, 8))
    stack.eval()
    with torch.no_grad():
        torch.testing.assert_close(stack(x.clone()), _as_written(stack, x), rtol=1e-5, atol=1e-5)
    # refolds: both convs after load_state_dict (then `other` folds its own two), conv 1 after its new storage,
    # conv 1 after its input's norm moved, both after the training pass
    assert folds == [0, 1, 0, 1, 0, 1, 1, 1, 0, 1]
    if FUSED_CONV_RELU:
        packs = []
        real = torch.ops.mkldnn._reorder_convolution_weight
        monkeypatch.setattr(
            torch.ops.mkldnn, "_reorder_convolution_weight", lambda *a: packs.append(a[-1]) or real(*a), raising=False
        )
        with torch.no_grad():
            stack(x.clone())
            stack(x.clone())
            stack(torch.randn(2, 8, 4, 4))
        assert packs == [(2, 8, 4, 4), (2, 16, 4, 4)]  # once per conv and input size: the same size again reused them


@pytest.fixture
def warm_stack():
    """A trained-looking eval stack and an input, after one inference pass (its folded weights are kept)."""
    torch.manual_seed(0)
    stack = _trained_stack()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        stack(x.clone())
    return stack, x


def test_eval_stack_keeps_its_folded_weights_out_of_copies_and_inference_mode(warm_stack):
    import copy
    import pickle

    stack, x = warm_stack
    assert set(stack.state_dict()) == set(_trained_stack().state_dict())
    weight_bytes = sum(layer.conv.weight.numel() * 4 for layer in stack)
    assert weight_bytes <= cached_weight_bytes(stack) < 1.5 * weight_bytes  # one folded copy of each conv's weight
    twin = copy.deepcopy(stack)
    twin[0].conv.weight.data.mul_(-1)
    with torch.no_grad():
        assert not torch.allclose(twin(x.clone()), stack(x.clone()))
        torch.testing.assert_close(pickle.loads(pickle.dumps(stack))(x.clone()), stack(x.clone()))
    stack.train()
    assert cached_weight_bytes(stack) == 0
    with torch.inference_mode():  # parameters made here have no version counter: folded afresh each pass
        fresh = _trained_stack()
        torch.testing.assert_close(fresh(x.clone()), _as_written(fresh, x), rtol=1e-5, atol=1e-5)
        assert cached_weight_bytes(fresh) == 0


def test_folded_weights_after_data_edits_moves_and_clearing(warm_stack):
    stack, x = warm_stack
    with torch.no_grad():
        stack[0].conv.weight.data.mul_(0.5)  # .data has a version counter of its own: the cache cannot see this
        clear_folded_weights(stack)
        assert cached_weight_bytes(stack) == 0
        torch.testing.assert_close(stack(x.clone()), _as_written(stack, x), rtol=1e-5, atol=1e-5)
        assert cached_weight_bytes(stack) > 0
        stack.double()  # a move drops the folded copies of the old dtype
        assert cached_weight_bytes(stack) == 0
        torch.testing.assert_close(stack(x.double()), _as_written(stack, x.double()), rtol=1e-9, atol=1e-9)


def test_eval_stack_serves_threads_with_different_input_sizes():
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    stack = _trained_stack()
    inputs = [torch.randn(size, 8, 6, 6).contiguous(memory_format=torch.channels_last) for size in (1, 2, 3, 4)]
    expected = [_as_written(stack, x) for x in inputs]

    def run(position: int) -> float:
        worst = 0.0
        with torch.no_grad():
            for _ in range(300):
                x = inputs[position]
                worst = max(worst, float((stack(x.clone()) - expected[position]).abs().max()))
        return worst

    with ThreadPoolExecutor(4) as pool:
        assert max(pool.map(run, range(4))) < 1e-5


@pytest.mark.parametrize("norm", ["batch", None])
@pytest.mark.parametrize("adn_ordering", ["ADN", "NDA"])
def test_step_reordered_reads_permuted_input_channels(norm, adn_ordering):
    torch.manual_seed(0)
    stack = ChannelConvStack(2, (12, 8, 8), act="relu", norm=norm, adn_ordering=adn_ordering)
    if norm:
        stack = _trained_stack((12, 8, 8), adn_ordering)
    stack.eval()
    x = torch.randn(2, 12, 4, 4)
    order = torch.randperm(12)  # stored channel j holds channel order[j]
    with torch.no_grad():
        torch.testing.assert_close(stack.step_reordered(x[:, order], 0, order), stack.step(x, 0), rtol=1e-5, atol=1e-5)
    assert stack.runs_folded() == (norm == "batch")


def test_channel_conv_stack_without_batch_norm_runs_as_written():
    stack = ChannelConvStack(2, (3, 8, 8), act="relu", norm="instance")
    assert not stack.folds_norms
    assert stack.eval()(torch.randn(1, 3, 8, 8)).shape == (1, 8, 8, 8)


@pytest.mark.parametrize("adn_ordering, first", [("ADN", "A"), ("NDA", "N")])
def test_adn_ordering_sets_where_the_norm_goes(adn_ordering, first):
    stack = ChannelConvStack(2, (3, 8), act="relu", norm="batch", adn_ordering=adn_ordering)
    assert list(stack[0].adn._modules)[0] == first


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_subpixel_head_gives_each_output_pixel_its_own_logits(spatial_dims):
    head = SubpixelHead(spatial_dims, in_channels=4, out_channels=3)
    x = torch.randn(1, 4, *([4] * spatial_dims))
    out = head(x)
    assert out.shape == (1, 3, *([8] * spatial_dims))
    # Output pixel (2i + k) depends only on input pixel i: perturbing input pixel 0 changes only the first block.
    y = x.clone()
    y[(0, slice(None)) + (0,) * spatial_dims] += 1.0
    changed = (head(y) - out).abs().sum(1)[0] > 0
    expected = torch.zeros_like(changed)
    expected[(slice(0, 2),) * spatial_dims] = True
    assert torch.equal(changed, expected)


def test_norm_first_stack_scripts_in_its_own_order_after_a_default_one():
    torch.manual_seed(0)
    stacks = [ChannelConvStack(2, (3, 8), act="relu", norm="batch", adn_ordering=o) for o in ("ADN", "NDA")]
    x = torch.randn(2, 3, 4, 4)
    for stack in stacks:  # scripted in this order: the NDA one must not reuse the ADN one's compiled forward
        stack[0].adn.N.running_mean.fill_(1.0)
        stack.eval().fast_path = False
        torch.testing.assert_close(torch.jit.script(stack)(x), stack(x))


def test_stepped_chain_knows_its_length_and_refuses_to_run_changed():
    from monai_onenet.networks.blocks import SteppedSequential

    chain = SteppedSequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    assert chain.steps == 3 and chain[0:2].steps == 2
    x = torch.randn(2, 4)
    torch.testing.assert_close(torch.jit.script(chain)(x), chain(x))
    with pytest.raises(IndexError, match="Step 3 of a chain of 3"):
        chain.step(x, 3)
    chain.append(torch.nn.ReLU())
    with pytest.raises(RuntimeError, match="built with 3 layers and now has 4"):
        chain(x)


def _local_hook(module):
    return module.register_forward_hook(lambda m, args, out: None)


def _local_pre_hook(module):
    return module.register_forward_pre_hook(lambda m, args: None)


def _global_hook(module):
    return torch.nn.modules.module.register_module_forward_hook(lambda m, args, out: None)


def _global_pre_hook(module):
    return torch.nn.modules.module.register_module_forward_pre_hook(lambda m, args: None)


@pytest.mark.parametrize("register", [_local_hook, _local_pre_hook, _global_hook, _global_pre_hook])
def test_has_forward_hooks_sees_every_kind(register):
    from monai_onenet.networks.blocks import has_forward_hooks

    watched, other = torch.nn.Conv2d(1, 1, 1), torch.nn.ReLU()
    assert not has_forward_hooks([watched, other])
    handle = register(watched)
    try:
        assert has_forward_hooks([watched, other])
        assert has_forward_hooks([other]) == (register in (_global_hook, _global_pre_hook))
    finally:
        handle.remove()
    assert not has_forward_hooks([watched, other])
