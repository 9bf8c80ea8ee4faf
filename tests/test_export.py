from __future__ import annotations

import pytest
import torch

from monai_onenet.networks import OneNet, check_onnx, export_onnx

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
