"""``python -m monai_onenet.benchmark train_step``: training speed as a ratio to a baseline, timed interleaved.

Per-epoch times from the accuracy benchmark come from runs minutes apart, and a shared 2-core VM drifts by 10-30%
over minutes, so two of its epoch times say little about a 10% difference. This command builds every model of
the accuracy benchmark it is given, on one synthetic batch (Dice + CE, Adam, the accuracy benchmark's settings),
and times ``--steps`` training steps of each in turn, round after round (A, B, C, A, B, C, ...). Each round gives
every model's ratio to the first one, under the same machine state; the table reports the median ratio and its
range over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch
from monai.utils import set_determinism
from tqdm import tqdm

from monai_onenet.benchmark.accuracy import ACCURACY_MODELS, SegmentationTrainingStep, apply_allocator, check_models
from monai_onenet.benchmark.measure import resolve_device
from monai_onenet.benchmark.report import write_json

__all__ = ["training_step_runner", "run_train_step", "main"]


def training_step_runner(
    name: str, batch: torch.Tensor, labels: torch.Tensor, device: torch.device, learning_rate: float = 1e-3
) -> Callable[[], None]:
    """One training step (forward, Dice + CE, backward, Adam) of accuracy-benchmark model ``name``, as the accuracy
    benchmark trains it.

    Args:
        name: a key of :data:`~monai_onenet.benchmark.accuracy.ACCURACY_MODELS`.
        batch: images ``(B, C, H, W)``.
        labels: integer labels ``(B, 1, H, W)`` of two classes.
        device: where the model and the batch live.
        learning_rate: Adam's learning rate.

    Returns:
        A function that runs one step on the same batch each call.
    """
    model = ACCURACY_MODELS[name].build(batch.shape[1], 2).to(device).train()
    train_step = SegmentationTrainingStep(model, torch.optim.Adam(model.parameters(), lr=learning_rate))
    batch, labels = batch.to(device), labels.to(device)

    def step() -> None:
        train_step(batch, labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def run_train_step(args: argparse.Namespace) -> Dict[str, Any]:
    """Time every model of ``args.models`` interleaved; ratios are to the first model.

    Returns:
        ``{"baseline", "rows": [{"model", "step_ms", "round_ms", "ratio_vs_baseline", "ratio_min", "ratio_max"}],
        ...}``, with ``round_ms`` the mean step time of each round.
    """
    check_models(args.models)
    if args.size % 32 != 0:
        raise SystemExit(f"--size must be a multiple of 32 (every model downsamples 4-5 times), got {args.size}")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_allocator(args.allocator)
    set_determinism(0)
    batch = torch.randn(args.batch_size, 1, args.size, args.size)
    labels = (torch.rand(args.batch_size, 1, args.size, args.size) > 0.7).long()
    runners = {name: training_step_runner(name, batch, labels, device) for name in args.models}
    for step in runners.values():
        for _ in range(args.warmup):
            step()
    seconds: Dict[str, List[float]] = {name: [] for name in runners}
    for _ in tqdm(range(args.rounds), desc="rounds", file=sys.stderr):
        for name, step in runners.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[name].append((time.perf_counter() - start) / args.steps)
    baseline = args.models[0]
    rows = []
    for name in args.models:
        ratios = [a / b for a, b in zip(seconds[name], seconds[baseline])]
        rows.append(
            {
                "model": name,
                "step_ms": 1000 * statistics.median(seconds[name]),
                "round_ms": [1000 * value for value in seconds[name]],
                "ratio_vs_baseline": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        )
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "baseline": baseline,
        "batch": [args.batch_size, 1, args.size, args.size],
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "allocator": args.allocator,
        "rows": rows,
    }


def markdown_table(result: Dict[str, Any]) -> str:
    """The result of :func:`run_train_step` as a Markdown table and a line of settings."""
    baseline = result["baseline"]
    lines = [
        f"| model | step ms (median) | x {baseline} (median of rounds) | range over rounds |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['model']} | {row['step_ms']:.1f} | {row['ratio_vs_baseline']:.3f} | "
            f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f} |"
        )
    batch = "x".join(str(s) for s in result["batch"])
    lines.append(
        f"\n{result['rounds']} rounds of {result['steps_per_round']} steps per model, batch {batch}, "
        f"{result['device']}, {result['threads']} threads, allocator {result['allocator']}."
    )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, time, print the table, write ``--json``; returns the result."""
    parser = argparse.ArgumentParser(prog="python -m monai_onenet.benchmark train_step", description=__doc__)
    parser.add_argument("--models", nargs="+", default=["unext", "onenet_edge_lite_4", "onenet_edge_4"])
    parser.add_argument("--size", type=int, default=96, help="slice size, a multiple of 32 (default 96)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="steps per model per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model first")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--allocator", choices=["settled", "default"], default="settled")
    parser.add_argument("--json", metavar="PATH", help="also write the result here")
    args = parser.parse_args(argv)
    result = run_train_step(args)
    print(markdown_table(result))
    write_json(result, args.json)
    return result
