"""Train and evaluate several networks through one bundle on the same budget, and tabulate accuracy and time.

``python -m monai_onenet.benchmark.bundle_compare --bundle bundles/onenet_heart --networks onenet_ed_4
onenet_ed_4_oriented unet_4 --epochs 12 --val_interval 2`` runs, for each network, exactly what a user runs
(``python -m monai.bundle run training`` then ``run evaluating`` with ``--network``), each in its own
``<output_dir>/<network>``, and prints a markdown table (also written to ``<output_dir>/comparison.md`` and
``.json``): parameters, training wall time, best and last value of the validation key metric (Dice for the MSD
bundles, mIoU for Pet and VOC), the largest drop between consecutive validations (how much the model swings), and
the evaluation metrics of the best checkpoint (with the classification top-1 of a unified network).

``--settings NAME=OVERRIDES ...`` runs every network once per setting, e.g. the Pet bundle's segmentation-only
against unified training: ``--settings "seg=--classify false" "unified=--classify true"``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
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


def _override_pairs(overrides: Sequence[str]) -> Dict[str, object]:
    """``["--key", "value", ...]`` as ``monai.bundle run`` reads it (Python literals, else strings)."""
    pairs: Dict[str, object] = {}
    for key, value in zip(overrides[::2], overrides[1::2]):
        try:
            pairs[key.lstrip("-")] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pairs[key.lstrip("-")] = value  # a plain word, e.g. a network name or "false" (bundle flags read it)
    return pairs


def _parameters(bundle: Path, overrides: Sequence[str]) -> int:
    from monai.bundle import ConfigParser

    import monai_onenet  # noqa: F401

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    for key, value in _override_pairs(overrides).items():
        if key in parser or "#" in key:
            parser[key] = value
    return sum(p.numel() for p in parser.get_parsed_content("network_def").parameters())


KEY_METRICS = ("val_mean_dice", "val_miou")  # the MSD bundles' and the 2D bundles' key metrics


def _key_metric(history: Sequence[Dict[str, float]]) -> str:
    names = {k for h in history for k in h}
    for name in KEY_METRICS:
        if name in names:
            return name
    raise ValueError(f"history.json has none of {KEY_METRICS}: was --val_interval larger than --epochs?")


def compare(
    bundle: str,
    networks: Sequence[str],
    output_dir: str,
    extra: Sequence[str] = (),
    spatial_dims: Optional[int] = 2,
    settings: Optional[Dict[str, Sequence[str]]] = None,
) -> List[Dict[str, object]]:
    """Train and evaluate each network (under each setting) through ``bundle``; return one result row per run.

    Args:
        bundle: the bundle folder.
        networks: preset names for ``--network``.
        output_dir: each run writes to ``<output_dir>/<network>[/<setting>]``.
        extra: overrides for every run (e.g. ``--epochs 12``).
        spatial_dims: passed as ``--spatial_dims`` (MSD bundles); None for the 2D bundles.
        settings: ``{name: overrides}``; each network runs once per setting.
    """
    root = Path(bundle)
    train, evaluate = str(root / "configs" / "train.json"), str(root / "configs" / "evaluate.json")
    logging_file = str(root / "configs" / "logging.conf")
    rows = []
    for network in networks:
        for setting, setting_overrides in (settings or {"": []}).items():
            out = Path(output_dir) / network / setting if setting else Path(output_dir) / network
            overrides = ["--network", network, "--output_dir", str(out), *extra, *setting_overrides]
            if spatial_dims is not None:
                overrides += ["--spatial_dims", str(spatial_dims)]
            start = time.perf_counter()
            _run("training", train, overrides, logging_file)
            train_seconds = time.perf_counter() - start
            _run("evaluating", f"['{train}','{evaluate}']", overrides, logging_file)
            history = json.loads((out / "history.json").read_text())
            metric = _key_metric(history)
            values = [h[metric] for h in history if metric in h]
            summary = json.loads((out / "eval" / "metrics.json").read_text())["summary"]
            rows.append(
                {
                    "network": network,
                    "setting": setting,
                    "params": _parameters(root, overrides),
                    "train_seconds": round(train_seconds, 1),
                    "key_metric": metric,
                    "per_validation": [round(v, 4) for v in values],
                    "best": max(values),
                    "last": values[-1],
                    "largest_drop": max([a - b for a, b in zip(values, values[1:])] + [0.0]),
                    "eval": summary,
                }
            )
    return rows


def markdown_table(rows: Sequence[Dict[str, object]]) -> str:
    """The comparison as a markdown table, the fastest run's time as 1.00x."""
    fastest = min(r["train_seconds"] for r in rows)
    metric = rows[0]["key_metric"]
    top1 = any("classification" in r["eval"] for r in rows)
    lines = [
        f"| network | setting | params | training time | x fastest | best {metric} | last {metric} | largest drop | "
        "eval Dice | mIoU | mAP@0.5 | cross-entropy |" + (" top-1 |" if top1 else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if top1 else ""),
    ]
    for r in rows:
        e = r["eval"]
        line = (
            f"| {r['network']} | {r['setting'] or '-'} | {r['params'] / 1e6:.2f} M | {r['train_seconds']:.0f} s | "
            f"{r['train_seconds'] / fastest:.2f} | {r['best']:.4f} | {r['last']:.4f} | "
            f"{r['largest_drop']:.3f} | {e['mean_dice']:.4f} | {e['miou']:.4f} | {e['map50']:.3f} | "
            f"{e['cross_entropy']:.4f} |"
        )
        if top1:
            line += f" {e['classification']['top1']:.3f} |" if "classification" in e else " - |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="bundles/onenet_heart")
    parser.add_argument("--networks", nargs="+", default=["onenet_ed_4", "onenet_ed_4_oriented", "unet_4"])
    parser.add_argument("--output_dir", default="runs/compare")
    parser.add_argument("--spatial_dims", type=int, default=None, help="MSD bundles: 2 (default) or 3")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=None,
        metavar="NAME=OVERRIDES",
        help='run every network once per setting, e.g. "seg=--classify false" "unified=--classify true"',
    )
    args, extra = parser.parse_known_args(argv)
    settings = None
    if args.settings:
        settings = {}
        for item in args.settings:
            name, _, overrides = item.partition("=")
            settings[name] = shlex.split(overrides)
    spatial_dims = args.spatial_dims
    if spatial_dims is None and "spatial_dims" in (Path(args.bundle) / "configs" / "train.json").read_text():
        spatial_dims = 2
    rows = compare(args.bundle, args.networks, args.output_dir, extra, spatial_dims, settings)
    table = markdown_table(rows)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "comparison.md").write_text(table + "\n")
    (Path(args.output_dir) / "comparison.json").write_text(json.dumps(rows, indent=1))
    print(table)


if __name__ == "__main__":
    main()
