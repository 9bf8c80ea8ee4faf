"""``python -m monai_onenet.benchmark accuracy``: OneNet presets and light peers trained on the same data and budget.

Every listed model is trained from scratch on 2D axial slices of an MSD-layout task (its own train / validation
split of ``imagesTr``), with the same loss, optimiser, budget and seeds, then scored by Dice per validation case.
The table sets Dice (mean and spread over seeds), epoch-to-epoch stability, CPU latency (measured interleaved in
the same process) and training time per epoch side by side; a Pareto plot draws Dice against latency.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.metrics import compute_dice
from monai.networks.nets import BasicUNet
from monai.networks.utils import one_hot
from monai.utils import set_determinism
from tqdm import tqdm

from monai_onenet.benchmark.measure import inference_runner, measure_latencies, resolve_device, settle_allocator
from monai_onenet.benchmark.peers import unext
from monai_onenet.benchmark.report import write_json
from monai_onenet.benchmark.slices import SliceSet, load_slice_set
from monai_onenet.networks import create_onenet

__all__ = [
    "ACCURACY_MODELS",
    "AccuracyModel",
    "SegmentationTrainingStep",
    "apply_allocator",
    "check_models",
    "run_accuracy",
    "segmentation_output",
    "main",
]

EDGE_WIDTHS = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class AccuracyModel:
    """A model of the accuracy benchmark: its family and how to build it for ``(in_channels, out_channels)``."""

    family: str  # "onenet" or "peer"
    build: Callable[[int, int], nn.Module]
    note: str = ""


def _preset(name: str, **overrides: Any) -> Callable[[int, int], nn.Module]:
    def build(in_channels: int, out_channels: int) -> nn.Module:
        kwargs = {"channels": EDGE_WIDTHS, "deep_supervision": False, **overrides}
        return create_onenet(name, in_channels=in_channels, out_channels=out_channels, **kwargs)

    return build


def _kaiming(build: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
    """``build``, then He-normal weights and zero biases in every convolution, as timm initialises: standard
    deviation ``sqrt(2 / fan_out)`` with ``fan_out = kernel volume * out_channels / groups``. torch's default
    (uniform, ``a = sqrt(5)``) has a sixth of that variance for a square 1x1 conv."""

    def rebuild(in_channels: int, out_channels: int) -> nn.Module:
        model = build(in_channels, out_channels)
        for module in model.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                fan_out = module.weight[0, 0].numel() * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        return model

    return rebuild


ACCURACY_MODELS: Dict[str, AccuracyModel] = {
    "unet_4": AccuracyModel("peer", _preset("unet_4"), "the paper's U-Net_4, widths 16..256"),
    "basicunet": AccuracyModel("peer", lambda i, o: BasicUNet(2, i, o), "MONAI BasicUNet, default features"),
    "unext": AccuracyModel("peer", unext, "UNeXt (MICCAI 2022), widths 16, 32, 128, 160, 256"),
    "onenet_ed_4": AccuracyModel("onenet", _preset("onenet_ed_4"), "faithful, widths 16..256"),
    "onenet_ed_4_none": AccuracyModel("onenet", _preset("onenet_ed_4_none"), "no spatial mixing, widths 16..256"),
    "onenet_ed_4_oriented": AccuracyModel("onenet", _preset("onenet_ed_4_oriented"), "oriented k=7, widths 16..256"),
    "onenet_ed_4_oriented_nda": AccuracyModel(
        "onenet", _preset("onenet_ed_4_oriented", adn_ordering="NDA"), "oriented, norm before activation"
    ),
    "onenet_edge_4": AccuracyModel("onenet", _preset("onenet_edge_4"), "oriented k=7, no full-resolution layer"),
    "onenet_edge_lite_4": AccuracyModel(
        "onenet", _preset("onenet_edge_lite_4"), "onenet_edge_4 with one channel-wise conv per level"
    ),
    "onenet_edge_4_w8": AccuracyModel(
        "onenet", _preset("onenet_edge_4", channels=(8, 32, 64, 128, 256)), "onenet_edge_4, top decoder width 8"
    ),
    "onenet_edge_4_c8_16": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(8, 16, 64, 128, 256)),
        "onenet_edge_4 with half the width at half resolution (16 encoder, 32 decoder channels)",
    ),
    "onenet_edge_4_half": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(8, 16, 32, 64, 128)),
        "onenet_edge_4 at half the widths everywhere (8..128)",
    ),
    "onenet_edge_4_c8_16_48": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(8, 16, 48, 96, 192)),
        "onenet_edge_4 at widths 8, 16, 48, 96, 192",
    ),
    "onenet_edge_4_c8_16_32": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(8, 16, 32, 128, 256)),
        "onenet_edge_4 at widths 8, 16, 32, 128, 256",
    ),
    "onenet_edge_4_w12": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(12, 24, 48, 96, 192)),
        "onenet_edge_4 at three quarters of its widths (12..192)",
    ),
    "onenet_edge_4_single": AccuracyModel(
        "onenet", _preset("onenet_edge_lite_4"), "the onenet_edge_lite_4 network, under its ablation name"
    ),
    "onenet_edge_4_single_k5": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", level_convs=1, mixing_kernel_size=5),
        "onenet_edge_4 with one channel-wise conv per level and oriented kernels of 5",
    ),
    "onenet_edge_4_w12_single": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(12, 24, 48, 96, 192), level_convs=1),
        "onenet_edge_4 at widths 12..192 with one channel-wise conv per level",
    ),
    "onenet_edge_4_c8_16_k3": AccuracyModel(
        "onenet",
        _preset("onenet_edge_4", channels=(8, 16, 64, 128, 256), mixing_kernel_size=3),
        "onenet_edge_4_c8_16 with oriented kernels of 3",
    ),
    "onenet_edge_4_k3": AccuracyModel(
        "onenet", _preset("onenet_edge_4", mixing_kernel_size=3), "onenet_edge_4 with oriented kernels of 3"
    ),
    "onenet_edge_4_kaiming": AccuracyModel(
        "onenet", _kaiming(_preset("onenet_edge_4")), "onenet_edge_4, He-normal (fan-out / groups) initialisation"
    ),
    "onenet_edge_lite_4_kaiming": AccuracyModel(
        "onenet",
        _kaiming(_preset("onenet_edge_lite_4")),
        "onenet_edge_lite_4, He-normal (fan-out / groups) initialisation",
    ),
    "onenet_edge_4_ds": AccuracyModel(
        "onenet", _preset("onenet_edge_4", deep_supervision=True), "onenet_edge_4 trained with deep supervision"
    ),
}
"""Benchmark name -> model. OneNet presets run at the edge widths 16..256 without deep supervision (top head only)."""

DEFAULT_MODELS = list(ACCURACY_MODELS)


def segmentation_output(output: Any) -> Any:
    """The segmentation part of a model's output (OneNet with a classifier returns a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def case_dice(model: nn.Module, cases: Sequence, num_classes: int, device: torch.device, batch: int = 32) -> float:
    """Mean over validation cases of the mean foreground-class Dice of the whole (3D) case."""
    model.eval()
    scores: List[float] = []
    with torch.no_grad():
        for images, labels in cases:
            logits = torch.cat(
                [segmentation_output(model(images[i : i + batch].to(device))) for i in range(0, len(images), batch)]
            )
            prediction = one_hot(logits.argmax(1, keepdim=True).cpu(), num_classes).permute(1, 0, 2, 3)[None]
            truth = one_hot(labels, num_classes).permute(1, 0, 2, 3)[None]
            dice = compute_dice(prediction, truth, include_background=False, ignore_empty=False)
            scores.append(float(dice.nanmean()))
    return statistics.fmean(scores)


class SegmentationTrainingStep:
    """One optimisation step as the accuracy benchmark trains: Dice + CE on the top logits, or on every head of a
    deep-supervision model (``DeepSupervisionLoss``), then backward and ``optimizer.step()``.

    Args:
        model: the network, in training mode.
        optimizer: its optimiser.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        self.deep_loss = DeepSupervisionLoss(self.loss_fn)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        output = segmentation_output(self.model(images))
        # MONAI's DeepSupervisionLoss resizes the labels with interpolate, which needs a float tensor.
        loss = self.deep_loss(output, labels.float()) if isinstance(output, list) else self.loss_fn(output, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def check_models(names: Sequence[str]) -> None:
    """Exit with the list of known models if any of ``names`` is not one."""
    unknown = [m for m in names if m not in ACCURACY_MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(ACCURACY_MODELS)}")


def apply_allocator(choice: str) -> None:
    """``"settled"``: :func:`~monai_onenet.benchmark.measure.settle_allocator`, saying so where it cannot;
    ``"default"``: leave glibc's adaptive thresholds."""
    if choice == "settled" and not settle_allocator():
        print("The C library is not glibc: the allocator keeps its default settings.", file=sys.stderr)


def train_one(
    model: nn.Module,
    data: SliceSet,
    epochs: int,
    seed: int,
    device: torch.device,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    progress: bool = True,
    schedule: str = "cosine",
) -> Dict[str, Any]:
    """Train ``model`` with Dice + CE and Adam; return the validation Dice after each epoch and the epoch times.

    ``schedule="cosine"`` anneals the learning rate to 0 over ``epochs`` (per step); ``"constant"`` keeps it.
    """
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    train_step = SegmentationTrainingStep(model, optimizer)
    generator = torch.Generator().manual_seed(seed)
    count = len(data.train_images)
    steps = epochs * math.ceil(count / batch_size)
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if schedule == "cosine" else None
    curve: List[float] = []
    epoch_seconds: List[float] = []
    for _ in tqdm(range(epochs), desc=f"  seed {seed}", leave=False, disable=not progress, file=sys.stderr):
        model.train()
        order = torch.randperm(count, generator=generator)
        start = time.perf_counter()
        for first in range(0, count, batch_size):
            index = order[first : first + batch_size]
            train_step(data.train_images[index].to(device), data.train_labels[index].to(device))
            if scheduler is not None:
                scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds.append(time.perf_counter() - start)
        curve.append(case_dice(model, data.val_cases, data.num_classes, device))
    return {"curve": curve, "epoch_seconds": epoch_seconds}


def _largest_drop(curve: Sequence[float]) -> float:
    return max([0.0] + [a - b for a, b in zip(curve, curve[1:])])


def _summarise(name: str, runs: List[Dict[str, Any]], params: int, latency_ms: float) -> Dict[str, Any]:
    finals = [run["curve"][-1] for run in runs]
    return {
        "model": name,
        "family": ACCURACY_MODELS[name].family,
        "params": params,
        "dice_mean": statistics.fmean(finals),
        "dice_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
        "dice_best_mean": statistics.fmean(max(run["curve"]) for run in runs),
        "largest_drop_mean": statistics.fmean(_largest_drop(run["curve"]) for run in runs),
        "latency_ms": latency_ms,
        # The median: the first epoch of a process pays one-off costs (oneDNN builds its kernels, the allocator
        # grows), 3-4x a normal epoch, and would be charged to whichever model runs first.
        "train_s_per_epoch": statistics.median(s for run in runs for s in run["epoch_seconds"]),
        "note": ACCURACY_MODELS[name].note,
        "seeds": {str(run["seed"]): run["curve"] for run in runs},
    }


def run_accuracy(args: argparse.Namespace) -> Dict[str, Any]:
    """Train and measure every model of ``args.models`` for every seed; returns ``{"rows": [...], ...}``."""
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_allocator(args.allocator)
    check_models(args.models)
    demo = _ensure_data(args)
    data = load_slice_set(args.dataset_dir, args.task, args.size, args.val_frac, download=args.download)
    print(
        f"{args.task}{' (generated demo data)' if demo else ''}: {len(data.train_images)} training slices, "
        f"{len(data.val_cases)} validation cases, {args.size}x{args.size}; {args.epochs} epochs x seeds {args.seeds}",
        file=sys.stderr,
    )
    runs: Dict[str, List[Dict[str, Any]]] = {}
    params: Dict[str, int] = {}
    os.makedirs(args.output_dir, exist_ok=True)
    done = _finished_runs(args, device)
    for name in tqdm(args.models, desc="models", file=sys.stderr):
        for seed in args.seeds:
            set_determinism(seed)
            model = ACCURACY_MODELS[name].build(data.in_channels, data.num_classes)
            params[name] = sum(p.numel() for p in model.parameters())
            key = _run_key(args, device, name, seed)
            if key in done:
                result = done[key]
                tqdm.write(f"{name} seed {seed}: kept from {_runs_file(args)}", file=sys.stderr)
            else:
                result = train_one(
                    model, data, args.epochs, seed, device, args.batch_size, args.learning_rate, schedule=args.schedule
                )
                with open(_runs_file(args), "a") as log:
                    log.write(json.dumps({"key": key, **result}) + "\n")
            runs.setdefault(name, []).append({"seed": seed, **result})
            tqdm.write(f"{name} seed {seed}: Dice per epoch {[round(d, 3) for d in result['curve']]}", file=sys.stderr)
    shape = (1, data.in_channels, args.latency_size, args.latency_size)
    runners = {
        name: inference_runner(ACCURACY_MODELS[name].build(data.in_channels, data.num_classes), shape, device)
        for name in args.models
    }
    latencies = measure_latencies(runners, device, warmup=2, rounds=args.latency_rounds)
    rows = [_summarise(name, runs[name], params[name], latencies[name]) for name in args.models]
    return {
        "task": args.task,
        "demo_data": demo,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "seeds": list(args.seeds),
        "size": args.size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "schedule": args.schedule,
        "allocator": args.allocator,
        "latency_input": list(shape),
        "train_s_per_epoch_is": "the median epoch over all seeds (earlier versions of this file: the mean)",
        "train_slices": len(data.train_images),
        "val_cases": len(data.val_cases),
        "rows": rows,
    }


def _runs_file(args: argparse.Namespace) -> str:
    return os.path.join(args.output_dir, "finished_runs.jsonl")


def _run_key(args: argparse.Namespace, device: torch.device, model: str, seed: int) -> str:
    """What a finished (model, seed) run depends on; a rerun with the same key reuses it instead of training."""
    settings = ("dataset_dir", "task", "size", "epochs", "batch_size", "learning_rate", "schedule", "val_frac")
    settings += ("allocator",)  # it changes the epoch times
    return json.dumps({**{k: getattr(args, k) for k in settings}, "device": device.type, "model": model, "seed": seed})


def _finished_runs(args: argparse.Namespace, device: torch.device) -> Dict[str, Dict[str, Any]]:
    """Runs an interrupted earlier invocation finished (``finished_runs.jsonl`` in the output folder)."""
    if args.fresh or not os.path.exists(_runs_file(args)):
        return {}
    finished = {}
    with open(_runs_file(args)) as log:
        for line in log:
            if line.strip():
                entry = json.loads(line)
                finished[entry.pop("key")] = entry
    return finished


def _ensure_data(args: argparse.Namespace) -> bool:
    """Write the demo task when the default data folder has none; True if the data is the generated demo."""
    task_dir = os.path.join(args.dataset_dir, args.task)
    marker = os.path.join(task_dir, "dataset.json")
    if not os.path.exists(marker) and args.demo_if_absent and not args.download:
        from monai_onenet.data.demo_msd import write_demo_task

        print(f"{task_dir} has no dataset.json: writing the generated demo task there.", file=sys.stderr)
        write_demo_task(args.task, args.dataset_dir)
    if not os.path.exists(marker):
        return False
    with open(marker) as f:
        return "synthetic demo" in json.load(f).get("description", "")


def markdown_table(result: Dict[str, Any]) -> str:
    """The rows as a Markdown table."""
    lines = [
        f"{result['task']}{' (generated demo data)' if result['demo_data'] else ''}, {result['train_slices']} training "
        f"slices, {result['val_cases']} validation cases, {result['size']}², {result['epochs']} epochs, seeds "
        f"{result['seeds']}, batch {result['batch_size']}, Adam {result['learning_rate']} ({result['schedule']}); "
        f"latency at {'x'.join(map(str, result['latency_input']))}, {result['device']}, {result['threads']} threads",
        "",
        "| model | family | params | Dice (final, mean ± sd) | best Dice | largest drop | latency ms | train s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['model']} | {row['family']} | {row['params']:,} | {row['dice_mean']:.3f} ± {row['dice_std']:.3f} "
            f"| {row['dice_best_mean']:.3f} | {row['largest_drop_mean']:.3f} | {row['latency_ms']:.1f} "
            f"| {row['train_s_per_epoch']:.1f} |"
        )
    lines += [
        "",
        "Dice: per validation case, mean over foreground classes, after the last epoch; mean ± sd over seeds. "
        "Largest drop: the largest fall of validation Dice from one epoch to the next, mean over seeds.",
    ]
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m monai_onenet.benchmark accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset_dir", default="data", help="folder holding the task folder (default: data)")
    parser.add_argument("--task", default="Task02_Heart", help="MSD task (default: Task02_Heart)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=96, help="in-plane slice size (multiple of 32)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine", help="learning rate schedule")
    parser.add_argument("--val_frac", type=float, default=0.2)
    parser.add_argument("--latency_size", type=int, default=256, help="latency input is 1 x C x S x S")
    parser.add_argument("--latency_rounds", type=int, default=7)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--allocator",
        choices=["settled", "default"],
        default="settled",
        help="settled (default): the latency runs' fixed glibc malloc thresholds for training too, so that epoch "
        "times repeat; default: glibc's adaptive ones",
    )
    parser.add_argument("--download", action="store_true", help="download the task with DecathlonDataset first")
    parser.add_argument(
        "--no_demo", dest="demo_if_absent", action="store_false", help="fail instead of generating demo data"
    )
    parser.add_argument("--output_dir", default="runs/accuracy", help="table, JSON and plots go here")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON here")
    parser.add_argument(
        "--fresh", action="store_true", help="retrain every run, ignoring runs an interrupted invocation finished"
    )
    args = parser.parse_args(argv)
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32 (UNeXt downsamples 5 times), got {args.size}")
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    result = run_accuracy(args)  # creates output_dir
    table = markdown_table(result)
    print(table)
    write_json(result, os.path.join(args.output_dir, "accuracy.json"), args.json)
    with open(os.path.join(args.output_dir, "accuracy.md"), "w") as out:
        out.write(table + "\n")
    from monai_onenet.visualize import save_pareto, save_seed_curves

    save_pareto(result["rows"], os.path.join(args.output_dir, "pareto.png"))
    save_seed_curves(result["rows"], os.path.join(args.output_dir, "curves.png"))
    return result
