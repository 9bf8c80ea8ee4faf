"""Convolution (+ ReLU) as one oneDNN kernel on the CPU, for inference."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn

__all__ = ["FUSED_CONV_RELU", "runs_onednn_conv", "runs_fused_relu", "onednn_conv"]

FUSED_CONV_RELU = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def runs_onednn_conv(x: torch.Tensor) -> bool:
    """Whether :func:`onednn_conv` can take ``x``: a float32 CPU input, oneDNN on, and no autograd, trace or autocast
    (the kernel has no backward and traces must record the plain ops)."""
    float_cpu = x.device.type == "cpu" and x.dtype == torch.float32
    plain_call = torch.is_grad_enabled() or torch.jit.is_tracing() or torch.is_autocast_enabled("cpu")
    return FUSED_CONV_RELU and torch.backends.mkldnn.enabled and float_cpu and not plain_call


def runs_fused_relu(x: torch.Tensor, act: Optional[nn.Module]) -> bool:
    """Whether ``act(conv(x))`` can run as :func:`onednn_conv` with its ReLU: a ReLU and :func:`runs_onednn_conv`."""
    return isinstance(act, nn.ReLU) and runs_onednn_conv(x)


def onednn_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    padding: List[int],
    stride: List[int],
    dilation: List[int],
    groups: int = 1,
    activation: str = "none",
) -> torch.Tensor:
    """``conv(x, weight, bias)``, with ``activation="relu"`` ``relu(conv(...))`` in one pass over the output (the
    kernel ``torch.compile`` emits for conv + ReLU on the CPU), through oneDNN whatever the input's size
    (``F.conv3d`` sends small 3D inputs to a generic kernel, 2-4x slower on the strided convolution of
    :func:`~monai_onenet.networks.blocks.unshuffled_sequence_conv.unshuffled_sequence_conv`). ``weight`` may be
    dense or already in oneDNN's layout (``torch.ops.mkldnn._reorder_convolution_weight``). Check
    :func:`runs_onednn_conv` (:func:`runs_fused_relu` for the ReLU) first.

    Example::

        >>> x = torch.randn(1, 4, 8, 8)
        >>> weight, bias = torch.randn(6, 4, 1, 1), torch.randn(6)
        >>> with torch.no_grad():
        ...     fused = onednn_conv(x, weight, bias, [0, 0], [1, 1], [1, 1], activation="relu")
        >>> bool(torch.allclose(fused, torch.relu(torch.nn.functional.conv2d(x, weight, bias)), atol=1e-5))
        True
    """
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, padding, stride, dilation, groups, activation, [None], ""
    )
