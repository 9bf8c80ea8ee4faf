from __future__ import annotations

import io

import pytest
import torch
from monai.networks import eval_mode, train_mode

from monai_onenet.networks import OneNet

TINY = (4, 8, 16)  # depth 2: spatial sizes must be multiples of 4

CASES = []
for spatial_dims, size in [(1, (16,)), (2, (16, 12)), (3, (8, 8, 12))]:
    for encoder, decoder in [("1d", "1d"), ("1d", "conv"), ("conv", "conv")]:
        for mixing in ["sequence", "oriented", "none"]:
            CASES.append(
                [
                    {
                        "spatial_dims": spatial_dims,
                        "in_channels": 3,
                        "out_channels": 2,
                        "channels": TINY,
                        "encoder": encoder,
                        "decoder": decoder,
                        "spatial_mixing": mixing,
                    },
                    (2, 3, *size),
                    (2, 2, *size),
                ]
            )


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    net = OneNet(**kwargs)
    with eval_mode(net):
        out = net(torch.randn(in_shape))
    assert isinstance(out, torch.Tensor)
    assert out.shape == out_shape


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES[::4])
def test_backward_reaches_every_parameter(kwargs, in_shape, out_shape):
    net = OneNet(**kwargs, deep_supervision=True, num_classes=3)
    with train_mode(net):
        segmentation, class_logits = net(torch.randn(in_shape))
    assert isinstance(segmentation, list) and len(segmentation) == len(TINY) - 1
    assert segmentation[0].shape == out_shape
    assert class_logits.shape == (in_shape[0], 3)
    loss = sum(s.square().mean() for s in segmentation) + class_logits.square().mean()
    loss.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_deep_supervision_heads_are_coarser_and_eval_returns_top_only():
    net = OneNet(2, 1, 4, channels=(4, 8, 16, 32), deep_supervision=True)
    x = torch.randn(2, 1, 32, 32)
    with train_mode(net):
        outputs = net(x)
    assert [tuple(o.shape[2:]) for o in outputs] == [(32, 32), (16, 16), (8, 8)]
    with eval_mode(net):
        top = net(x)
    assert isinstance(top, torch.Tensor) and top.shape == (2, 4, 32, 32)


def test_classification_head_in_eval_returns_tuple():
    net = OneNet(2, 1, 2, channels=TINY, num_classes=5)
    with eval_mode(net):
        segmentation, class_logits = net(torch.randn(3, 1, 16, 16))
    assert segmentation.shape == (3, 2, 16, 16)
    assert class_logits.shape == (3, 5)


def test_input_normalization_is_off_by_default_and_applies_the_authors_constants():
    torch.manual_seed(0)
    plain = OneNet(2, 1, 2, channels=TINY)
    normalised = OneNet(2, 1, 2, channels=TINY, input_normalization=True)
    normalised.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 16, 16)
    with eval_mode(plain, normalised):
        torch.testing.assert_close(normalised(x), plain((x - 0.45) / 0.225))


def test_without_spatial_mixing_each_output_sees_only_its_block():
    # The faithful encoder-decoder without SP is a hierarchical patch-wise MLP: one output pixel depends only on
    # the 2^depth x 2^depth input block it lies in. This is the weakness the oriented variant removes.
    torch.manual_seed(0)
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": TINY}
    own_block = torch.zeros(16, 16, dtype=torch.bool)
    own_block[4:8, 4:8] = True
    for mixing in ["none", "oriented"]:
        net = OneNet(**kwargs, spatial_mixing=mixing, mixing_kernel_size=3).eval()
        x = torch.randn(1, 1, 16, 16, requires_grad=True)
        net(x)[0, 0, 5, 6].backward()
        support = x.grad[0, 0] != 0  # (a ReLU may zero a gradient inside the support, never outside)
        assert support[own_block].any()
        if mixing == "none":
            assert not support[~own_block].any()
        else:
            assert support[~own_block].sum() > 16


BAD_ARGS = [
    ({"spatial_dims": 4}, "spatial_dims must be 1, 2 or 3"),
    ({"channels": (8,)}, "channels needs the stem width"),
    ({"encoder": "2d"}, "encoder must be one of"),
    ({"decoder": "linear"}, "decoder must be one of"),
    ({"spatial_mixing": "diag"}, "spatial_mixing must be one of"),
    ({"in_channels": 0}, "in_channels and out_channels must be >= 1"),
    ({"adn_ordering": "DAN"}, r"adn_ordering must be one of \('ADN', 'NDA'\)"),
    ({"decoder": "conv", "full_resolution": False}, "full_resolution=False needs the 1D encoder and decoder"),
    ({"level_convs": 0}, "level_convs must be >= 1"),
    ({"channels": (8, 16), "full_resolution": False}, "full_resolution=False needs at least two levels"),
    ({"mixing_kernel_size": 1}, "odd kernel_size of at least 3"),
    ({"mixing_kernel_size": 4}, "odd kernel_size of at least 3"),
]


@pytest.mark.parametrize("kwargs, message", BAD_ARGS)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneNet(**{"channels": TINY, **kwargs})


BAD_INPUTS = [
    ((1, 1, 18, 16), r"divisible by 4; got spatial shape \[18, 16\], where 18 is not \(nearest valid: 16 or 20\)"),
    ((1, 1, 18, 16), r"DivisiblePadd\(keys, k=4\)"),
    ((1, 2, 16, 16), r"expects 1 input channels \(in_channels=1\), got 2"),
    ((1, 16, 16), r"expects input \(batch, channels, 2 spatial sizes\), i.e. 4 dimensions, got shape \[1, 16, 16\]"),
]


@pytest.mark.parametrize("shape, message", BAD_INPUTS)
def test_bad_input_is_named_before_compute(shape, message):
    net = OneNet(2, 1, 2, channels=TINY).eval()
    with pytest.raises(ValueError, match=message):
        net(torch.randn(shape))


def test_golden_output():
    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=(8, 16, 32), deep_supervision=True).eval()
    x = torch.linspace(-1, 1, 256).view(1, 1, 16, 16)
    out = net(x)[0, :, 7, 3:6].flatten()
    # Recorded from this implementation (torch 2.13 CPU); guards the faithful maths against silent changes.
    expected = torch.tensor([-0.112348, -0.11262, -0.112366, -0.101569, -0.105118, -0.101606])
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (1, 1, 16, 16)), (3, (1, 1, 8, 8, 8))])
@pytest.mark.parametrize("mixing", ["sequence", "oriented"])
def test_torchscript_save_reload(spatial_dims, shape, mixing):
    net = OneNet(spatial_dims, 1, 2, channels=TINY, spatial_mixing=mixing, num_classes=2).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = torch.randn(shape)
    for a, b in zip(net(x), loaded(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 16, 16)), (3, (1, 1, 8, 8, 8))])
def test_trace(spatial_dims, shape):
    net = OneNet(spatial_dims, 1, 2, channels=TINY).eval()
    x = torch.randn(shape)
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(x), net(x), rtol=1e-5, atol=1e-5)


def test_deep_supervision_output_feeds_monai_loss():
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    net = OneNet(2, 1, 2, channels=(4, 8, 16), deep_supervision=True).train()
    loss_fn = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))
    label = (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss = loss_fn(net(torch.randn(2, 1, 16, 16)), label)
    loss.backward()
    assert torch.isfinite(loss) and net.auxiliary_heads[0].weight.grad is not None


def _with_trained_norms(net: OneNet) -> OneNet:
    """``net`` in eval mode with batch-norm statistics and affine terms away from their identity start."""
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_()
    return net.eval()


@pytest.mark.parametrize("encoder, decoder", [("1d", "1d"), ("1d", "conv"), ("conv", "conv")])
def test_torchscript_matches_eager_with_trained_norms(encoder, decoder):
    # OneNet_e mixes the 1D blocks' act -> norm order with the U-Net decoder's norm -> act; a scripted model must
    # keep each order (with identity-like norms at initialisation, a mix-up would go unseen).
    torch.manual_seed(0)
    net = _with_trained_norms(OneNet(2, 1, 2, channels=TINY, encoder=encoder, decoder=decoder))
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(net)(x), net(x), rtol=1e-5, atol=1e-5)


def test_scripting_onenet_leaves_monai_networks_scripted_later_alone():
    from monai.networks.blocks import Convolution

    torch.manual_seed(0)
    torch.jit.script(_with_trained_norms(OneNet(2, 1, 2, channels=TINY)))  # its blocks run act -> dropout -> norm
    monai_conv = Convolution(2, 4, 4, act=("relu", {"inplace": True}), norm="batch", dropout=0.0)  # N -> D -> A
    for module in monai_conv.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.bias.data.normal_()
    x = torch.randn(1, 4, 8, 8)
    with eval_mode(monai_conv):
        torch.testing.assert_close(torch.jit.script(monai_conv)(x), monai_conv(x))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"spatial_mixing": "oriented", "adn_ordering": "NDA", "level_convs": 1},
        {"spatial_mixing": "oriented", "full_resolution": False},
    ],
    ids=["paper", "other", "subpixel_head"],
)
def test_fast_paths_compute_the_model_as_written(spatial_dims, kwargs):
    from monai_onenet.benchmark.flops import module_by_module

    torch.manual_seed(0)
    net = _with_trained_norms(OneNet(spatial_dims, 1, 3, channels=(8, 16, 32), **kwargs))
    x = torch.randn(2, 1, *([16] * spatial_dims))
    with torch.no_grad():
        fast = net(x)
        with module_by_module(net):
            written = net(x)
    torch.testing.assert_close(fast, written, rtol=1e-5, atol=1e-5)


EDGE_CASES = [(1, (2, 1, 16)), (2, (2, 1, 16, 24)), (3, (1, 1, 8, 8, 16))]


@pytest.mark.parametrize("spatial_dims, shape", EDGE_CASES)
@pytest.mark.parametrize("adn_ordering", ["ADN", "NDA"])
def test_half_resolution_onenet_trains_and_exports(spatial_dims, shape, adn_ordering):
    kwargs = {"spatial_mixing": "oriented", "mixing_kernel_size": 3, "adn_ordering": adn_ordering}
    net = OneNet(spatial_dims, 1, 2, channels=(4, 8, 16, 32), full_resolution=False, deep_supervision=True, **kwargs)
    assert len(net.stem) == 0 and len(net.decoder_levels) == 2
    with train_mode(net):
        heads = net(torch.randn(shape))
    assert [tuple(h.shape[2:]) for h in heads] == [shape[2:], tuple(s // 4 for s in shape[2:])]
    sum(h.square().mean() for h in heads).backward()
    assert not [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    net.eval()
    x = torch.randn(shape)
    expected = net(x)
    assert expected.shape == (shape[0], 2, *shape[2:])
    torch.testing.assert_close(torch.jit.script(net)(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.jit.trace(net, x)(x), expected, rtol=1e-5, atol=1e-5)


def test_half_resolution_onenet_has_no_full_resolution_layer():
    from monai_onenet.benchmark.flops import module_by_module

    net = OneNet(2, 1, 2, channels=TINY, full_resolution=False).eval()
    sizes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[-1]))
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))
    ]
    with torch.no_grad(), module_by_module(net):
        net(torch.randn(1, 1, 16, 16))
    for hook in hooks:
        hook.remove()
    assert sizes and max(sizes) == 8


@pytest.mark.parametrize("level_convs", [1, 2, 3])
def test_level_convs_sets_the_channel_convs_of_every_1d_level(level_convs):
    net = OneNet(2, 1, 2, channels=TINY, spatial_mixing="oriented", level_convs=level_convs)
    levels = [*net.encoder_levels, *net.decoder_levels]
    assert all(len(level.convs) == level_convs for level in levels)
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 2, 16, 16)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_1d_level_runs_channels_last(in_channels):
    """A one-channel image (and its unshuffled copy) is channels-first and channels-last at once; the levels must
    still get the channels-last layout their convolutions are fast in."""
    net = OneNet(2, in_channels, 2, channels=TINY, spatial_mixing="oriented", full_resolution=False)
    layouts = []
    for level in [*net.encoder_levels, *net.decoder_levels]:
        level.mixing.register_forward_hook(
            lambda module, inputs, output: layouts.append(output.is_contiguous(memory_format=torch.channels_last))
        )
    net(torch.randn(2, in_channels, 16, 16))
    assert layouts and all(layouts)


@pytest.mark.parametrize("decoder", ["1d", "conv"])
def test_eval_frees_each_stage_input_before_the_next_conv(decoder):
    """The eval-mode memory peak: a level's mixing output is gone once its first channel-wise conv has run."""
    import weakref

    net = OneNet(2, 1, 2, channels=TINY, decoder=decoder).eval()
    alive = []
    for level in [*net.encoder_levels, *net.decoder_levels]:
        refs = []
        level.mixing.register_forward_hook(lambda module, inputs, output, refs=refs: refs.append(weakref.ref(output)))
        step = level.convs.step

        def spy(x, index, step=step, refs=refs, **kwargs):
            if index > 0:
                alive.append(refs[-1]() is not None)
            return step(x, index, **kwargs)

        level.convs.step = spy
    with torch.no_grad():
        net(torch.randn(1, 1, 16, 16))
    assert alive and not any(alive)


def _autograd_nodes(output: torch.Tensor) -> list:
    seen, stack, names = set(), [output.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack += [parent for parent, _ in node.next_functions]
    return names


def test_metatensor_input_trains_without_view_copies_and_keeps_its_metadata():
    """MONAI loaders hand networks MetaTensors; through their torch-function layer the in-place ReLUs would make
    backward copy whole maps (CopySlices / AsStrided nodes). OneNet runs the plain tensor and hands the metadata
    back."""
    from monai.data import MetaTensor

    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=TINY, spatial_mixing="oriented", deep_supervision=True).train()
    image = MetaTensor(torch.randn(2, 1, 16, 16), affine=torch.diag(torch.tensor([2.0, 3.0, 1.0, 1.0])))
    heads = net(image)
    assert all(isinstance(head, MetaTensor) for head in heads)
    torch.testing.assert_close(heads[0].affine, image.affine)
    nodes = _autograd_nodes(heads[0])
    assert "ConvolutionBackward0" in nodes
    assert not {"CopySlices", "AsStridedBackward0"} & set(nodes)
    with eval_mode(net):
        torch.testing.assert_close(net(image).as_tensor(), net(image.as_tensor()))


def test_metatensor_input_runs_a_subclass_forward_once():
    from monai.data import MetaTensor

    class Shifted(OneNet):
        def forward(self, x):
            return super().forward(x * 2) + 1

    net = Shifted(2, 1, 2, channels=TINY).eval()
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(net(MetaTensor(x)).as_tensor(), net(x))


def test_eval_folds_the_top_norm_into_the_head(monkeypatch):
    from monai_onenet.networks.nets import onenet

    calls = []
    fold = onenet.conv_after_affine
    monkeypatch.setattr(onenet, "conv_after_affine", lambda *args: calls.append(1) or fold(*args))
    net = _with_trained_norms(OneNet(2, 1, 2, channels=TINY))
    with torch.no_grad():
        net(torch.randn(1, 1, 16, 16))
    assert calls == [1]


@pytest.mark.parametrize(
    "head",
    [
        lambda: torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Conv2d(4, 2, 1)),
        lambda: torch.nn.Conv2d(4, 2, 3, padding=1),
        lambda: torch.nn.Conv2d(4, 2, 1),
    ],
    ids=["sequential", "3x3", "1x1_with_hook"],
)
def test_a_replaced_or_hooked_head_runs_as_it_is(head):
    from monai_onenet.benchmark.flops import module_by_module

    torch.manual_seed(0)
    net = _with_trained_norms(OneNet(2, 1, 2, channels=TINY))
    net.head = head().eval()
    seen = []
    net.head.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        fast = net(x)
        with module_by_module(net):
            written = net(x)
    torch.testing.assert_close(fast, written, rtol=1e-5, atol=1e-5)
    assert len(seen) == 2


def test_conv_after_affine_is_the_conv_of_the_affine_map():
    from monai_onenet.networks.blocks import conv_after_affine

    torch.manual_seed(0)
    conv, x = torch.nn.Conv2d(4, 3, 1), torch.randn(2, 4, 5, 5)
    scale, shift = torch.rand(4) + 0.5, torch.randn(4)
    expected = conv(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))
    torch.testing.assert_close(conv_after_affine(conv, x, scale, shift), expected, rtol=1e-5, atol=1e-5)
    for bad in (torch.nn.Conv2d(4, 3, 3, padding=1), torch.nn.Conv2d(4, 4, 1, groups=2)):
        with pytest.raises(ValueError, match="1x1 convolution"):
            conv_after_affine(bad, x, scale, shift)


def test_models_pickled_before_the_adn_classes_script_in_their_own_order():
    import pickle

    from monai.networks.blocks import ADN

    torch.manual_seed(0)
    net = _with_trained_norms(OneNet(2, 1, 2, channels=TINY, decoder="conv"))
    for module in net.modules():
        if isinstance(module, ADN):
            module.__class__ = ADN  # as a model pickled before this change holds them
    loaded = pickle.loads(pickle.dumps(net))
    assert not [m for m in loaded.modules() if type(m) is ADN]
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(loaded)(x), net(x), rtol=1e-5, atol=1e-5)


def test_scripting_a_monai_act_first_conv_leaves_the_unet_baseline_alone():
    from monai.networks.blocks import Convolution

    relu = ("relu", {"inplace": True})
    torch.jit.script(Convolution(2, 4, 4, act=relu, norm="batch", dropout=0.0, adn_ordering="ADN"))
    torch.manual_seed(0)
    unet = _with_trained_norms(OneNet(2, 1, 2, channels=TINY, encoder="conv", decoder="conv"))
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(unet)(x), unet(x), rtol=1e-5, atol=1e-5)
