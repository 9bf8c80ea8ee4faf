"""Load a running MONAI Label server with concurrent infer requests, as several 3D Slicer users would.

    python -m monai_onenet.label.load --server http://127.0.0.1:8000 --model onenet_heart --image la_003 --requests 8

Prints the latency of a first request (the server may load the model then), of one request alone, then of
``--requests`` requests sent at once (each through its own ``MONAILabelClient``, as separate Slicer sessions),
and checks that every answer is the same label volume.
``--overlay served.png --studies DIR`` also draws the served label over the study, as 3D Slicer shows it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np

__all__ = ["LoadResult", "concurrent_infer"]


@dataclass
class LoadResult:
    """Seconds per request (in the order sent), seconds for all of them, and the label volumes returned."""

    latencies: List[float]
    wall: float
    labels: List[np.ndarray]

    def summary(self) -> str:
        lat = sorted(self.latencies)
        return (
            f"{len(lat)} requests in {self.wall:.2f} s: latency median {statistics.median(lat):.2f} s, "
            f"min {lat[0]:.2f} s, max {lat[-1]:.2f} s"
        )


def concurrent_infer(
    server: str, model: str, image: str, requests: int = 8, tmpdir: Optional[str] = None
) -> LoadResult:
    """Send ``requests`` infer requests at once and collect what each returns.

    Args:
        server: the server URL, e.g. ``"http://127.0.0.1:8000"``.
        model: a served model, e.g. ``"onenet_heart"``.
        image: an image id of the studies folder (its file name without extension).
        requests: how many requests are in flight together.
        tmpdir: where the clients write the returned files (default: a new temporary folder).

    Returns:
        The latencies, the wall time and the returned label volumes.
    """
    from monailabel.client import MONAILabelClient  # part of the label extra

    folder = tmpdir or tempfile.mkdtemp(prefix="onenet_label_load_")

    def timed_request(index: int) -> Tuple[float, np.ndarray]:
        client = MONAILabelClient(server, tmpdir=folder, client_id=f"load{index}")
        start = time.perf_counter()
        path, _ = client.infer(model, image, {})
        latency = time.perf_counter() - start
        return latency, np.asarray(nib.load(path).dataobj)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=requests) as pool:
        answers = list(pool.map(timed_request, range(requests)))
    wall = time.perf_counter() - start
    return LoadResult([latency for latency, _ in answers], wall, [label for _, label in answers])


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monai_onenet.label.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="onenet_heart")
    parser.add_argument("--image", required=True, help="image id: a study's file name without extension")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--overlay", default=None, help="PNG of the served label over the study (needs --studies)")
    parser.add_argument("--studies", default=None, help="the server's studies folder, to read the image from")
    args = parser.parse_args(argv)
    if args.overlay and not args.studies:
        parser.error("--overlay needs --studies, the server's studies folder, to read the image from")

    first = concurrent_infer(args.server, args.model, args.image, requests=1)
    print(f"first (may load the model): {first.summary()}")
    alone = concurrent_infer(args.server, args.model, args.image, requests=1)
    print(f"alone: {alone.summary()}")
    together = concurrent_infer(args.server, args.model, args.image, requests=args.requests)
    print(f"together: {together.summary()}")
    same = all(np.array_equal(label, alone.labels[0]) for label in together.labels)
    print(f"every answer the same label volume: {same}")
    if args.overlay:
        save_served_overlay(args.server, args.model, args.studies, args.image, alone.labels[0], args.overlay)
        print(f"overlay: {args.overlay}")
    if not same:
        raise SystemExit(1)


def save_served_overlay(server: str, model: str, studies: str, image: str, label: np.ndarray, path: str) -> str:
    """Draw ``label`` (as served for study ``image``) over the study's first channel, named as the server names it."""
    import glob

    import torch
    from monailabel.client import MONAILabelClient

    from monai_onenet.visualize import save_overlay

    files = glob.glob(os.path.join(glob.escape(studies or ""), f"{glob.escape(image)}.nii*"))
    if not files:
        raise SystemExit(f"--overlay needs the study file: no {image}.nii[.gz] in --studies {studies}.")
    volume = np.asarray(nib.load(files[0]).dataobj, dtype=np.float32)
    volume = volume[None] if volume.ndim == 3 else np.moveaxis(volume, -1, 0)
    labels = MONAILabelClient(server).info()["models"][model]["labels"]
    names = ["background"] + [name for name, _ in sorted(labels.items(), key=lambda item: item[1])]
    title = f"{model} served for {image}"
    return save_overlay(torch.from_numpy(volume), None, torch.from_numpy(label[None]), path, names, title=title)


if __name__ == "__main__":
    main()
