"""Train and evaluate several networks through one bundle on the same budget, and tabulate accuracy and time.

``python -m monai_onenet.benchmark.bundle_compare --bundle bundles/onenet_heart --networks onenet_ed_4
onenet_ed_4_oriented unet_4 --epochs 12 --val_interval 2`` runs, for each network, exactly what a user runs
(``python -m monai.bundle run training`` then ``run evaluating`` with ``--network``), each in its own
``<output_dir>/<network>``, and prints a markdown table (also written to ``<output_dir>/comparison.md`` and
``.json``): parameters, training wall time, best and last validation Dice, the largest drop between consecutive
validations (how much the model swings), and the evaluation metrics of the best checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["compare", "markdown_table"]


def _run(run_id: str, config_file: str, overrides: Sequence[str], logging_file: str) -> None:
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        run_id,
        "--config_file",
        config_file,
        "--logging_file",
        logging_file,
        *overrides,
    ]
    subprocess.run(command, check=True)


def _parameters(bundle: Path, network: str, spatial_dims: int) -> int:
    from monai.bundle import ConfigParser

    import monai_onenet  # noqa: F401

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["network"], parser["spatial_dims"] = network, spatial_dims
    return sum(p.numel() for p in parser.get_parsed_content("network_def").parameters())


def compare(
    bundle: str, networks: Sequence[str], output_dir: str, extra: Sequence[str] = (), spatial_dims: int = 2
) -> List[Dict[str, object]]:
    """Train and evaluate each network through ``bundle``; return one result row per network."""
    root = Path(bundle)
    train, evaluate = str(root / "configs" / "train.json"), str(root / "configs" / "evaluate.json")
    logging_file = str(root / "configs" / "logging.conf")
    rows = []
    for network in networks:
        out = Path(output_dir) / network
        overrides = ["--network", network, "--output_dir", str(out), "--spatial_dims", str(spatial_dims), *extra]
        start = time.perf_counter()
        _run("training", train, overrides, logging_file)
        train_seconds = time.perf_counter() - start
        _run("evaluating", f"['{train}','{evaluate}']", overrides, logging_file)
        history = json.loads((out / "history.json").read_text())
        dice = [h["val_mean_dice"] for h in history if "val_mean_dice" in h]
        summary = json.loads((out / "eval" / "metrics.json").read_text())["summary"]
        rows.append(
            {
                "network": network,
                "params": _parameters(root, network, spatial_dims),
                "train_seconds": round(train_seconds, 1),
                "val_dice_per_validation": [round(d, 4) for d in dice],
                "best_val_dice": max(dice) if dice else None,
                "last_val_dice": dice[-1] if dice else None,
                "largest_drop": max([a - b for a, b in zip(dice, dice[1:])] + [0.0]),
                "eval": summary,
            }
        )
    return rows


def markdown_table(rows: Sequence[Dict[str, object]]) -> str:
    """The comparison as a markdown table, the fastest network's time as 1.00x."""
    fastest = min(r["train_seconds"] for r in rows)
    lines = [
        "| network | params | training time | x fastest | best val Dice | last val Dice | largest drop | "
        "eval Dice | mIoU | mAP@0.5 | cross-entropy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["eval"]
        lines.append(
            f"| {r['network']} | {r['params'] / 1e6:.2f} M | {r['train_seconds']:.0f} s | "
            f"{r['train_seconds'] / fastest:.2f} | {r['best_val_dice']:.4f} | {r['last_val_dice']:.4f} | "
            f"{r['largest_drop']:.3f} | {e['mean_dice']:.4f} | {e['miou']:.4f} | {e['map50']:.3f} | "
            f"{e['cross_entropy']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="bundles/onenet_heart")
    parser.add_argument("--networks", nargs="+", default=["onenet_ed_4", "onenet_ed_4_oriented", "unet_4"])
    parser.add_argument("--output_dir", default="runs/compare")
    parser.add_argument("--spatial_dims", type=int, default=2)
    args, extra = parser.parse_known_args(argv)
    rows = compare(args.bundle, args.networks, args.output_dir, extra, args.spatial_dims)
    table = markdown_table(rows)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "comparison.md").write_text(table + "\n")
    (Path(args.output_dir) / "comparison.json").write_text(json.dumps(rows, indent=1))
    print(table)


if __name__ == "__main__":
    main()
