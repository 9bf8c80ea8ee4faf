"""``python -m monai_onenet.benchmark sequence_conv``: the paper's spatial conv, three ways, on OneNet_ed,4's maps.

Times the straightforward form (permute, reflect-pad, one-channel ``Conv1d``), the same maths as ``k`` shifted
multiply-adds, and the block form :class:`~monai_onenet.networks.blocks.SequenceConv` runs, on the feature maps the
faithful OneNet_ed,4 mixes at a 256x256 input (the paper's widths), interleaved in one process. Checks that all
three agree to 1e-5.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Optional

import torch

from monai_onenet.benchmark.measure import measure_latencies
from monai_onenet.benchmark.report import write_json
from monai_onenet.networks import create_onenet
from monai_onenet.networks.blocks import SequenceConv, sequence_conv_reference, sequence_conv_shifted_add

__all__ = ["mixing_inputs", "main"]


def mixing_inputs(size: int = 256, shrink: int = 1) -> List[tuple]:
    """Shapes ``(1, C, H, W)`` that each spatial conv of the faithful OneNet_ed,4 sees at a ``size``² input."""
    net = create_onenet("onenet_ed_4", channels=tuple(max(64 // shrink, 2) * 2**i for i in range(5))).eval()
    shapes: List[tuple] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
        for m in net.modules()
        if isinstance(m, SequenceConv)
    ]
    with torch.no_grad():
        net(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return shapes


def _forms(x: torch.Tensor, conv: SequenceConv) -> Dict[str, Callable[[], torch.Tensor]]:
    weight, bias = conv.conv.weight.detach(), conv.conv.bias.detach()
    return {
        "reference": lambda: sequence_conv_reference(x, weight, bias),
        "shifted_add": lambda: sequence_conv_shifted_add(x, weight, bias),
        "block": lambda: conv._block_form(x) if conv.block else sequence_conv_reference(x, weight, bias),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m monai_onenet.benchmark sequence_conv", description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="16x narrower maps at 64² (seconds)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size, shrink = (64, 16) if args.quick else (args.size, 1)
    totals = {"reference": 0.0, "shifted_add": 0.0, "block": 0.0}
    rows = []
    torch.manual_seed(0)
    for shape in mixing_inputs(size, shrink):
        conv = SequenceConv(shape[1]).eval()
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            forms = _forms(x, conv)
            reference = forms["reference"]()
            error = max(float((forms[name]() - reference).abs().max()) for name in ("shifted_add", "block"))
            if error > 1e-5:
                raise AssertionError(f"forms disagree by {error} on {shape}")
            times = measure_latencies(forms, torch.device("cpu"), warmup=1, rounds=args.rounds)
        rows.append({"input": list(shape), "max_abs_diff": error, **{f"{k}_ms": v for k, v in times.items()}})
        for name, value in times.items():
            totals[name] += value
    result = {"threads": torch.get_num_threads(), "rows": rows, "total_ms": totals}
    print(f"threads: {result['threads']}\n\n| input | reference ms | shifted-add ms | block form ms | max diff |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {'x'.join(map(str, row['input']))} | {row['reference_ms']:.2f} | {row['shifted_add_ms']:.2f} "
            f"| {row['block_ms']:.2f} | {row['max_abs_diff']:.1e} |"
        )
    print(
        f"| **all {len(rows)}** | {totals['reference']:.1f} | {totals['shifted_add']:.1f} | {totals['block']:.1f} | |"
    )
    write_json(result, args.json)
    return result
