"""Export OneNet to ONNX (opset 17) and check it against ONNX Runtime."""

from __future__ import annotations

import os
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn

from monai_onenet.networks.nets.phase_folded import PhaseFoldedOneNet, phase_folding_unsupported

__all__ = ["export_onnx", "check_onnx", "OUTPUT_NAMES"]

OUTPUT_NAMES = ("logits", "class_logits")
# Above this, the default export keeps the straightforward graph (the folded one's indices grow with the input:
# 3.3 MB at 256², 10 MB at 64³, about 660 MB at 256³).
MAX_FOLDED_INDEX_BYTES = 256 * 2**20


def _as_tuple(output: torch.Tensor | tuple) -> tuple:
    return output if isinstance(output, tuple) else (output,)


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike,
    opset: int = 17,
    phase_folded: Optional[bool] = None,
) -> str:
    """Write ``model`` (eval mode) to an ONNX file with a dynamic batch axis.

    The graph has input ``image`` and output ``logits`` (the top segmentation head), plus ``class_logits`` when the
    model has a classification head.

    OneNet_ed is exported as :class:`~monai_onenet.networks.nets.phase_folded.PhaseFoldedOneNet` computes it: the
    same outputs, without the element-by-element transposes of its pixel-(un)shuffles and spatial convs, which
    made ONNX Runtime 1.2-1.5x slower than eager torch on the paper's OneNet_ed,4. The spatial size is then fixed
    to the example's (the batch stays dynamic), and the graph stores the spatial conv's neighbour indices, which grow
    with the input (3.3 MB at 256²): above 256 MB the default keeps the straightforward graph. Other networks are
    traced as they are.

    Uses the TorchScript-based exporter: the dynamo exporter in torch 2.13 emits opset 18 for the reflect ``Pad``
    of the paper's spatial conv and cannot convert it down to 17.

    Args:
        model: the network; it is switched to eval mode.
        example: an input of the shape to export (batch may change at run time).
        path: output ``.onnx`` file.
        opset: ONNX opset. Defaults to 17.
        phase_folded: export the phase-folded form: None (default) where the model allows it, True to require it
            (``ValueError`` naming the reason otherwise), False to trace the model as it is.

    Returns:
        ``str(path)``.

    Example::

        >>> import os, tempfile
        >>> from monai_onenet.networks import OneNet
        >>> net = OneNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32))
        >>> path = os.path.join(tempfile.mkdtemp(), "onenet.onnx")
        >>> export_onnx(net, torch.randn(1, 1, 32, 32), path) == path
        True
    """
    model = model.eval()
    with torch.no_grad():
        output_sizes = [list(output.shape[1:]) for output in _as_tuple(model(example))]
    names = OUTPUT_NAMES[: len(output_sizes)]
    traced = model
    if phase_folded or (phase_folded is None and phase_folding_unsupported(model) is None):
        traced = PhaseFoldedOneNet(model, example.shape[2:])  # type: ignore[arg-type]
        if phase_folded is None and traced.index_bytes() > MAX_FOLDED_INDEX_BYTES:
            warnings.warn(
                f"Exporting the straightforward graph: the phase-folded one would store "
                f"{traced.index_bytes() / 2**20:.0f} MB of indices for a {list(example.shape[2:])} input "
                f"(more than {MAX_FOLDED_INDEX_BYTES // 2**20} MB). Pass phase_folded=True to export it anyway.",
                stacklevel=2,
            )
            traced = model
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            traced,
            (example,),
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=["image"],
            output_names=list(names),
            dynamic_axes={"image": {0: "batch"}, **{name: {0: "batch"} for name in names}},
        )
    if isinstance(traced, PhaseFoldedOneNet):
        _write_output_sizes(str(path), dict(zip(names, output_sizes)))
    model.eval()
    return str(path)


def _write_output_sizes(path: str, sizes: Dict[str, List[int]]) -> None:
    """Write each output's sizes past the batch axis into the graph at ``path``. The phase-folded graph unfolds its
    logits with computed shapes, so the exporter names those sizes (``Reshapelogits_dim_1``, ...) although the
    export fixed them; runtimes and model viewers then show the real ones."""
    import onnx

    graph = onnx.load(path, load_external_data=False)  # a graph over 2 GB keeps its weights in files beside it
    for output in graph.graph.output:
        for dim, size in zip(list(output.type.tensor_type.shape.dim)[1:], sizes[output.name]):
            dim.dim_value = int(size)  # replaces the symbolic name (one of the two)
    onnx.save(graph, path)


def check_onnx(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, atol: float = 1e-4) -> float:
    """Run the ONNX file in ONNX Runtime (CPU) and return the largest absolute difference to eager ``model``,
    over every output.

    Raises:
        AssertionError: if the difference exceeds ``atol``.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_outputs = session.run(None, {session.get_inputs()[0].name: example.cpu().numpy()})
    with torch.no_grad():
        torch_outputs = _as_tuple(model.eval()(example))
    if len(onnx_outputs) != len(torch_outputs):
        raise AssertionError(f"ONNX file has {len(onnx_outputs)} outputs, the model {len(torch_outputs)}.")
    diff = max(float(np.abs(a - b.cpu().numpy()).max()) for a, b in zip(onnx_outputs, torch_outputs))
    if diff > atol:
        raise AssertionError(f"ONNX Runtime output differs from torch by {diff:.3g} (> {atol}).")
    return diff
