from __future__ import annotations

import pytest
import torch

from monai_onenet.networks import OneNet, check_onnx, export_onnx
from monai_onenet.networks.blocks import ChannelConvStack, phase_folding
from monai_onenet.networks.blocks.phase_folding import FoldedSequenceConv
from monai_onenet.networks.nets.phase_folded import PhaseFoldedOneNet

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(
    "spatial_dims, shape",
    [(2, (1, 1, 32, 32)), (3, (1, 1, 16, 16, 16))],
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_mixing": "sequence"},
        {"spatial_mixing": "oriented", "mixing_kernel_size": 5},
        {"decoder": "conv"},
        {"encoder": "conv", "decoder": "conv"},
    ],
)
def test_onnx_opset17_matches_onnxruntime(tmp_path, spatial_dims, shape, kwargs):
    import onnx

    torch.manual_seed(0)
    net = OneNet(spatial_dims, 1, 3, channels=(8, 16, 32), deep_supervision=True, **kwargs)
    example = torch.randn(shape)
    path = export_onnx(net, example, tmp_path / "net.onnx")
    assert onnx.load(path).opset_import[0].version == 17
    assert check_onnx(net, path, example, atol=1e-4) <= 1e-4
    # the batch axis is dynamic
    assert check_onnx(net, path, torch.randn(2, *shape[1:]), atol=1e-4) <= 1e-4


def test_check_onnx_detects_a_different_model(tmp_path):
    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=(8, 16))
    example = torch.randn(1, 1, 16, 16)
    path = export_onnx(net, example, tmp_path / "net.onnx")
    other = OneNet(2, 1, 2, channels=(8, 16))
    with pytest.raises(AssertionError, match="differs from torch"):
        check_onnx(other, path, example, atol=1e-6)


def _op_types(path) -> set:
    return set(_op_list(path))


def _op_list(path) -> list:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("kwargs", [{}, {"full_resolution": False}, {"spatial_mixing": "none"}])
def test_onenet_ed_exports_phase_folded(tmp_path, kwargs):
    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=(8, 16, 32), **kwargs)
    example = torch.randn(1, 1, 32, 32)
    path = export_onnx(net, example, tmp_path / "net.onnx")
    assert not net.training  # the folded wrapper must not hand its training mode back to the network
    # no element-by-element layout changes left: pixel-(un)shuffles are reshapes, no reflect padding, no transpose;
    # the input's fold is one SpaceToDepth and the logits' unfold one DepthToSpace
    ops = _op_list(path)
    assert not {"Transpose", "Pad", "ScatterND"} & set(ops)
    assert ops.count("SpaceToDepth") == ops.count("DepthToSpace") == 1
    # each chain's closing norm is one BatchNormalization (ONNX Runtime runs it inside its blocked layout, where a
    # Mul and an Add took a copy out of it), but the top one, folded into the head
    chains = sum(isinstance(module, ChannelConvStack) and module.steps > 0 for module in net.modules())
    assert ops.count("BatchNormalization") == chains - 1
    assert check_onnx(net, path, torch.randn(3, 1, 32, 32), atol=1e-4) <= 1e-4


@pytest.mark.parametrize("spatial_dims, num_classes", [(2, 0), (2, 3), (3, 0)])
def test_phase_folded_graph_states_its_output_sizes(tmp_path, spatial_dims, num_classes):
    import onnx

    net = OneNet(spatial_dims, 1, 2, channels=(8, 16, 32), num_classes=num_classes)
    spatial = (16,) * spatial_dims
    path = export_onnx(net, torch.randn(1, 1, *spatial), tmp_path / "net.onnx", phase_folded=True)
    outputs = onnx.load(path).graph.output
    dims = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in outputs}
    expected = {"logits": ["batch", 2, *spatial]}
    if num_classes:
        expected["class_logits"] = ["batch", num_classes]
    assert dims == expected
    assert check_onnx(net, path, torch.randn(2, 1, *spatial), atol=1e-4) <= 1e-4


def test_export_keeps_the_straightforward_graph_when_the_folded_indices_would_be_too_large(tmp_path, monkeypatch):
    from monai_onenet.networks import export

    monkeypatch.setattr(export, "MAX_FOLDED_INDEX_BYTES", 1024)
    net = OneNet(2, 1, 2, channels=(8, 16, 32))
    example = torch.randn(1, 1, 32, 32)
    with pytest.warns(UserWarning, match="straightforward graph"):
        path = export_onnx(net, example, tmp_path / "net.onnx")
    assert "Pad" in _op_types(path)  # the authors' reflect-padded spatial conv
    assert check_onnx(net, path, example, atol=1e-4) <= 1e-4


def test_export_refuses_to_phase_fold_a_network_that_cannot_be(tmp_path):
    net = OneNet(2, 1, 2, channels=(8, 16), spatial_mixing="oriented")
    with pytest.raises(ValueError, match="spatial axes"):
        export_onnx(net, torch.randn(1, 1, 16, 16), tmp_path / "net.onnx", phase_folded=True)


def test_onnx_export_can_keep_the_authors_spatial_conv(tmp_path):
    import onnx

    net = OneNet(2, 1, 2, channels=(8, 16, 32))
    example = torch.randn(1, 1, 32, 32)
    path = export_onnx(net, example, tmp_path / "net.onnx", phase_folded=False)
    # the one-channel Conv1d runs fast in ONNX Runtime; the eager block form's slice writes would become ScatterND
    assert "ScatterND" not in _op_types(path)
    one_channel_convs = [
        node
        for node in onnx.load(path).graph.node
        if node.op_type == "Conv" and any(a.name == "kernel_shape" and list(a.ints) == [9] for a in node.attribute)
    ]
    assert len(one_channel_convs) == 4  # one per 1D level: 2 encoder levels, 2 decoder levels (top included)
    assert check_onnx(net, path, example, atol=1e-4) <= 1e-4


def test_onnx_exports_the_classification_head(tmp_path):
    import onnx

    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=(8, 16, 32), num_classes=3)
    example = torch.randn(2, 1, 32, 32)
    path = export_onnx(net, example, tmp_path / "net.onnx")
    assert [output.name for output in onnx.load(path).graph.output] == ["logits", "class_logits"]
    assert check_onnx(net, path, example, atol=1e-4) <= 1e-4


@pytest.mark.parametrize("dense_max_channels", [phase_folding.DENSE_MAX_CHANNELS, 0])
def test_narrow_maps_export_their_spatial_conv_in_dense_form(tmp_path, monkeypatch, dense_max_channels):
    import onnx

    monkeypatch.setattr(phase_folding, "DENSE_MAX_CHANNELS", dense_max_channels)
    torch.manual_seed(0)
    net = OneNet(2, 1, 2, channels=(8, 16, 32)).eval()
    mixings = [m for m in PhaseFoldedOneNet(net, (32, 32)).modules() if isinstance(m, FoldedSequenceConv)]
    dense = sum(m.dense for m in mixings)
    assert (dense > 0) == (dense_max_channels > 0)
    path = export_onnx(net, torch.randn(1, 1, 32, 32), tmp_path / "net.onnx")
    # a polyphase conv runs as a 3D convolution over an added unit axis; the dense form is a 1x1 conv of the map
    nodes = onnx.load(str(path)).graph.node
    assert sum(n.op_type == "Unsqueeze" and "_mixing." in n.name for n in nodes) == len(mixings) - dense
    assert check_onnx(net, path, torch.randn(3, 1, 32, 32), atol=1e-4) <= 1e-4
